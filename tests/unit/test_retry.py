"""Retry rules, next-try computation and retry hint records."""
import errno

import pytest

from pymta.address import Address, Host
from pymta.config.model import Config
from pymta.config.reader import parse_retry_rule
from pymta.delivery import retry
from pymta.errnos import EximErrno
from pymta.hints.retry import RetryDB, RetryRecord, host_key

H, M, D = 3600, 60, 86400


def rules(*lines):
    return [parse_retry_rule(ln, "f", i) for i, ln in enumerate(lines)]


def config(*lines):
    c = Config("x", main=None)
    c.retry_rules = rules(*lines)
    return c


def test_rule_choice_by_host_then_domain():
    c = config("p.q.r.example  *  F,24h,30m", "a.b.c.example  *  F,4d,45m")
    r = retry.find_retry_rule(c, "x.y.z.example", "refused_A", alt_domain="a.b.c.example")
    assert r.pattern == "a.b.c.example"
    r = retry.find_retry_rule(c, "p.q.r.example", "refused_A", alt_domain="a.b.c.example")
    assert r.pattern == "p.q.r.example"
    assert retry.find_retry_rule(c, "other.example", None) is None


def test_rule_patterns_addresses_and_negation():
    c = config("alice@w.example quota F,7d,3h", "!*.w.example * F,1h,15m", "* * F,2h,5m")
    assert retry.find_retry_rule(c, "alice@w.example", "quota").pattern == "alice@w.example"
    assert retry.find_retry_rule(c, "bob@w.example", "quota").pattern == "!*.w.example"
    assert retry.find_retry_rule(c, "bob@x.w.example", "quota").pattern == "*"


@pytest.mark.parametrize("rule_err,err,hit", [
    ("*", None, True), ("refused", "refused_MX", True), ("refused_A", "refused_MX", False),
    ("rcpt_4xx", "rcpt_452", True), ("rcpt_45x", "rcpt_452", True),
    ("rcpt_45x", "rcpt_421", False), ("rcpt_452", "mail_452", False),
    ("timeout", "timeout_connect_A", True), ("timeout_A", "timeout_connect_A", True),
    ("timeout_connect_MX", "timeout_connect_A", False), ("quota", "quota", True),
    ("quota_4d", "quota_400000", True), ("quota_5d", "quota_400000", False),
])
def test_error_names(rule_err, err, hit):
    assert retry.error_matches(rule_err, err) is hit


def test_error_name_from_address():
    a = Address("a@b.example", basic_errno=errno.ECONNREFUSED)
    a.host_used = Host("mx.b.example", "198.51.100.1", mx=10)
    assert retry.error_name(a) == "refused_MX"
    a = Address("a@b.example", basic_errno=EximErrno.RCPT4XX, more_errno=452)
    assert retry.error_name(a) == "rcpt_452"


def test_senders_rules():
    c = config("*  rcpt_4xx  senders=:  F,1h,30m", "* * F,2h,15m")
    assert retry.find_retry_rule(c, "a@b", "rcpt_451", sender="").rules[0][1] == H
    assert retry.find_retry_rule(c, "a@b", "rcpt_451", sender="x@y").rules[0][1] == 2 * H
    # as with -brt without -f, a senders rule never matches an unknown sender
    assert retry.find_retry_rule(c, "a@b", "rcpt_451").rules[0][1] == 2 * H


def test_fixed_then_geometric_then_fixed():
    rule = rules("* * F,2h,15m; G,16h,1h,1.5; F,4d,6h")[0]
    t0 = 1_000_000
    rec = retry.compute_next(rule, None, t0)
    assert (rec.first_failed, rec.next_try - t0, rec.expired) == (t0, 15 * M, False)
    # after 2h: geometric, starting at 1h, then x1.5
    t = t0 + 2 * H
    rec = retry.compute_next(rule, rec, t)
    assert rec.next_try - t == H
    t = rec.next_try
    rec = retry.compute_next(rule, rec, t)
    assert rec.next_try - t == int(1.5 * H)
    t = rec.next_try
    rec = retry.compute_next(rule, rec, t)
    assert rec.next_try - t == int(1.5 * 1.5 * H)
    # beyond 16h: fixed 6h
    t = t0 + 17 * H
    rec = retry.compute_next(rule, rec, t)
    assert rec.next_try - t == 6 * H and not rec.expired
    # beyond the final cutoff (4d from the FIRST failure): expired
    t = t0 + 4 * D + 1
    rec = retry.compute_next(rule, rec, t)
    assert rec.expired and rec.first_failed == t0


def test_interval_max_and_stale_records():
    rule = rules("* * F,30d,3d")[0]
    rec = retry.compute_next(rule, None, 0, interval_max=D)
    assert rec.next_try == D
    old = RetryRecord(first_failed=0, last_try=0, next_try=D)
    rec = retry.compute_next(rule, old, 8 * D, data_expire=7 * D, interval_max=D)
    assert rec.first_failed == 8 * D          # stale data ignored: a new failure period
    assert retry.is_due(old, 8 * D, 7 * D) and not retry.is_due(old, D - 1)


def test_random_rule_within_bounds():
    rule = rules("* * H,10h,1h,2")[0]
    rec = RetryRecord(0, 0, 4 * H)
    for _ in range(20):
        new = retry.compute_next(rule, rec, 4 * H)
        assert H <= new.next_try - 4 * H <= 8 * H


def test_rule_without_parameters_fails_at_once():
    rule = rules("wonderland.example quota_5d")[0]
    assert retry.compute_next(rule, None, 5).expired


class MemDB(dict):
    def put(self, k, v):
        self[k] = v

    def delete(self, k):
        return self.pop(k, None) is not None

    def items(self):
        return list(super().items())


def test_record_encoding_and_db():
    db = RetryDB("/nonexistent", MemDB())
    rec = RetryRecord(1, 2, 3, True, 111, 0, "Connection refused")
    db.put("T:mx:198.51.100.1", rec)
    assert db.get("T:mx:198.51.100.1") == rec
    assert db.items() == [("T:mx:198.51.100.1", rec)]
    db.delete("T:mx:198.51.100.1")
    assert db.get("T:mx:198.51.100.1") is None
    assert RetryRecord.decode(b"garbage") is None
    assert host_key("mx", "198.51.100.1") == "T:mx:198.51.100.1"
    assert host_key("mx", "198.51.100.1", 2526) == "T:mx:198.51.100.1:2526"
    assert host_key("mx", "198.51.100.1", 25) == "T:mx:198.51.100.1"


def test_retry_db_on_lmdb(tmp_path):
    db = RetryDB(str(tmp_path))
    db.put("R:x.example", RetryRecord(1, 2, 3))
    assert RetryDB(str(tmp_path)).get("R:x.example").next_try == 3
