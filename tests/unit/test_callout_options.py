"""Parsing the verify and callout options (spec 44.45, 44.47)."""
from __future__ import annotations

import pytest

from pymta.acl.addrverify import parse_verify_options
from pymta.acl.callout import parse_callout_options
from pymta.config import load_config
from pymta.config.model import ConfigError


def test_callout_parameters():
    o = parse_callout_options("10s,connect=2s,maxwait=1m,defer_ok,no_cache,random,"
                              "fullpostmaster,use_sender")
    assert (o.timeout, o.connect, o.maxwait, o.total_wait) == (10, 2, 60, 60)
    assert o.defer_ok and o.no_cache and o.random and o.fullpostmaster and o.use_sender
    assert o.postmaster_mailfrom == ""
    d = parse_callout_options(None)
    assert (d.timeout, d.connect, d.total_wait, d.postmaster_mailfrom) == (30, None, 120, None)
    assert parse_callout_options("postmaster_mailfrom=pm@x.example").postmaster_mailfrom \
        == "pm@x.example"
    assert parse_callout_options("mailfrom=a@b.example").mailfrom == "a@b.example"
    assert parse_callout_options("use_postmaster").use_postmaster
    held = parse_callout_options("use_sender,hold")
    assert held.hold and held.holds
    # hold keeps a connection only where a delivery could use it
    assert not parse_callout_options("hold").holds
    assert not parse_callout_options("use_sender,hold,random").holds
    assert not parse_callout_options("use_sender,hold,postmaster").holds


@pytest.mark.parametrize("text,error", [
    ("bogus", 'bad parameter "bogus"'),
    ("connect=xyz", "bad time value")])
def test_bad_callout_parameters(text, error):
    with pytest.raises(ConfigError, match=error):
        parse_callout_options(text)


def test_verify_options():
    v = parse_verify_options("sender", ["defer_ok", "no_details", "callout=5s"])
    assert v.defer_ok and v.no_details and v.callout is not None and v.callout.timeout == 5
    old = parse_verify_options("sender", ["callout", "callout_defer_ok", "check_postmaster"])
    assert old.callout is not None and old.callout.defer_ok
    assert old.callout.postmaster_mailfrom == ""
    assert parse_verify_options("recipient", []).callout is None
    assert parse_verify_options("recipient", ["success_on_redirect"]).success_on_redirect


def test_quota_options():
    assert parse_verify_options("recipient", []).quota is None
    q = parse_verify_options("recipient", ["quota"]).quota
    assert q is not None and (q.cachepos, q.cacheneg) == (300, 3600)
    q = parse_verify_options("recipient", ["quota=cachepos=1h,cacheneg=1d"]).quota
    assert q is not None and (q.cachepos, q.cacheneg) == (3600, 86400)
    q = parse_verify_options("recipient", ["quota=cachepos=0s"]).quota
    assert q is not None and (q.cachepos, q.cacheneg) == (0, 3600)
    q = parse_verify_options("recipient", ["quota=no_cache"]).quota
    assert q is not None and (q.cachepos, q.cacheneg) == (0, 0)


@pytest.mark.parametrize("kind,opts,error", [
    ("sender", ["quota"], 'unknown option "quota"'),
    ("recipient", ["quota=cachepos=xyz"], "bad time value"),
    ("recipient", ["quota=bogus"], 'bad parameter "bogus"'),
    ("recipient", ["nonsense"], 'unknown option "nonsense"'),
    ("sender", ["callout=use_sender"], "only for verify = recipient"),
    ("sender", ["callout=hold"], "hold is only for verify = recipient"),
    ("recipient", ["callout=mailfrom=a@b.example"], "only for verify = header_sender")])
def test_refused_verify_options(kind, opts, error):
    with pytest.raises(ConfigError, match=error):
        parse_verify_options(kind, opts)


def test_accepted_at_load_time(tmp_path):
    path = tmp_path / "configure"
    path.write_text("begin acl\na:\n  require verify = recipient/callout=10s,holdx_no/"
                    "defer_ok\n  require verify = sender/callout=${if true{hold}}\n"
                    "  accept\n")
    load_config(str(path))      # unknown parameters are found when the ACL runs
