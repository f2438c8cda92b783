"""Authenticator drivers: option tables, registry, failure log line, advertising.
Loading them from ``begin authenticators`` is tested in test_auth_config.py."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from pymta.auth.base import advertised, find_mechanism
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.registry import authenticator_names, get_authenticator
from pymta.auth.results import AuthResult, failure_log_line
from pymta.config import option_tables
from pymta.expand import ExpandContext

GENERIC = {"driver", "public_name", "server_condition", "server_set_id",
           "server_advertise_condition", "server_debug_print", "server_mail_auth_condition",
           "client_condition", "client_set_id"}


def test_registry() -> None:
    assert authenticator_names() == ["cram_md5", "dovecot", "external", "gsasl", "plaintext"]
    assert get_authenticator("spa") is None


@pytest.mark.parametrize("driver,private", [
    ("plaintext", {"server_prompts", "client_send", "client_ignore_invalid_base64"}),
    ("cram_md5", {"server_secret", "client_name", "client_secret"}),
    ("gsasl", {"server_scram_iter", "server_scram_salt", "server_password", "server_key",
               "server_skey", "client_username", "client_password"}),
    ("dovecot", {"server_socket"}),
    ("external", {"server_param2", "server_param3", "client_send"}),
])
def test_option_tables(driver: str, private: set[str]) -> None:
    cls = get_authenticator(driver)
    assert cls is not None
    assert GENERIC | private <= set(cls.options)
    assert cls.options == option_tables.driver_options("authenticator", driver)
    with pytest.raises(ValueError, match="unknown"):
        cls("x", {"no_such_option": "1"})


def test_public_name_defaults_to_instance_name() -> None:
    cls = get_authenticator("plaintext")
    assert cls("plain", {}).public_name == "PLAIN"
    assert cls("x", {"public_name": "login"}).public_name == "LOGIN"
    assert not cls("x", {}).is_server and cls("x", {"server_condition": "1"}).is_server
    assert cls("x", {"client_send": "^a^b"}).is_client


@pytest.mark.skipif(shutil.which("exim4") is None, reason="exim4 not installed")
@pytest.mark.parametrize("driver,options", [("dovecot", ["server_socket"]),
                                            ("external", ["server_param2", "server_param3"])])
def test_private_options_known_to_exim(tmp_path, driver: str, options: list[str]) -> None:
    """Exim 4.96 accepts the options added to the tables (gsasl is not in Debian's build)."""
    conf = tmp_path / "conf"
    settings = "".join(f"  {o} = x\n" for o in options)
    conf.write_text(f"begin authenticators\na:\n  driver = {driver}\n{settings}")
    out = subprocess.run(["exim4", "-C", str(conf), "-bP", "authenticator", "a"],
                         capture_output=True, text=True, check=True).stdout
    for o in options:
        assert f"{o} = x" in out


def test_failure_log_line() -> None:
    host = "(client.example) [192.0.2.1]"
    assert failure_log_line("plain", host, AuthResult("fail", ("", "alice", "x"), "alice")) == (
        "plain authenticator failed for (client.example) [192.0.2.1]: "
        "535 Incorrect authentication data (set_id=alice)")
    assert failure_log_line("plain", host, AuthResult("fail")) == (
        "plain authenticator failed for (client.example) [192.0.2.1]: "
        "535 Incorrect authentication data")
    assert failure_log_line("w", host, AuthResult("defer", set_id="a", user_message="maybe")) \
        .endswith("435 Unable to authenticate at present (set_id=a): maybe")
    assert failure_log_line("l", host, AuthResult("cancelled")).endswith(
        ": 501 Authentication cancelled")


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None, reason="fail2ban not installed")
def test_fail2ban_exim_filter_matches(tmp_path) -> None:
    """Debian's fail2ban exim filter catches pymta's 535 failure lines (with and without
    set_id, with a host name), and like Exim's, not a cancelled exchange."""
    stamp = "2026-01-02 03:04:05 "
    lines = [
        failure_log_line("login", "mail.example.com (client.example) [192.0.2.7]",
                         AuthResult("fail", ("alice", "x"), "alice")),
        failure_log_line("plain", "(client.example) [192.0.2.8]", AuthResult("fail")),
        failure_log_line("plain", "(client.example) [192.0.2.9]", AuthResult("cancelled")),
    ]
    log = tmp_path / "mainlog"
    log.write_text("".join(stamp + line + "\n" for line in lines))
    out = subprocess.run(["fail2ban-regex", str(log), "/etc/fail2ban/filter.d/exim.conf"],
                         capture_output=True, text=True, check=True).stdout
    assert "Lines: 3 lines, 0 ignored, 2 matched, 1 missed" in out
    assert "192.0.2.9]: 501 Authentication cancelled" in out.split("Missed line(s):")[1]


def test_advertised_and_find_mechanism() -> None:
    plain = get_authenticator("plaintext")("plain", {
        "server_condition": "yes",
        "server_advertise_condition": "${if def:tls_in_cipher}"})
    login = get_authenticator("plaintext")("login", {"server_condition": "yes"})
    client_only = get_authenticator("cram_md5")("cram", {"client_secret": "x"})
    auths = [plain, login, client_only]
    expander = ContextExpander(ExpandContext())
    assert advertised(auths, expander, {}) == [login]
    assert advertised(auths, expander, {"tls_in_cipher": "TLS1.3"}) == [plain, login]
    assert find_mechanism([plain, login], "login") is login
    assert find_mechanism([plain, login], "CRAM-MD5") is None
