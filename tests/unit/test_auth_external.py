"""external: identity in $auth1, server_param2/3 from the client-certificate facts."""
from __future__ import annotations

import base64

import pytest

from pymta.auth.base import ClientError
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.external import ExternalAuthenticator
from pymta.auth.results import Challenge
from pymta.expand import ExpandContext

# The certificate facts the TLS layer will provide, stubbed as session variables.
CERT = {"tls_in_certificate_verified": "1",
        "tls_in_peerdn": "CN=alice,O=Example",
        "cert_mail_sans": "alice@example.org:al@example.org"}


def _auth(**opts: str) -> ExternalAuthenticator:
    base = {"public_name": "EXTERNAL",
            "server_advertise_condition": "$tls_in_certificate_verified",
            "server_param2": "$cert_mail_sans",
            "server_param3": "${if eq{$tls_in_certificate_verified}{1}{verified}fail}",
            "server_condition": "${if forany{$auth2}{eq{$item}{$auth1}}}",
            "server_set_id": "$auth1"}
    base.update(opts)
    return ExternalAuthenticator("ext", base)


def _expander() -> ContextExpander:
    return ContextExpander(ExpandContext(variables={"primary_hostname": "mx.example.test"}))


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_identity_matching_a_certificate_san() -> None:
    result = _auth().server_exchange(_expander(), CERT).start(b64("al@example.org"))
    assert result.reply == "235 Authentication succeeded"
    assert result.auth_vars == ("al@example.org", "alice@example.org:al@example.org", "verified")
    assert result.set_id == "al@example.org"


def test_identity_after_empty_prompt_and_wrong_identity() -> None:
    ex = _auth().server_exchange(_expander(), CERT)
    assert ex.start(None) == Challenge(b"")
    assert ex.respond(b64("mallory@example.org")).reply == "535 Incorrect authentication data"


def test_param_forced_failure_fails_and_error_defers() -> None:
    unverified = {**CERT, "tls_in_certificate_verified": "0"}
    assert _auth().server_exchange(_expander(), unverified).start(
        b64("alice@example.org")).reply == "535 Incorrect authentication data"
    result = _auth(server_param2="${if eq{x}}").server_exchange(_expander(), CERT).start(
        b64("alice@example.org"))
    assert result.reply == "435 Unable to authenticate at present" and result.log_message


def test_advertised_only_with_a_verified_certificate() -> None:
    assert _auth().advertise(_expander(), CERT)
    assert not _auth().advertise(_expander(), {"tls_in_certificate_verified": ""})


def test_client_send() -> None:
    client = ExternalAuthenticator("e", {"client_send": "me@$host"}).client_exchange(
        _expander(), {"host": "smarthost"})
    assert base64.b64decode(client.initial()) == b"me@smarthost"
    assert ExternalAuthenticator("e", {"client_send": ""}).client_exchange(
        _expander()).initial() == "="
    with pytest.raises(ClientError):
        ExternalAuthenticator("e", {"client_send": "${if eq{x}}"}).client_exchange(_expander())
