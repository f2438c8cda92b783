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


def test_arrival_and_delivery_events():
    from pymta.logevents import Arrival, Delivery
    cfg = _config("+incoming_port +incoming_interface")
    arrival = Arrival(sender="", protocol="esmtps", size=1234, bounce_reference="1abc-0000",
                      host_address="192.0.2.1", host_name="mx.example", helo_name="helo.example",
                      host_port=40000, interface=("198.51.100.25", 25), session=FACTS,
                      message_id="x@y")
    assert arrival.fields(cfg) == (
        "<> R=1abc-0000 H=mx.example (helo.example) [192.0.2.1]:40000 "
        "I=[198.51.100.25]:25 P=esmtps X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes "
        "A=plain:alice S=1234 id=x@y")
    local = Arrival(sender="u@example", protocol="local", size=5, local_user="u")
    assert local.fields(_config()) == "u@example U=u P=local S=5"
    delivery = Delivery(name="joe@example", router="r", transport="t",
                        host="H=mx [192.0.2.2]", session=FACTS, confirmation='250 "ok"')
    assert delivery.line(_config()) == (
        '=> joe@example R=r T=t H=mx [192.0.2.2] '
        'X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes A=plain:alice C="250 \\"ok\\""')
    assert Delivery(name="x <y@z>", router="r", transport="t", first=False).line(
        _config()) == "-> x <y@z> R=r T=t"


def test_deferral_and_failure_events():
    from pymta.logevents import Deferral, Failure
    assert Deferral("a@b.example", -44, " H=mx [192.0.2.2]: SMTP error from remote mail "
                    "server after RCPT TO:<a@b.example>: 451 later", router="dnslookup",
                    transport="remote_smtp").text() == (
        "a@b.example R=dnslookup T=remote_smtp defer (-44) H=mx [192.0.2.2]: SMTP error "
        "from remote mail server after RCPT TO:<a@b.example>: 451 later")
    assert Deferral("a@b.example", -1, ": lookup failed", router="r").text() == \
        "a@b.example R=r defer (-1): lookup failed"
    assert Failure("a@b.example", "Unrouteable address").text() == \
        "a@b.example: Unrouteable address"
    assert Failure("a@b.example", "550 no", router="r", transport="t",
                   host="H=mx [192.0.2.2]").text() == \
        "a@b.example R=r T=t H=mx [192.0.2.2]: 550 no"
