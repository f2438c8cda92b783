"""daemon_smtp_ports x local_interfaces, -oX, and Exim list syntax."""
import socket

import pytest

from pymta.daemon.listen import (
    apply_oX,
    bind_listeners,
    listen_addresses,
    split_interface,
    split_list,
)
from pymta.osutil import tcp_port


def test_split_list_separator_and_doubling():
    assert split_list("a : b:c") == ["a", "b", "c"]
    assert split_list("<; ::1 ; 127.0.0.1") == ["::1", "127.0.0.1"]
    assert split_list("::::1 : 127.0.0.1") == ["::1", "127.0.0.1"]


def test_ports_by_name_and_number():
    assert tcp_port("smtp") == 25
    assert tcp_port("2525") == 2525
    with pytest.raises(ValueError):
        tcp_port("no-such-service-here")


def test_interface_forms():
    assert split_interface("127.0.0.1.2525") == ("127.0.0.1", 2525)
    assert split_interface("[::1]:26") == ("::1", 26)
    assert split_interface("::1") == ("::1", None)
    assert split_interface("10.0.0.1") == ("10.0.0.1", None)
    with pytest.raises(ValueError):
        split_interface("not-an-ip")


def test_cross_product_and_own_ports():
    got = listen_addresses("<; 127.0.0.1 ; ::1 ; 127.0.0.2.99", "smtp : 587")
    assert got == [("127.0.0.1", 25), ("127.0.0.1", 587), ("::1", 25), ("::1", 587),
                   ("127.0.0.2", 99)]


def test_default_interfaces_are_wildcards():
    assert listen_addresses(None, "25") == [("::0", 25), ("0.0.0.0", 25)]


def test_oX_replaces_ports_or_interfaces():
    assert apply_oX("1225", "127.0.0.1", "smtp") == ("127.0.0.1", "<; 1225")
    i, p = apply_oX("192.168.34.5.1125", "127.0.0.1", "smtp")
    assert listen_addresses(i, p) == [("192.168.34.5", 1125)]
    i, p = apply_oX("<; 127.0.0.1 ; 2600", None, "smtp")
    assert listen_addresses(i, p) == [("127.0.0.1", 2600)]


def test_bind_listeners_nonblocking():
    socks = bind_listeners([("127.0.0.1", 0)])
    try:
        s = socks[0]
        assert s.getblocking() is False
        c = socket.create_connection(s.getsockname())
        c.close()
    finally:
        for s in socks:
            s.close()


def test_bind_failure_names_address_and_port():
    from pymta.daemon.listen import BindError
    held = bind_listeners([("127.0.0.1", 0)])
    port = held[0].getsockname()[1]
    try:
        with pytest.raises(BindError) as exc:
            bind_listeners([("127.0.0.1", 0), ("127.0.0.1", port)])
        assert str(exc.value) == (f"socket bind() to port {port} for address 127.0.0.1 "
                                  "failed: Address already in use")
    finally:
        held[0].close()
