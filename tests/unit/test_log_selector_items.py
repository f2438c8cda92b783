"""pymta.log.selected_items: the one log_selector parser (Exim's defaults, then the
setting's +name/-name items in order, +all/-all; items pymta always logs stay on)."""
from __future__ import annotations

from types import SimpleNamespace

from pymta.log import (
    LOG_SELECTORS_ALWAYS,
    check_log_selector,
    log_duration,
    log_selected,
    selected_items,
)


def _config(text: str) -> SimpleNamespace:
    return SimpleNamespace(main=SimpleNamespace(log_selector=text))


def test_exim_defaults():
    on = selected_items("")
    for item in ("queue_run", "tls_cipher", "tls_certificate_verified", "etrn",
                 "lost_incoming_connection", "size_reject", "sender_verify_fail"):
        assert item in on
    for item in ("pid", "incoming_port", "tls_peerdn", "tls_sni", "smtp_syntax_error"):
        assert item not in on


def test_items_apply_in_order():
    assert log_selected(_config("+tls_peerdn -tls_cipher"), "tls_peerdn")
    assert not log_selected(_config("+tls_peerdn -tls_cipher"), "tls_cipher")
    assert log_selected(_config("-tls_sni +tls_sni"), "tls_sni")
    assert not log_selected(_config("+tls_sni -tls_sni"), "tls_sni")


def test_all_and_minus_all():
    assert log_selected(_config("+all"), "pid")
    assert not log_selected(_config("-all"), "queue_run")
    assert not log_selected(_config("-all"), "retry_defer")
    assert not log_selected(_config("-all"), "msg_id")
    assert not log_selected(_config("-all"), "smtp_confirmation")
    assert not log_selected(_config("-all"), "outgoing_interface")
    assert log_selected(_config("-all +queue_run"), "queue_run")


DELIVERY_ITEMS = ("all_parents", "deliver_time", "delivery_size", "millisec",
                  "outgoing_port", "queue_time", "queue_time_exclusive",
                  "queue_time_overall", "return_path_on_delivery", "sender_on_delivery",
                  "address_rewrite")
DEFAULT_ON = ("outgoing_interface", "msg_id", "smtp_confirmation", "retry_defer", "skip_delivery",
              "delay_delivery",
              "rejected_header", "acl_warn_skipped", "dnslist_defer")


def test_delivery_items_follow_exim_defaults():
    """Exim 4.96 has outgoing_interface, msg_id, smtp_confirmation, retry_defer,
    rejected_header, acl_warn_skipped and dnslist_defer on by default, the other
    delivery items off; +all turns them all on and -name off again."""
    on = selected_items("")
    assert not LOG_SELECTORS_ALWAYS          # every Exim default can be turned off
    for item in DEFAULT_ON:
        assert item in on
        assert not log_selected(_config(f"-{item}"), item)
    for item in DELIVERY_ITEMS:
        assert item not in on
        assert log_selected(_config(f"+{item}"), item)
        assert log_selected(_config("+all"), item)
        assert not log_selected(_config(f"+all -{item}"), item)


def test_delivery_items_are_accepted():
    for item in DELIVERY_ITEMS + DEFAULT_ON:
        check_log_selector(f"+{item}")
        check_log_selector(f"-{item}")


def test_durations_in_exim_form():
    """QT=/DT= values: whole seconds (Exim's 1m2s form); with +millisec, times under
    five seconds have three decimals, longer ones stay whole (as Exim 4.96 logs
    "QT=6s" and "DT=0.047s" side by side)."""
    plain, milli = _config(""), _config("+millisec")
    assert log_duration(plain, 0.047) == "0s"
    assert log_duration(plain, 125.9) == "2m5s"
    assert log_duration(milli, 0.047) == "0.047s"
    assert log_duration(milli, 1.5) == "1.500s"
    assert log_duration(milli, 4.9999) == "4.999s"
    assert log_duration(milli, 6.2) == "6s"
