"""The callout cache (spec 44.48) in a real LMDB hints database."""
from __future__ import annotations

from pymta.hints.callout import (
    ACCEPT,
    REJECT,
    REJECT_MFNULL,
    UNKNOWN,
    CacheExpiry,
    CalloutCache,
    DomainRecord,
)
from pymta.hints.db import HintsDB

EXPIRY = CacheExpiry(positive=100, negative=10, domain_positive=1000, domain_negative=50)


def cache(tmp_path) -> CalloutCache:
    return CalloutCache(HintsDB(str(tmp_path), "callout"), EXPIRY)


def test_domain_records_expire_by_their_result(tmp_path):
    c = cache(tmp_path)
    c.put_domain("Good.Example", DomainRecord(1000.0, ACCEPT))
    c.put_domain("bad.example", DomainRecord(1000.0, REJECT_MFNULL))
    assert c.domain("good.example", 1999.0).result == ACCEPT
    assert c.domain("good.example", 2001.0) is None
    assert c.domain("bad.example", 1049.0).result == REJECT_MFNULL
    assert c.domain("bad.example", 1051.0) is None
    assert (tmp_path / "db" / "callout").exists()


def test_random_and_postmaster_results_expire_on_their_own(tmp_path):
    c = cache(tmp_path)
    c.put_domain("d.example", DomainRecord(1000.0, ACCEPT, postmaster_result=ACCEPT,
                                           postmaster_stamp=900.0, random_result=REJECT,
                                           random_stamp=990.0))
    rec = c.domain("d.example", 1030.0)
    assert (rec.postmaster_result, rec.random_result) == (ACCEPT, REJECT)
    rec = c.domain("d.example", 1045.0)          # the random reject is older than 50s
    assert (rec.postmaster_result, rec.random_result) == (ACCEPT, UNKNOWN)
    # A failed postmaster check makes the whole record a negative one.
    c.put_domain("p.example", DomainRecord(1000.0, ACCEPT, postmaster_result=REJECT,
                                           postmaster_stamp=1000.0))
    assert c.domain("p.example", 1049.0).postmaster_result == REJECT
    assert c.domain("p.example", 1051.0) is None


def test_address_records_keyed_with_the_sender(tmp_path):
    c = cache(tmp_path)
    plain = c.address_key("u@d.example", "")
    with_sender = c.address_key("u@d.example", "s@x.example")
    assert plain != with_sender
    c.put_address(plain, ACCEPT, 1000.0)
    c.put_address(with_sender, REJECT, 1000.0)
    assert c.address(plain, 1100.0) == ACCEPT and c.address(plain, 1101.0) is None
    assert c.address(with_sender, 1010.0) == REJECT
    assert c.address(with_sender, 1011.0) is None


def test_damaged_records_and_no_database_count_as_absent(tmp_path):
    c = cache(tmp_path)
    c.db.put("D:x.example", b"{not json")
    c.db.put("A:u@x.example", b'{"result": "maybe", "time_stamp": 1}')
    assert c.domain("x.example", 1.0) is None
    assert c.address("A:u@x.example", 1.0) is None
    off = CalloutCache(None, EXPIRY)
    off.put_address("A:u@x.example", ACCEPT, 1.0)
    assert off.address("A:u@x.example", 1.0) is None
