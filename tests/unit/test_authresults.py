"""${authresults}: the parts Exim 4.96 writes (iprev, auth, then the checks' parts)."""
import os

from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.extra_items import AUTHRES_ARC, AUTHRES_AUTH, AUTHRES_DKIM, AUTHRES_DMARC


def authresults(**variables: str) -> str:
    ctx = ExpandContext()
    ctx.variables.update(variables)
    return expand_string("${authresults{mx.test}}", ctx)


def test_iprev_as_exim_writes_it():
    # exim4 -be -oMa 192.0.2.1 -oMs host.example '${authresults{mx.test}}'
    assert authresults(sender_host_address="192.0.2.1", sender_host_name="host.example") == (
        "Authentication-Results: mx.test;\n\tiprev=pass (host.example) "
        "smtp.remote-ip=192.0.2.1")
    assert authresults(sender_host_address="192.0.2.1", host_lookup_failed="1") == (
        "Authentication-Results: mx.test;\n\tiprev=fail smtp.remote-ip=192.0.2.1")
    assert authresults(sender_host_address="192.0.2.1", host_lookup_deferred="1") == (
        "Authentication-Results: mx.test;\n\tiprev=temperror smtp.remote-ip=192.0.2.1")
    assert authresults(sender_host_address="192.0.2.1") == "Authentication-Results: mx.test"


def test_auth():
    auth = {"sender_host_authenticated": "plain_server", AUTHRES_AUTH: "PLAIN"}
    assert authresults(**auth, authenticated_id="joe") == (
        "Authentication-Results: mx.test;\n\tauth=pass (PLAIN) smtp.auth=joe")
    assert authresults(**auth, authenticated_sender="a@b.example") == (
        "Authentication-Results: mx.test;\n\tauth=pass (PLAIN, no id saved) "
        "smtp.mailfrom=a@b.example")
    assert authresults(sender_host_authenticated="tls", authenticated_id="CN=x") == (
        "Authentication-Results: mx.test;\n\tauth=pass (tls) x509.auth=CN=x")


def test_checks_follow_in_order():
    text = authresults(**{AUTHRES_ARC: ";\n\tarc=none", AUTHRES_DMARC: ";\n\tdmarc=pass",
                          AUTHRES_DKIM: ";\n\tdkim=pass header.d=a.example"})
    assert text == ("Authentication-Results: mx.test;\n\tdkim=pass header.d=a.example;"
                    "\n\tdmarc=pass;\n\tarc=none")


def test_be_takes_the_host_from_oM_options(tmp_path):
    """pymta -be -oMa -oMs sets the client's variables, as exim4 -be does; the output
    is exim4's for the same command line."""
    import pwd

    from tests.support.daemon import run_pymta
    conf = tmp_path / "configure"
    me = pwd.getpwuid(os.getuid()).pw_name          # -oM options need a trusted caller
    conf.write_text(f"spool_directory = {tmp_path}/spool\ntrusted_users = {me}\n")
    proc = run_pymta(["-be", "-oMa", "192.0.2.1.25", "-oMs", "host.example", "-oMt", "joe",
                      "[$sender_host_address][$sender_host_port][$sender_ident]"
                      "${authresults{mx.test}}"], conf)
    assert proc.stdout == ("[192.0.2.1][25][joe]Authentication-Results: mx.test;\n"
                           "\tiprev=pass (host.example) smtp.remote-ip=192.0.2.1\n")
