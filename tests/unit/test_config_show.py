"""-bP and -bV output (pymta.config.show)."""
import textwrap

import pytest

from pymta import drivers
from pymta.config import load_config
from pymta.config.show import show_options, show_options_result, version_text

CONF = """
    MYMAC = hello
    primary_hostname = x.test
    hide sqlite_dbfile = /etc/key.db
    retry_interval_max = 1h30m
    no_bounce_return_body
    domainlist local_domains = @ : x.test
    begin routers
    r:
      driver = redirect
      data = x
      hide file_transport = ft
    r2:
      driver = accept
      transport = t
    begin transports
    t:
      driver = appendfile
      file = /tmp/x
      mode = 0640
      hide quota = 10M
    t2:
      driver = appendfile
      file = /tmp/y
      quota = 20M
    """


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "show.conf"
    p.write_text(textwrap.dedent(CONF))
    return load_config(str(p))


def test_all_main_options(config):
    out = show_options(config, []).splitlines()
    assert out == sorted(out, key=lambda s: s.split(" ")[0].removeprefix("no_"))
    assert "no_bounce_return_body" in out
    assert "primary_hostname = x.test" in out
    assert "retry_interval_max = 1h30m" in out
    assert "sqlite_dbfile = <value not displayable>" in out
    assert "acl_smtp_rcpt = " in out
    assert len(out) == len(config.main.specs)


def test_single_options(config):
    assert show_options(config, ["primary_hostname"]) == "primary_hostname = x.test\n"
    assert show_options(config, ["bounce_return_body", "retry_interval_max"]) == \
        "no_bounce_return_body\nretry_interval_max = 1h30m\n"
    assert show_options(config, ["sqlite_dbfile"]) == \
        "sqlite_dbfile = <value not displayable>\n"
    assert show_options(config, ["sqlite_dbfile"], admin=True) == \
        "sqlite_dbfile = /etc/key.db\n"
    text, ok = show_options_result(config, ["foo"])
    assert text == "foo is not a known option\n" and ok is False


def test_lists_and_config_file(config):
    assert show_options(config, ["router_list"]) == "r\nr2\n"
    assert show_options(config, ["transport_list"]) == "t\nt2\n"
    assert show_options(config, ["config_file"]) == config.filename + "\n"
    assert show_options(config, ["domainlist"]) == "domainlist local_domains = @ : x.test\n"


def test_driver_options(config):
    out = show_options(config, ["router", "r2"]).splitlines()
    assert "driver = accept" in out and "transport = t" in out
    assert "no_check_local_user" in out and "self = freeze" in out
    t = show_options(config, ["transport", "t"]).splitlines()
    assert "mode = 0640" in t and "file = /tmp/x" in t and "directory_mode = 0700" in t
    # generic options come before the private ones
    assert t.index("body_only" if "body_only" in t else "no_body_only") < t.index("mode = 0640")
    r = show_options(config, ["router", "r"]).splitlines()
    assert "file_transport = <value not displayable>" in r
    # "hide" on a driver option hides it on every instance of that driver
    t2 = show_options(config, ["transport", "t2"]).splitlines()
    assert "quota = <value not displayable>" in t2
    assert "quota = 20M" in show_options(config, ["transport", "t2"], admin=True).splitlines()
    text, ok = show_options_result(config, ["router", "nosuch"])
    assert text == "router nosuch not found\n" and not ok
    allr = show_options(config, ["routers"])
    assert "\nr router:\n" in allr and "\nr2 router:\n" in allr


def test_macros(config):
    assert show_options(config, ["macro", "MYMAC"]) == "MYMAC=hello\n"
    out = show_options(config, ["macros"]).splitlines()
    assert "MYMAC=hello" in out and any(m.startswith("_CONFIG_DIR=") for m in out)
    text, ok = show_options_result(config, ["macro", "NOPE"])
    assert text == "macro NOPE not found\n" and not ok


def test_version_text(config, monkeypatch):
    monkeypatch.setitem(drivers._REGISTRY, ("router", "zz_test_router"), object)
    text = version_text(config)
    lines = text.splitlines()
    assert lines[0] == "pymta version 0.1.0 (Exim 4.96 compatible)"
    routers = next(ln for ln in lines if ln.startswith("Routers:"))
    assert "zz_test_router" in routers.split()
    assert any(ln.startswith("Transports:") for ln in lines)
    assert any(ln.startswith("Authenticators:") for ln in lines)
    assert any(ln.startswith("Lookups") for ln in lines)
    assert lines[-1] == f"Configuration file is {config.filename}"


def test_maildir_transport_without_directory_shows_no_prefix_or_suffix(tmp_path):
    # Debian's address_directory transport (maildir_format, the directory comes from
    # the router): exim4 -bP shows message_prefix and message_suffix empty
    from pymta.config import load_config
    from pymta.config.show import show_options
    path = tmp_path / "configure"
    path.write_text("begin transports\naddress_directory:\n  driver = appendfile\n"
                    "  maildir_format\n")
    out = show_options(load_config(str(path)), ["transport", "address_directory"])
    assert "\nmessage_prefix = \n" in out and "\nmessage_suffix = \n" in out
