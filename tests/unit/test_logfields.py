"""pymta.logfields: X=, CV=, DN=, SNI=, A= as Exim writes them, under log_selector."""
from __future__ import annotations

from types import SimpleNamespace

from pymta.logfields import SessionLogFacts, session_fields


def _config(selector: str = "") -> SimpleNamespace:
    return SimpleNamespace(main=SimpleNamespace(log_selector=selector))


FACTS = SessionLogFacts(cipher="TLS1.3:TLS_AES_256_GCM_SHA384:256", certificate_verified=True,
                        peerdn="CN=c.example", sni="mx.example", resumed=True,
                        authenticator="plain", auth_id="alice")


def test_defaults():
    assert session_fields(_config(), FACTS) == [
        "X=TLS1.3:TLS_AES_256_GCM_SHA384:256", "CV=yes", "A=plain:alice"]


def test_everything_selected():
    assert session_fields(_config("+tls_peerdn +tls_sni +tls_resumption"), FACTS) == [
        "X=TLS1.3:TLS_AES_256_GCM_SHA384:256*", "CV=yes", 'DN="CN=c.example"',
        "SNI=mx.example", "A=plain:alice"]


def test_nothing_selected_and_no_tls():
    assert session_fields(_config("-tls_cipher -tls_certificate_verified"), FACTS) == [
        "A=plain:alice"]
    assert session_fields(_config("+all"), SessionLogFacts(authenticator="cram")) == [
        "A=cram"]
    assert session_fields(_config(), SessionLogFacts(cipher="TLS1.2:X:128", dane=True)) == [
        "X=TLS1.2:X:128", "CV=dane"]
