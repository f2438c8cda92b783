"""Pure parts of the admin commands: main log counting (pymta-stats), the reply
picking of pymta-checkaccess, pymta-fixdb's time syntax and pymta-next's key parsing."""
from __future__ import annotations

import time
from pathlib import Path

from pymta.admin.checkaccess import rcpt_reply, verdict
from pymta.admin.fixdb import parse_fix_time
from pymta.admin.next import describe
from pymta.admin.stats import as_dict, parse, reject_reason
from pymta.hints.retry import RetryRecord

LOG = (Path(__file__).resolve().parent.parent / "data" / "admin" / "mainlog-sample")


def test_stats_counts_deliveries_addresses_failures():
    d = as_dict(parse(LOG.read_text().splitlines(keepends=True)), 50)
    # the local submission comes from the host "local"
    assert d["received"] == {"messages": 2, "bytes": 1500, "hosts": 2, "delayed": 0,
                             "failed": 1}
    # -> is an address of the same delivery; a delivery counts the size received
    assert d["delivered"] == {"messages": 2, "addresses": 3, "bytes": 1500, "hosts": 2}
    assert d["transports"] == {"local_delivery": {"messages": 1, "bytes": 500},
                               "remote_smtp": {"messages": 1, "bytes": 1000}}
    assert [r["name"] for r in d["destination_hosts_by_volume"]] == ["mx.y.example", "local"]
    assert d["errors"][0]["error"].startswith("d@z.example R=r T=remote_smtp")
    assert {r["reason"] for r in d["rejections"]} == {
        "Rejected RCPT: relay not permitted", "Rejected connection: blocked",
        "Rejected DATA: spam"}
    assert d["rejected_ips"][0] == {"count": 1, "ip": "[203.0.113.5]"}
    assert d["from"] == "2026-01-02 10:00:00" and d["to"] == "2026-01-02 10:06:02"


def test_reject_reasons():
    assert reject_reason("MAIL <a@b>: sender verify failed") == \
        "Rejected MAIL: sender verify failed"
    assert reject_reason("EHLO or HELO x..y: invalid") == "Rejected EHLO or HELO: invalid"
    assert reject_reason("something odd") == "something odd"


def test_checkaccess_picks_the_fourth_reply():
    out = ("**** SMTP testing session\n220 banner\n250 hello\n250 OK\n"
           "550-first line\n550 second line\n221 bye\n")
    reply = rcpt_reply(out)
    assert reply == "550-first line\n550 second line\n"
    assert verdict(reply) == "Rejected:\n  550-first line\n  550 second line\n"
    assert verdict("250 Accepted\n") == "Accepted\n"
    assert verdict(None).startswith("Rejected:")


def test_fixdb_times():
    want = int(time.mktime((2026, 12, 4, 18, 0, 0, 0, 0, -1)))
    assert parse_fix_time("261204:1800") == want
    assert parse_fix_time("2612041800") == want
    assert parse_fix_time("202612041800") == want
    assert parse_fix_time("261304:1800") is None
    assert parse_fix_time("bad") is None


def test_next_describes_keys_as_exinext():
    rec = RetryRecord(0, 0, 0, basic_errno=111, text="Connection refused")
    assert describe("T:mx.example:192.0.2.1", rec) == \
        "Transport: mx.example [192.0.2.1] error 111: Connection refused"
    assert describe("T:mx.example:192.0.2.1:587", rec) == \
        "Transport: mx.example [192.0.2.1]:587 error 111: Connection refused"
    v6 = RetryRecord(0, 0, 0, basic_errno=111, text="H=mx6.example [2001:db8::1]: host "
                     "mx6.example [2001:db8::1]: Connection refused")
    assert describe("T:mx6.example:2001:db8::1", v6).startswith(
        "Transport: mx6.example [2001:db8::1] error 111")
    assert describe("R:example.org", rec) == "Route: example.org error 111: Connection refused"
    assert describe("T:user@example.org", rec) == \
        "Transport: user@example.org error 111: Connection refused"
