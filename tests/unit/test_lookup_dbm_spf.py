"""dbm/dbmnz/dbmjz lookups on files written by Exim's exim_dbmbuild, and the spf lookup."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from pymta.expand import ExpandContext, ExpandError, expand_string
from pymta.lookups import do_lookup_spec
from pymta.lookups.dbm import dbm_lookup, read_bdb_hash

DATA = Path(__file__).resolve().parent.parent / "data" / "expand"


@pytest.fixture
def dbdir(tmp_path):
    # many.dbm: exim_dbmbuild of 300 "keyN: value N" lines + "big" (5000 x z) + alice;
    # many_nz.dbm: the same with -nozero (see tests/data/expand/README.md)
    for f in ("many.dbm", "many_nz.dbm"):
        shutil.copy(DATA / f, tmp_path / f)
    return tmp_path


def ex(text):
    return expand_string(text, ExpandContext())


def test_reader_sees_every_pair_with_zero_terminated_keys(dbdir):
    table = read_bdb_hash(str(dbdir / "many.dbm"))
    assert len(table) == 302
    assert table[b"key123\0"] == b"value 123\0"
    assert len(table[b"big\0"]) == 5001          # overflow pages followed


def test_dbm_kinds(dbdir):
    f, nz = str(dbdir / "many.dbm"), str(dbdir / "many_nz.dbm")
    assert ex("${lookup{key7}dbm{%s}}" % f) == "value 7"
    assert ex("${lookup{key7}dbmnz{%s}{y}{n}}" % f) == "n"        # key has no zero there
    assert ex("${lookup{key7}dbmnz{%s}}" % nz) == "value 7"
    assert ex("${lookup{key7}dbmjz{%s}}" % nz) == "value 7"
    assert ex("${strlen:${lookup{big}dbm{%s}}}" % f) == "5000"
    assert ex("${lookup{nope}dbm{%s}{y}{n}}" % f) == "n"
    assert do_lookup_spec("dbm*", f, "nope", ExpandContext()) is None
    assert do_lookup_spec("partial-dbm", f, "x.key7", ExpandContext()) is None


def test_dbmjz_joins_list_with_zeros(dbdir, monkeypatch):
    import pymta.lookups.dbm as mod
    monkeypatch.setattr(mod, "_table", lambda path: {b"a\0b\0c": b"joined"})
    assert dbm_lookup("dbmjz", "/x", "a:b:c") == "joined"
    assert dbm_lookup("dbmjz", "/x", "<, a,b,c") == "joined"
    assert dbm_lookup("dbm", "/x", "a:b:c") is None


def test_dbm_reread_after_change(dbdir):
    f = dbdir / "x.dbm"
    shutil.copy(dbdir / "many.dbm", f)
    assert ex("${lookup{key1}dbm{%s}}" % f) == "value 1"
    shutil.copy(dbdir / "many_nz.dbm", f)
    assert ex("${lookup{key1}dbm{%s}{y}{n}}" % f) == "n"


def test_dbm_errors(dbdir):
    with pytest.raises(ExpandError, match="failed to open"):
        ex("${lookup{k}dbm{%s/none.dbm}}" % dbdir)
    bad = dbdir / "bad.dbm"
    bad.write_bytes(b"k: v\n" * 200)
    with pytest.raises(ExpandError, match="not a Berkeley DB hash file"):
        ex("${lookup{k}dbm{%s}}" % bad)
    trunc = dbdir / "trunc.dbm"
    trunc.write_bytes((dbdir / "many.dbm").read_bytes()[:4096 + 100])
    with pytest.raises(ExpandError, match="damaged"):
        ex("${lookup{big}dbm{%s}}" % trunc)


# -- spf -------------------------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from support.dns import DnsServer  # noqa: E402

ZONES = {"spf.test": """
    @      IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"
    hard   IN TXT "v=spf1 ip4:198.51.100.7 -all"
    neu    IN TXT "v=spf1 ?all"
    bad    IN TXT "v=spf1 ip4:300.1.1.1 -all"
    none   IN A 198.51.100.1
"""}


@pytest.fixture(scope="module")
def spf_dns():
    from pymta import dns as pdns
    with DnsServer(ZONES) as srv:
        pdns.set_server("127.0.0.1", srv.port, timeout=1.0)
        try:
            yield srv
        finally:
            pdns.set_resolver(None)


@pytest.mark.parametrize("sender,ip,result", [
    ("u@spf.test", "198.51.100.9", "pass"),
    ("u@spf.test", "203.0.113.1", "softfail"),
    ("u@hard.spf.test", "198.51.100.8", "fail"),
    ("u@hard.spf.test", "198.51.100.7", "pass"),
    ("u@neu.spf.test", "203.0.113.1", "neutral"),
    ("u@none.spf.test", "203.0.113.1", "none"),
    ("u@bad.spf.test", "203.0.113.1", "permerror"),
])
def test_spf_lookup(spf_dns, sender, ip, result):
    assert ex("${lookup{%s}spf{%s}}" % (sender, ip)) == result


def test_spf_lookup_bad_ip_is_error(spf_dns):
    with pytest.raises(ExpandError, match="not an IP address"):
        ex("${lookup{u@spf.test}spf{not-an-ip}}")


def test_spf_lookup_tainted_ip_allowed(spf_dns):
    from pymta.taint import Tainted
    ctx = ExpandContext(variables={"sender_host_address": Tainted("198.51.100.9")})
    assert expand_string("${lookup{u@spf.test}spf{$sender_host_address}}", ctx) == "pass"
