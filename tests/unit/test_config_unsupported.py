"""Exim features pymta does not implement are configuration errors, never ignored.

Each case names one feature in an otherwise valid configuration: ``pymta -bV`` (and every
other command that reads the configuration) must fail with the file, the line and
"not supported in this version"; Exim's own "unknown" errors stay for names Exim does not
know either.  The daemon side is in tests/integration/test_unsupported_config.py.
"""
from __future__ import annotations

import pytest

from pymta import drivers
from pymta.acl import parse as acl_parse
from pymta.acl import run_acl
from pymta.config import ConfigError, load_config, option_tables, unsupported
from pymta.config.show import version_text
from pymta.expand.context import ExpandContext
from tests.support.daemon import run_pymta

HEAD = "primary_hostname = test.example\nqualify_domain = test.example\n"
TAIL = """
begin routers
local:
  driver = accept
  transport = local_delivery
begin transports
local_delivery:
  driver = appendfile
  file = /tmp/x
"""
ACL = "acl_smtp_rcpt = check\nbegin acl\ncheck:\n"

# (configuration body after HEAD, line of the error, start of the message)
UNSUPPORTED = {
    "main option": ("keep_malformed = 1d\n", 3,
                    'main option "keep_malformed"'),
    "main option with only pymta's value accepted": (
        "mua_wrapper = true\n", 3, 'main option "mua_wrapper"'),
    "cyrus_sasl authenticator": ("begin authenticators\nsasl:\n  driver = cyrus_sasl\n"
                                 "  public_name = PLAIN\n", 4,
                                 'authenticator sasl: authenticator driver "cyrus_sasl"'),
    "authenticator": ("begin authenticators\nNTLM:\n  driver = spa\n"
                      "  public_name = NTLM\n", 4,
                      'authenticator NTLM: authenticator driver "spa"'),
    "smtp transport option": ("begin transports\nremote:\n  driver = smtp\n"
                              "  hosts_try_fastopen = *\n", 6,
                              'transport remote: option "hosts_try_fastopen"'),
    "appendfile transport option": ("begin transports\nbox:\n  driver = appendfile\n"
                                    "  file = /tmp/x\n  file_format = x\n", 7,
                                    'transport box: option "file_format"'),
}


def _write(tmp_path, body: str):
    path = tmp_path / "configure"
    # The unsupported item comes first so that the line numbers above hold; the
    # routers and transports after it make a complete configuration.
    if body.startswith(("begin", "acl_smtp_rcpt")):
        text = HEAD + body + ("" if "begin routers" in body or "begin transports" in body
                              else TAIL)
    else:
        text = HEAD + body + TAIL
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_load_refuses_with_file_and_line(tmp_path, case):
    body, line, start = UNSUPPORTED[case]
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    assert (exc.value.file, exc.value.line) == (str(path), line)
    assert exc.value.message.startswith(f"{start} is not supported in this version of pymta")


@pytest.mark.parametrize("case", ["main option", "cyrus_sasl authenticator",
                                  "authenticator",
                                  "smtp transport option"])
def test_bV_refuses_with_file_and_line(tmp_path, case):
    body, line, start = UNSUPPORTED[case]
    path = _write(tmp_path, body)
    out = run_pymta(["-bV"], path)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"pymta: error in configuration file {path} line {line}: "
                                 f"{start} is not supported in this version of pymta")


@pytest.mark.parametrize("args", [["-bP", "primary_hostname"], ["-bt", "u@test.example"],
                                  ["-be", "x"]])
def test_every_command_reading_the_configuration_refuses(tmp_path, args):
    path = _write(tmp_path, UNSUPPORTED["cyrus_sasl authenticator"][0])
    out = run_pymta(args, path)
    assert out.returncode == 1
    assert f"{path} line 4: authenticator sasl: authenticator driver \"cyrus_sasl\" is not " \
           "supported in this version" in out.stderr


@pytest.mark.parametrize("body", [
    "prdr_enable = false\n",                 # what pymta does: no PRDR
    "chunking_advertise_hosts = 127.0.0.1\n",
    "accept_8bitmime\n",
    "rfc1413_hosts =\n",
    "lookup_open_max = 5\n",                 # a true no-op (documented reason)
    "log_selector = +all -pid +msg_id +rejected_header\n",
    "log_file_path = /var/log/pymta/%slog\n",
    ACL + "  accept control = dkim_disable_verify\n",
    ACL + "  accept control = ${if eq{1}{1}{submission}}\n",
    ACL + "  deny encrypted = *\n  accept\n",
    "begin transports\nremote:\n  driver = smtp\n  hosts_avoid_tls = *\n  multi_domain\n",
])
def test_settings_that_describe_what_pymta_does_are_accepted(tmp_path, body):
    load_config(str(_write(tmp_path, body)))


