"""The smtp transport's answers to a refused STARTTLS (Exim 4.96's rules): a 5xx goes on
in clear text; a 4xx goes on in clear text only with tls_tempfail_tryclear; with
hosts_require_tls both defer (-38).  Handshakes with real TLS servers are in
tests/integration/test_smtp_tls_client.py."""
from __future__ import annotations

from pymta.errnos import EximErrno
from tests.unit.test_transport_smtp import (  # noqa: F401 - fixtures
    close_cached_connections,
    local,
    make_job,
    server,
    transport,
)

EHLO_TLS = (250, "test\nPIPELINING\nSTARTTLS")


def test_5xx_to_starttls_delivers_in_clear(server, tmp_path):  # noqa: F811 - the imported fixture
    s = server(ehlo=EHLO_TLS, starttls=(554, "no TLS today"))
    job = make_job(tmp_path, hosts=[local(s)])
    transport().deliver(job)
    assert job.addresses[0].result == "ok"
    assert job.addresses[0].tls_cipher == ""
    assert "STARTTLS" in s.commands and len(s.messages) == 1


def test_4xx_to_starttls_delivers_in_clear_with_tryclear(server, tmp_path):  # noqa: F811 - the imported fixture
    s = server(ehlo=EHLO_TLS, starttls=(454, "TLS not available"))
    job = make_job(tmp_path, hosts=[local(s)])
    transport().deliver(job)
    assert job.addresses[0].result == "ok"
    assert len(s.messages) == 1


def test_4xx_to_starttls_defers_without_tryclear(server, tmp_path):  # noqa: F811 - the imported fixture
    s = server(ehlo=EHLO_TLS, starttls=(454, "TLS not available"))
    job = make_job(tmp_path, hosts=[local(s)])
    transport(tls_tempfail_tryclear=False).deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and not s.messages
    assert a.message == ("SMTP error from remote mail server after STARTTLS: "
                         "454 TLS not available")


def test_refused_starttls_defers_under_hosts_require_tls(server, tmp_path):  # noqa: F811 - the imported fixture
    s = server(ehlo=EHLO_TLS, starttls=(554, "no"))
    job = make_job(tmp_path, hosts=[local(s)])
    transport(hosts_require_tls="*").deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == EximErrno.TLSREQUIRED
    assert a.message == "a TLS session is required, but an attempt to start TLS failed"
    assert not s.messages


def test_hosts_avoid_tls_does_not_send_starttls(server, tmp_path):  # noqa: F811 - the imported fixture
    s = server(ehlo=EHLO_TLS)
    job = make_job(tmp_path, hosts=[local(s)])
    transport(hosts_avoid_tls="127.0.0.1").deliver(job)
    assert job.addresses[0].result == "ok"
    assert "STARTTLS" not in s.commands
