"""The -host_address / -interface_address values of a -H file (pymta.spool.hostaddr)."""
from __future__ import annotations

import pytest

from pymta.spool.hostaddr import delivery_host_variables, format_address_port, parse_address_port
from pymta.taint import Tainted, is_tainted


@pytest.mark.parametrize("text, expected", [
    # what Exim 4.96 writes (checked with exim4 receiving over 127.0.0.1 and ::1)
    ("[192.0.2.1]:4567", ("192.0.2.1", 4567)),
    ("[::1]:33744", ("::1", 33744)),
    ("[2001:db8::1]:25", ("2001:db8::1", 25)),
    ("[::ffff:192.0.2.1]:25", ("::ffff:192.0.2.1", 25)),
    # the older "address.port" form the spec's spool chapter describes
    ("192.0.2.1.4567", ("192.0.2.1", 4567)),
    ("2001:db8::1.4567", ("2001:db8::1", 4567)),
    # no port
    ("192.0.2.1", ("192.0.2.1", None)),
    ("2001:db8::1", ("2001:db8::1", None)),
    ("[192.0.2.1]", ("192.0.2.1", None)),
    ("[2001:db8::1]", ("2001:db8::1", None)),
])
def test_parse_address_port(text, expected):
    assert parse_address_port(text) == expected


@pytest.mark.parametrize("text", ["", "[192.0.2.1", "[192.0.2.1]x", "[192.0.2.1]:port",
                                  "[not.an.ip]:25", "host.example.25", "192.0.2.1.99999",
                                  "[192.0.2.1]:-1"])
def test_parse_address_port_rejects_garbage(text):
    with pytest.raises(ValueError):
        parse_address_port(text)


def test_parse_keeps_taint_of_the_address():
    addr, port = parse_address_port(Tainted("[192.0.2.1]:4567"))
    assert addr == "192.0.2.1" and is_tainted(addr) and port == 4567


@pytest.mark.parametrize("addr, port", [("192.0.2.1", 4567), ("2001:db8::1", 25),
                                        ("::1", 0)])
def test_format_round_trips(addr, port):
    assert parse_address_port(format_address_port(addr, port)) == (addr, port)


def test_delivery_variables_from_spool():
    v = delivery_host_variables({"host_address": Tainted("[192.0.2.1]:4567"),
                                 "interface_address": Tainted("[2001:db8::2]:587")})
    assert v == {"sender_host_address": "192.0.2.1", "sender_host_port": "4567",
                 "received_ip_address": "2001:db8::2", "received_port": "587",
                 "interface_address": "2001:db8::2", "interface_port": "587"}
    assert is_tainted(v["sender_host_address"])


def test_delivery_variables_local_message_and_bad_value():
    assert delivery_host_variables({}) == {}
    # a value that is no address is kept as it is, without a port (like Exim)
    assert delivery_host_variables({"host_address": "garbage"}) == {
        "sender_host_address": "garbage"}
