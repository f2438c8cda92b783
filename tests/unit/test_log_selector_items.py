"""pymta.log.selected_items: the one log_selector parser (Exim's defaults, then the
setting's +name/-name items in order, +all/-all; items pymta always logs stay on)."""
from __future__ import annotations

from types import SimpleNamespace

from pymta.log import LOG_SELECTORS_ALWAYS, log_selected, selected_items


def _config(text: str) -> SimpleNamespace:
    return SimpleNamespace(main=SimpleNamespace(log_selector=text))


def test_exim_defaults():
    on = selected_items("")
    for item in ("queue_run", "tls_cipher", "tls_certificate_verified", "etrn",
                 "lost_incoming_connection", "size_reject", "sender_verify_fail"):
        assert item in on
    for item in ("pid", "incoming_port", "tls_peerdn", "tls_sni", "smtp_syntax_error"):
        assert item not in on
    assert LOG_SELECTORS_ALWAYS <= on


def test_items_apply_in_order():
    assert log_selected(_config("+tls_peerdn -tls_cipher"), "tls_peerdn")
    assert not log_selected(_config("+tls_peerdn -tls_cipher"), "tls_cipher")
    assert log_selected(_config("-tls_sni +tls_sni"), "tls_sni")
    assert not log_selected(_config("+tls_sni -tls_sni"), "tls_sni")


def test_all_and_minus_all():
    assert log_selected(_config("+all"), "pid")
    assert not log_selected(_config("-all"), "queue_run")
    assert log_selected(_config("-all"), "msg_id")           # always logged
    assert log_selected(_config("-all +queue_run"), "queue_run")