@pytest.mark.parametrize("body,line,message", [
    ("no_such_option = 1\n", 3, 'main option "no_such_option" unknown'),
    ("begin transports\nt:\n  driver = nosuch\n", 4, 't: cannot find transport driver "nosuch"'),
    ("log_selector = +nosuch\n", 3, "unknown log_selector setting: +nosuch"),
    (ACL + "  deny nosuch = 1\n", 6, 'error in ACL: unknown ACL condition/modifier'),
])
def test_names_exim_does_not_know_keep_exims_unknown_error(tmp_path, body, line, message):
    with pytest.raises(ConfigError) as exc:
        load_config(str(_write(tmp_path, body)))
    assert exc.value.line == line and message in exc.value.message
    assert "not supported" not in exc.value.message


def test_inline_acl_with_unknown_condition_defers(tmp_path):
    config = load_config(str(_write(tmp_path, "")))
    res = run_acl(config, "deny nosuch = fail\naccept", "rcpt",
                  ExpandContext(config, {}))
    assert res.verdict == "defer" and res.error
    assert "unknown ACL condition/modifier" in res.log_message


def test_tables_only_name_options_exim_knows():
    """Every "not supported"/"ignored" name is an Exim option of the right table, so a
    misspelt entry cannot hide an option pymta reads."""
    assert set(unsupported.UNSUPPORTED_MAIN) <= set(option_tables.MAIN_TABLE)
    assert set(unsupported.IGNORED_MAIN) <= set(option_tables.MAIN_TABLE)
    assert not set(unsupported.UNSUPPORTED_MAIN) & set(unsupported.IGNORED_MAIN)
    for kind, table in unsupported.UNSUPPORTED_GENERIC.items():
        assert set(table) | set(unsupported.IGNORED_GENERIC[kind]) <= \
            set(option_tables.generic_options(kind))
    for (kind, driver), table in {**unsupported.UNSUPPORTED_PRIVATE,
                                  **unsupported.IGNORED_PRIVATE}.items():
        assert drivers.get_driver(kind, driver) is not None
        assert set(table) <= set(option_tables.driver_options(kind, driver))
    assert not acl_parse.ACL_CONTROLS & acl_parse.ACL_CONTROLS_UNSUPPORTED


# ------------------------------------------------------------------------ -bV output
def test_bV_lists_the_registries(tmp_path):
    """The lists come from the registries: each registered driver and lookup type is
    named, and the Exim drivers without a pymta class are listed as not supported."""
    from pymta.lookups import QUERY_STYLE, SINGLE_KEY
    path = _write(tmp_path, "")
    out = run_pymta(["-bV"], path)
    assert out.returncode == 0, out.stderr
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].split()
             for ln in out.stdout.splitlines() if ":" in ln}
    assert out.stdout.splitlines()[0].startswith("pymta version ")
    assert lines["Lookups (built-in)"] == sorted(SINGLE_KEY | QUERY_STYLE)
    for kind, title in (("router", "Routers"), ("transport", "Transports"),
                        ("authenticator", "Authenticators")):
        assert lines[title] == drivers.all_drivers(kind)
        absent = [n for n in option_tables.driver_names(kind)
                  if n not in drivers.all_drivers(kind)]
        assert lines.get(f"{title} not supported in this version", []) == absent
    assert set(lines["Routers"]) >= {"accept", "dnslookup", "manualroute", "redirect"}
    assert "spa" in lines["Authenticators not supported in this version"]
    assert lines["ACL conditions"] == sorted(acl_parse.ACL_CONDITIONS)
    assert "ACL items not supported in this version" not in lines     # none left
    assert {"spam", "malware", "spf", "spf_guess"} <= set(lines["ACL conditions"])
    assert "ratelimit" in lines["ACL conditions"]
    assert out.stdout.splitlines()[-1] == f"Configuration file is {path}"


def test_version_text_follows_registry_changes(tmp_path, monkeypatch):
    import pymta
    from pymta import lookups
    monkeypatch.setattr(pymta, "__version__", "9.8.7")
    monkeypatch.setitem(drivers._REGISTRY, ("authenticator", "cyrus_sasl"), object)
    monkeypatch.setitem(drivers._REGISTRY, ("authenticator", "plaintext"), object)
    monkeypatch.setattr(lookups, "QUERY_STYLE", lookups.QUERY_STYLE | {"zz_lookup"})
    text = version_text(None)
    lines = text.splitlines()
    assert lines[0] == "pymta version 9.8.7 (Exim 4.96 compatible)"
    assert "zz_lookup" in next(ln for ln in lines if ln.startswith("Lookups")).split()
    assert "cyrus_sasl" in next(ln for ln in lines
                                if ln.startswith("Authenticators:")).split()
    assert "plaintext" in next(ln for ln in lines if ln.startswith("Authenticators:")).split()
    assert not any(ln.startswith("Authenticators not supported") and "cyrus_sasl" in ln.split()
                   for ln in lines)
