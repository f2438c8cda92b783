"""XCLIENT (hosts_xclient: a proxy names the real client) and WELLKNOWN
(acl_smtp_wellknown with control = wellknown/<file>), over sockets to the daemon.

The "proxy" connects from 127.0.0.2; the daemon's readiness probe comes from
127.0.0.1, which is in neither host list.
"""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.smtp import SmtpTestClient

PROXY = "127.0.0.2"
SECURITY_TXT = b"Contact: mailto:security@test.example\nPolicy: a+b=c \xc3\xa9\n"


def config(tmp_path) -> str:
    known = tmp_path / "wellknown.d"
    known.mkdir(exist_ok=True)
    (known / "security.txt").write_bytes(SECURITY_TXT)
    (known / "long.txt").write_bytes(b"x" * 160)
    return BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", f"""\
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_wellknown = acl_wellknown
wellknown_advertise_hosts = {PROXY}
hosts_xclient = {PROXY}
smtp_max_synprot_errors = 10""").replace("begin acl\n", f"""begin acl

acl_wellknown:
  accept  condition = ${{if eq{{$smtp_command_argument}}{{noreply}}}}
  accept  condition = ${{if eq{{$smtp_command_argument}}{{tainted}}}}
          control = wellknown/{known}/$smtp_command_argument
  accept  control = wellknown/${{lookup {{${{xtextd:$smtp_command_argument}}}} \\
                    dsearch,key=path,filter=file,ret=full {{{known}}}}}
          logwrite = WK served $smtp_command_argument

""").replace("acl_check_rcpt:\n", """acl_check_rcpt:
  warn    logwrite = XC $sender_host_address:$sender_host_port \\
                     name=$sender_host_name proxy=$proxy_session \\
                     inside=$proxy_local_address outside=$proxy_external_address:\\
                     $proxy_external_port auth=$sender_host_authenticated:$authenticated_id
