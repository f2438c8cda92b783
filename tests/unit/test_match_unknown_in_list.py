"""A host list item whose name or address cannot be found forces the whole list match
to fail (Exim spec 10.15), negated or not; log_selector +unknown_in_list writes
Exim 4.96's line for it (wording taken from exim4 -bh, tests/data/logsel/unknown_in_list.log)."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from pymta.config.model import Config
from pymta.expand import ExpandContext
from pymta.log import check_log_selector
from pymta.match import match_host
from tests.support.dns import DnsServer

ORACLE = Path(__file__).resolve().parent.parent / "data" / "logsel" / "unknown_in_list.log"


class _Log:
    """Collects main-log lines, as the session log would write them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def main(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(text)


def _ctx(selector: str) -> tuple[ExpandContext, _Log]:
    main = types.SimpleNamespace(primary_hostname="mx.test", qualify_domain="test",
                                 log_selector=selector)
    ctx = ExpandContext(config=Config(filename="x", main=main))
    # the client's name was looked up before and not found (that failure is logged
    # where it happens, by the session's host lookup)
    ctx.variables["host_lookup_failed"] = "1"
    log = _Log()
    ctx.log = log
    return ctx, log


def _oracle() -> list[str]:
    # exim4 -bh shows each main-log line as "LOG: <text>"
    return [ln.removeprefix("LOG: ") for ln in ORACLE.read_text().splitlines() if ln]


def test_selector_accepted():
    check_log_selector("+unknown_in_list")
    check_log_selector("-unknown_in_list")


@pytest.mark.parametrize("lst", ["*.example.com : 192.0.2.1", "!*.example.com : *",
                                 "lsearch;/nonexistent : 192.0.2.1"])
def test_no_host_name_forces_fail(lst):
    ctx, log = _ctx("+unknown_in_list")
    assert match_host("192.0.2.1", "", lst, ctx) is False
    assert log.lines == ["list matching forced to fail: failed to find host name for "
                         "192.0.2.1"]


def test_addresses_before_the_name_item_still_match():
    ctx, log = _ctx("+unknown_in_list")
    assert match_host("192.0.2.1", "", "192.0.2.1 : *.example.com", ctx) is True
    assert log.lines == []


def test_not_logged_without_selector():
    ctx, log = _ctx("")
    assert match_host("192.0.2.1", "", "*.example.com : 192.0.2.1", ctx) is False
    assert log.lines == []


ZONES = {"test": """
    other  IN A 192.0.2.9
    client IN A 127.0.0.1
"""}


def test_unknown_address_forces_fail_and_logs_exim_line():
    ctx, log = _ctx("+unknown_in_list")
    with DnsServer(ZONES) as srv, srv.as_default_resolver():
        # a name that resolves elsewhere only fails to match: the list goes on
        assert match_host("127.0.0.1", None, "other.test : 127.0.0.1", ctx) is True
        assert match_host("127.0.0.1", None, "client.test", ctx) is True
        assert log.lines == []
        for lst in ("missing.test : 127.0.0.1", "! missing.test : 127.0.0.1"):
            assert match_host("127.0.0.1", None, lst, ctx) is False
    # Exim's default line about the name, then the +unknown_in_list one
    assert log.lines == ["no IP address found for host missing.test",
                         "list matching forced to fail: failed to find IP address for "
                         "missing.test"] * 2


def test_wording_is_exims():
    """The lines exim4 -bh wrote for the same two failures (recorded oracle output)."""
    assert _oracle() == [
        "list matching forced to fail: failed to find IP address for "
        "nonexistent-host.invalid.example",
        "list matching forced to fail: failed to find host name for 1.2.3.4"]
