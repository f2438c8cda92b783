"""Tests for pymta.lookups: lsearch family, dsearch, partial matching and defaults."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pymta.expand import ExpandContext, ExpandError, expand_string
from pymta.lookups import do_lookup, do_lookup_spec, parse_lookup_type
from pymta.taint import Tainted, is_tainted

DATA = Path(__file__).resolve().parent.parent / "data" / "expand"


@pytest.fixture
def d(tmp_path):
    for f in ("aliases.lsearch", "wild.lsearch", "hosts.iplsearch"):
        shutil.copy(DATA / f, tmp_path / f)
    (tmp_path / "cont.lsearch").write_text(
        "# comment\nlist: a,\n  b,\n\n  c\nempty:\n\"a:b\": colon key\n*.dom.test: dflt\n"
        "*: star\n*@x.test: at-default\n")
    return tmp_path


def ctx():
    return ExpandContext()


def test_lsearch_basic_and_caseless(d):
    f = str(d / "aliases.lsearch")
    assert do_lookup("lsearch", f, "root", ctx()) == "admin@corp.test"
    assert do_lookup("lsearch", f, "ROOT", ctx()) == "admin@corp.test"
    assert do_lookup("lsearch", f, "nobody", ctx()) is None
    assert do_lookup("lsearch", f, "quoted key", ctx()) == "qv"


def test_lsearch_continuation_empty_and_quoted_keys(d):
    f = str(d / "cont.lsearch")
    assert do_lookup("lsearch", f, "list", ctx()) == "a, b, c"
    assert do_lookup("lsearch", f, "empty", ctx()) == ""
    assert do_lookup("lsearch", f, "a:b", ctx()) == "colon key"


def test_lsearch_missing_file_is_error():
    with pytest.raises(ExpandError, match="failed to open"):
        do_lookup("lsearch", "/nonexistent/x", "k", ctx())


def test_file_reread_after_change(d):
    f = d / "x.lsearch"
    f.write_text("k: one\n")
    assert do_lookup("lsearch", str(f), "k", ctx()) == "one"
    f.write_text("k: two-changed\n")
    assert do_lookup("lsearch", str(f), "k", ctx()) == "two-changed"


def test_star_and_starat_defaults(d):
    f = str(d / "cont.lsearch")
    assert do_lookup_spec("lsearch*", f, "nothere", ctx()) == "star"
    assert do_lookup_spec("lsearch*@", f, "joe@x.test", ctx()) == "at-default"
    assert do_lookup_spec("lsearch*@", f, "joe@y.test", ctx()) == "star"
    assert do_lookup_spec("lsearch", f, "nothere", ctx()) is None


def test_partial_matching(d):
    f = str(d / "cont.lsearch")
    assert do_lookup_spec("partial-lsearch", f, "a.b.dom.test", ctx()) == "dflt"
    assert do_lookup_spec("partial-lsearch", f, "dom.test", ctx()) == "dflt"
    assert do_lookup_spec("partial3-lsearch", f, "a.dom.test", ctx()) is None
    assert do_lookup_spec("partial0-lsearch", f, "a.other", ctx()) == "star"


def test_ret_options(d):
    f = str(d / "aliases.lsearch")
    # ret=key gives the key as looked up (exim4 4.96 prints ROOT), de-tainted
    r = do_lookup_spec("lsearch,ret=key", f, Tainted("ROOT"), ctx())
    assert r == "ROOT" and not is_tainted(r)
    w = str(d / "cont.lsearch")         # has "*: star"; a default match does not count
    assert do_lookup_spec("lsearch*", w, "nobody", ctx()) == "star"
    assert do_lookup_spec("lsearch*,ret=key", w, "nobody", ctx()) is None
    assert do_lookup_spec("lsearch,ret=full", f, "root", ctx()) == "root: admin@corp.test"


def test_wildlsearch_forms(d):
    f = str(d / "wild.lsearch")
    assert do_lookup("nwildlsearch", f, "x.sub.test", ctx()) == "wild-sub"
    assert do_lookup("nwildlsearch", f, "retest.test", ctx()) == "regex"
    assert do_lookup("nwildlsearch", f, "EXAMPLE.com", ctx()) == "ex"
    assert do_lookup("nwildlsearch", f, "nothing", ctx()) is None


def test_iplsearch(d):
    f = str(d / "hosts.iplsearch")
    assert do_lookup("iplsearch", f, "192.168.7.7", ctx()) == "private"
    assert do_lookup("iplsearch", f, "10.0.0.1", ctx()) == "ten"
    assert do_lookup("iplsearch", f, "8.8.8.8", ctx()) is None
    assert do_lookup_spec("iplsearch*", f, "8.8.8.8", ctx()) == "default"


def test_dsearch(d):
    assert do_lookup("dsearch", str(d), "wild.lsearch", ctx()) == "wild.lsearch"
    assert do_lookup_spec("dsearch,ret=full", str(d), "wild.lsearch", ctx()) == \
        str(d / "wild.lsearch")
    from pymta.expand import ExpandDefer
    with pytest.raises(ExpandDefer):
        do_lookup("dsearch", str(d), "../etc", ctx())
    assert do_lookup("dsearch", str(d), "absent", ctx()) is None


def test_unknown_lookup_type():
    with pytest.raises(ExpandError):
        parse_lookup_type("nosuchtype")


def test_lookup_item_value_and_taint(d):
    from pymta.taint import Tainted, is_tainted
    c = ExpandContext(variables={"lp": Tainted("root"), "f": str(d / "aliases.lsearch")})
    r = expand_string("${lookup{$lp}lsearch{$f}}", c)
    assert r == "admin@corp.test" and not is_tainted(r)
    assert expand_string("${lookup{$lp}lsearch{$f}{[$value]}{no}}", c) == "[admin@corp.test]"
    assert expand_string("${lookup{x}lsearch{$f}{[$value]}{no}}", c) == "no"


def test_tainted_file_name_refused(d):
    from pymta.taint import Tainted
    c = ExpandContext(variables={"f": Tainted(str(d / "aliases.lsearch"))})
    with pytest.raises(ExpandError, match="Tainted"):
        expand_string("${lookup{root}lsearch{$f}}", c)


def test_json_lookup(d):
    (d / "j.json").write_text('{"a": {"b": [10, "s"]}}')
    c = ExpandContext()
    assert do_lookup("json", str(d / "j.json"), "a:b:1", c) == "s"
    assert do_lookup("json", str(d / "j.json"), "a:x", c) is None


def test_cdb_lookup(tmp_path):
    from pymta.lookups.cdb import cdb_write
    f = tmp_path / "t.cdb"
    items = [(b"alpha", b"one"), (b"beta", b"two")]
    items += [(f"k{i}".encode(), str(i).encode()) for i in range(50)]
    cdb_write(str(f), items)
    c = ExpandContext()
    assert do_lookup("cdb", str(f), "alpha", c) == "one"
    assert do_lookup("cdb", str(f), "k37", c) == "37"
    assert do_lookup("cdb", str(f), "missing", c) is None
    assert do_lookup_spec("cdb*", str(f), "missing", c) is None


def test_passwd_lookup():
    c = ExpandContext()
    assert do_lookup_spec("passwd", "root", None, c).startswith("*:0:0:")
    assert do_lookup_spec("passwd", "no-such-user-xyz", None, c) is None
    assert expand_string("${lookup passwd{root}{y}{n}}", c) == "y"


def test_sqlite_lookup(tmp_path):
    import sqlite3
    db = tmp_path / "d.db"
    con = sqlite3.connect(db)
    con.execute("create table u (id text, name text, home text)")
    con.execute("insert into u values ('joe', 'Joe Bloggs', '/home/joe')")
    con.commit()
    con.close()
    c = ExpandContext(variables={"db": str(db)})
    assert expand_string("${lookup sqlite,file=$db{select home from u where id='joe'}}",
                         c) == "/home/joe"
    assert expand_string("${lookup sqlite,file=$db{select name,home from u}}", c) == \
        'name="Joe Bloggs" home=/home/joe'
    assert expand_string("${lookup sqlite{$db select 1 from u where id='x'}{y}{n}}", c) == "n"
    assert expand_string("${quote_sqlite:it's}", c) == "it''s"


def test_sqlite_writes_take_effect_and_missing_file_is_created(tmp_path):
    """Greylisting-style use: an INSERT through a lookup is committed; like Exim's
    sqlite3_open(), a missing database file is created."""
    db = tmp_path / "grey.db"
    c = ExpandContext(variables={"db": str(db)})
    assert expand_string("${lookup sqlite{$db select 1}}", c) == "1"
    assert db.exists()
    expand_string("${lookup sqlite,file=$db{create table g (k text)}}", c)
    expand_string("${lookup sqlite,file=$db{insert into g values ('a@b')}}", c)
    assert expand_string("${lookup sqlite,file=$db{select count(*) from g}}",
                         ExpandContext(variables={"db": str(db)})) == "1"
    with pytest.raises(ExpandError, match="sqlite"):
        expand_string("${lookup sqlite,file=$db{select * from nosuch}}", c)


@pytest.mark.parametrize("wait", [0, 1])
def test_sqlite_lock_timeout_is_how_long_a_locked_database_is_waited_for(tmp_path, wait):
    """A database another connection holds an exclusive lock on: the lookup waits
    sqlite_lock_timeout seconds, then defers."""
    import sqlite3
    import time

    from pymta.config import load_config
    from pymta.expand.errors import ExpandDefer
    db = tmp_path / "locked.db"
    conf = tmp_path / "configure"
    conf.write_text(f"sqlite_lock_timeout = {wait}\n")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("create table t (k text)")
    holder.execute("begin exclusive")
    try:
        c = ExpandContext(load_config(str(conf)), {"db": str(db)})
        started = time.monotonic()
        with pytest.raises(ExpandDefer, match="locked"):
            expand_string("${lookup sqlite,file=$db{select count(*) from t}}", c)
        waited = time.monotonic() - started
        assert wait <= waited < wait + 0.9
    finally:
        holder.close()