""").replace("Received: from $sender_helo_name by", "Received: from $sender_rcvhost by")


def client(port: int, source: str = PROXY) -> SmtpTestClient:
    return SmtpTestClient(port, source=source)


def test_wellknown_serves_a_file_as_xtext(pymta_daemon, tmp_path):
    d = pymta_daemon(config=config(tmp_path))
    with client(d.port) as c:
        assert "WELLKNOWN" in c.ehlo()[1].splitlines()
        code, text = c.cmd("WELLKNOWN security.txt")
        assert code == 250
        assert text.splitlines() == [
            f"SIZE={len(SECURITY_TXT)}",
            "Contact:+20mailto:security@test.example+0A",
            "Policy:+20a+2Bb+3Dc+20+C3+A9+0A"]
        code, text = c.cmd("WELLKNOWN long.txt")         # wrapped at 75 characters
        assert code == 250 and text.splitlines() == ["SIZE=160", "x" * 75, "x" * 75, "x" * 10]
    d.wait_for_log(r"WK served security\.txt")


def test_wellknown_refusals(pymta_daemon, tmp_path):
    d = pymta_daemon(config=config(tmp_path))
    with client(d.port) as c:
        c.ehlo()
        # no such file: the control fails like a false condition, the ACL denies
        assert c.cmd("WELLKNOWN missing.txt") == (550, "Administrative prohibition")
        # a key from the client cannot name a file
        assert c.cmd("WELLKNOWN tainted")[0] == 550
        # accepted without a file to send: an ACL error
        assert c.cmd("WELLKNOWN noreply")[0] == 451
        assert c.cmd("WELLKNOWN ../../etc/passwd")[0] == 451    # dsearch: slash in key
    d.wait_for_log(r"H=\(client\.test\) \[127\.0\.0\.2\] rejected WELLKNOWN missing\.txt")
    with client(d.port, "127.0.0.1") as c:                      # not advertised to it
        assert "WELLKNOWN" not in c.ehlo()[1]
        assert c.cmd("WELLKNOWN security.txt") == (554, "not permitted")
    d.wait_for_log(r'rejected "WELLKNOWN security\.txt" from \(client\.test\) \[127\.0\.0\.1\]')


def test_xclient_replaces_the_client(pymta_daemon, tmp_path):
    d = pymta_daemon(config=config(tmp_path))
    with client(d.port) as c:
        assert "XCLIENT ADDR NAME PORT LOGIN DESTADDR DESTPORT" in c.ehlo()[1].splitlines()
        assert c.cmd("XCLIENT ADDR=192.0.2.7 PORT=4000 NAME=Mail.Client.example "
                     "LOGIN=joe+40example DESTADDR=198.51.100.1 DESTPORT=25") == (
            220, "XCLIENT success")
        assert c.cmd("MAIL FROM:<s@remote.example>") == (503, "HELO or EHLO required")
        assert c.ehlo("real.helo")[1].splitlines()[0].endswith(
            "Hello mail.client.example [192.0.2.7]")
        code, text = c.send_message("s@remote.example", "alice@test.example",
                                    b"Subject: proxied\r\n\r\nhi\r\n")
        assert code == 250, text
    [xc] = d.wait_for_log(r"XC 192\.0\.2\.7")
    assert xc.endswith("XC 192.0.2.7:4000 name=mail.client.example proxy=yes "
                       "inside=127.0.0.2 outside=198.51.100.1:25 auth=xclient:joe@example")
    [arrival] = d.wait_for_log(r"<= s@remote\.example")
    assert " H=mail.client.example (real.helo) [192.0.2.7] P=esmtpa A=xclient:joe@example " \
        in arrival
    [msg] = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert msg.startswith(b"Received: from mail.client.example ([192.0.2.7] helo=real.helo)")


def test_xclient_errors(pymta_daemon, tmp_path):
    d = pymta_daemon(config=config(tmp_path))
    with client(d.port) as c:
        c.banner()
        assert c.cmd("XCLIENT ADDR=192.0.2.7 PORT=1") == (503, "no HELO/EHLO given")
        c.ehlo()
        assert c.cmd("XCLIENT NAME=x.example") == (501, "missing ADDR for XCLIENT")
        assert c.cmd("XCLIENT ADDR=192.0.2.7") == (501, "missing PORT for XCLIENT")
        assert c.cmd("XCLIENT ADDR=192.0.2.999 PORT=1") == (
            501, "XCLIENT: invalid address '192.0.2.999'")
        assert c.cmd("XCLIENT ADDR=192.0.2.7 PORT=1 HELO=x")[0] == 501
        # a failed command changed nothing
        assert c.cmd("MAIL FROM:<s@remote.example>")[0] == 250
        assert c.cmd("XCLIENT ADDR=192.0.2.7 PORT=1") == (503, "mail transaction in progress")
    d.wait_for_log(r"rejected XCLIENT from \(client\.test\) \[127\.0\.0\.2\]: mail "
                   r"transaction in progress")
    with client(d.port, "127.0.0.1") as c:                  # not in hosts_xclient
        assert not any(line.startswith("XCLIENT") for line in c.ehlo()[1].splitlines())
        assert c.cmd("XCLIENT ADDR=192.0.2.7 PORT=1") == (
            501, "XCLIENT command used when not advertised")


def test_second_xclient_in_a_proxied_session(pymta_daemon, tmp_path):
    """After a first XCLIENT the session stays a proxy session: the next one is
    allowed although the new client is not in hosts_xclient, and needs no ADDR/PORT."""
    d = pymta_daemon(config=config(tmp_path))
    with client(d.port) as c:
        c.ehlo()
        assert c.cmd("XCLIENT ADDR=192.0.2.7 PORT=4000")[0] == 220
        c.ehlo("one")
        assert c.cmd("XCLIENT ADDR=IPV6:2001:db8::7 NAME=[UNAVAILABLE]")[0] == 220
        assert c.ehlo("two")[1].splitlines()[0].endswith("Hello two [2001:db8::7]")
        assert c.cmd("MAIL FROM:<s@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
    [xc] = d.wait_for_log(r"XC 2001:db8::7")
    assert "XC 2001:db8::7:4000 name= proxy=yes inside=127.0.0.2 " in xc
