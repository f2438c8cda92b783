"""``begin authenticators``: the drivers pymta has are loaded with their options (server
and client ones); Exim drivers pymta does not have stay errors naming file and line."""
from __future__ import annotations

import pytest

from pymta.auth.base import Authenticator
from pymta.auth.configured import server_authenticators
from pymta.config.model import ConfigError
from pymta.config.reader import load_config

CONF = r"""
primary_hostname = mx.example.test
auth_advertise_hosts = *
acl_smtp_auth = accept
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{alice}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
  server_advertise_condition = ${if def:tls_in_cipher}
  client_send = ^alice^secret
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{alice}{secret}fail}
  server_set_id = $auth1
  client_name = alice
  client_secret = secret
scram:
  driver = gsasl
  public_name = SCRAM-SHA-256
  server_mech = SCRAM-SHA-256
  server_password = secret
  server_condition = true
  server_set_id = $auth1
dov:
  driver = dovecot
  public_name = X-DOV
  server_socket = /run/dovecot/auth-client
  server_set_id = $auth1
ext:
  driver = external
  server_param2 = ${certextract{subject,CN}{$tls_in_peercert}}
  server_condition = true
  server_set_id = $auth2
client_only:
  driver = plaintext
  public_name = LOGIN
  client_send = : alice : secret
"""


def _load(tmp_path, text: str):
    conf = tmp_path / "pymta.conf"
    conf.write_text(text)
    return load_config(str(conf))


def test_every_driver_loads_with_its_options(tmp_path) -> None:
    config = _load(tmp_path, CONF)
    objs = {n: i.obj for n, i in config.authenticators.items()}
    assert all(isinstance(o, Authenticator) for o in objs.values())
    assert {n: o.driver_name for n, o in objs.items()} == {
        "plain": "plaintext", "cram": "cram_md5", "scram": "gsasl", "dov": "dovecot",
        "ext": "external", "client_only": "plaintext"}
    assert [o.public_name for o in objs.values()] == [
        "PLAIN", "CRAM-MD5", "SCRAM-SHA-256", "X-DOV", "EXT", "LOGIN"]
    assert objs["plain"].opt("server_prompts") == ":"
    assert objs["plain"].opt("server_advertise_condition") == "${if def:tls_in_cipher}"
    # Client options are kept on the instance for the smtp transport.
    assert objs["plain"].opt("client_send") == "^alice^secret"
    assert objs["cram"].opt("client_name") == "alice"
    assert objs["dov"].opt("server_socket") == "/run/dovecot/auth-client"
    assert objs["scram"].opt("server_mech") == "SCRAM-SHA-256"
    assert objs["ext"].opt("server_param2").startswith("${certextract")
    # Server functions only where a server option is set, in configuration order.
    assert [a.name for a in server_authenticators(config)] == [
        "plain", "cram", "scram", "dov", "ext"]
    assert objs["client_only"].is_client and not objs["client_only"].is_server


@pytest.mark.parametrize("driver", ["spa", "cyrus_sasl", "heimdal_gssapi", "tls"])
def test_exim_drivers_pymta_lacks_are_errors(tmp_path, driver: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, f"# c\nbegin authenticators\nx:\n  driver = {driver}\n")
    assert e.value.line == 3 and str(tmp_path / "pymta.conf") in str(e.value)
    assert f'authenticator driver "{driver}" is not supported' in str(e.value)


def test_unknown_option_names_file_and_line(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, "begin authenticators\nx:\n  driver = plaintext\n"
              "  server_prompts = :\n  no_such_thing = 1\n")
    assert e.value.line == 5 and "no_such_thing" in str(e.value)


def test_gsasl_options_outside_scram_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, "begin authenticators\nx:\n  driver = gsasl\n"
              "  server_mech = SCRAM-SHA-1\n  server_realm = EXAMPLE\n")
    assert e.value.line == 5 and "server_realm" in str(e.value)


def test_two_authenticators_with_one_public_name_is_an_error(tmp_path) -> None:
    """Exim refuses two server authenticators advertising the same mechanism."""
    with pytest.raises(ConfigError, match=r"two server authenticators \(a and b\) have "
                       r"the same public name \(PLAIN\)"):
        _load(tmp_path, "begin authenticators\na:\n  driver = plaintext\n"
              "  public_name = PLAIN\n  server_condition = yes\n"
              "b:\n  driver = plaintext\n  public_name = PLAIN\n  server_condition = yes\n")
