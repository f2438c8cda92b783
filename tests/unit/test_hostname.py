"""Finding a client's host name (pymta.hostname) against a real DNS server on loopback:
PTR names confirmed in the DNS only, host_lookup_order, and temporary errors that make
the lookup defer (and are remembered until the next connection)."""
from __future__ import annotations

import pytest

from pymta.config import load_config
from pymta.config.model import ConfigError
from pymta.hostname import (
    FORWARD_AGAIN,
    PTR_AGAIN,
    HostLookupDeferred,
    HostName,
    client_host_name,
    find_host_name,
    forget_temporary_errors,
    parse_lookup_order,
)
from tests.support.dns import DnsServer

NAME_ZONES = {
    "names.test": "client IN A 127.0.0.1\nother IN A 192.0.2.9\n",
    "0.0.127.in-addr.arpa": "1 IN PTR client.names.test.\n",
    "2.0.192.in-addr.arpa": "9 IN PTR localhost.\n10 IN PTR nowhere.names.test.\n"
                            "11 IN PTR broken.names.test.\n",
    "localhost": "",            # served, so "localhost" is a name without addresses
    # (a name in no zone the server serves is REFUSED: a temporary error, as in Exim)
}


@pytest.fixture
def dns_server():
    forget_temporary_errors()
    with DnsServer(NAME_ZONES, servfail=("12.2.0.192.in-addr.arpa", "broken.names.test")
                   ) as srv, srv.as_pymta_server():
        try:
            yield srv
        finally:
            forget_temporary_errors()


def test_client_name_is_confirmed_in_the_dns_only(dns_server):
    """As Exim: a PTR name counts only when the DNS gives the address back; the system's
    /etc/hosts ("localhost") never confirms one."""
    assert find_host_name("127.0.0.1") == HostName("client.names.test", False, True)
    # PTR names localhost, which only /etc/hosts knows (as 127.0.0.1 anyway)
    assert find_host_name("192.0.2.9") == HostName(
        None, False, True, "192.0.2.9 does not match any IP address for localhost")
    assert find_host_name("192.0.2.10").name is None
    assert find_host_name("192.0.2.77", ("bydns",)) == HostName(
        None, reason="failed to find host name from IP address")


def test_lookup_order_decides_whether_the_system_resolver_is_asked(dns_server):
    """With byaddr first, gethostbyaddr() is asked first: for 127.0.0.1 /etc/hosts says
    "localhost", which the DNS does not confirm, and the DNS PTR is then not tried (the
    system resolver had a name); with bydns first the PTR's name is found."""
    assert find_host_name("127.0.0.1", ("byaddr", "bydns")) == HostName(
        None, False, True, "127.0.0.1 does not match any IP address for localhost")
    assert find_host_name("127.0.0.1", ("bydns", "byaddr")).name == "client.names.test"


def test_ptr_servfail_defers_and_is_remembered(dns_server):
    def asked() -> int:
        return dns_server.queries.count(("12.2.0.192.in-addr.arpa", "PTR"))
    with pytest.raises(HostLookupDeferred, match=PTR_AGAIN):
        find_host_name("192.0.2.12")
    first = asked()
    assert first >= 1
    with pytest.raises(HostLookupDeferred):
        find_host_name("192.0.2.12")           # from the remembered error
    assert asked() == first
    # dns_again_means_nonexist: the temporary error counts as no such name
    forget_temporary_errors()
    assert find_host_name("192.0.2.12", again_nonexist=lambda name: True).name is None


def test_forward_servfail_defers(dns_server):
    with pytest.raises(HostLookupDeferred, match=FORWARD_AGAIN):
        find_host_name("192.0.2.11")


def test_outcome_recorded_in_the_variables(dns_server):
    v: dict[str, str] = {}
    logged: list[str] = []
    assert client_host_name(v, "127.0.0.1", log_no_name=logged.append).name == \
        "client.names.test"
    assert v["sender_host_name"] == "client.names.test"
    assert v["sender_rcvhost"] == "client.names.test ([127.0.0.1])"
    assert v["sender_host_dnssec"] == "no" and "host_lookup_failed" not in v
    v = {}
    client_host_name(v, "192.0.2.77", order=("bydns",), log_no_name=logged.append)
    assert v["host_lookup_failed"] == "1"
    assert logged == ["no host name found for IP address 192.0.2.77"]
    v = {}
    client_host_name(v, "192.0.2.9", log_no_name=logged.append)   # had a name: no line
    assert v["host_lookup_failed"] == "1" and len(logged) == 1
    v = {}
    with pytest.raises(HostLookupDeferred):
        client_host_name(v, "192.0.2.12")
    assert v == {"host_lookup_deferred": "1"}


def test_lookup_order_words():
    assert parse_lookup_order("bydns:byaddr") == ("bydns", "byaddr")
    assert parse_lookup_order(" ByAddr ") == ("byaddr",)
    with pytest.raises(ValueError, match='"byname" is not'):
        parse_lookup_order("bydns:byname")


def test_unknown_lookup_order_word_is_a_configuration_error(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(f"spool_directory = {tmp_path}\nhost_lookup_order = bydns : byname\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(conf))
    assert "byname" in str(err.value) and "line 2" in str(err.value)
