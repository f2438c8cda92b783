"""The smtp transport's multi_domain: one message for two domains routed to the same
host goes in one transaction (both RCPTs), or, with multi_domain false, in one
transaction per domain; the option is expanded for each address."""
from __future__ import annotations

from tests.support.daemon import PymtaDaemon
from tests.support.relayconf import relay_config
from tests.support.sink import SmtpSink

RCPTS = ["a@one.example", "b@one.example", "c@two.example"]


def _transactions(tmp_path, multi: str) -> list[list[str]]:
    with SmtpSink() as sink:
        d = PymtaDaemon(relay_config(f"  {multi}"), tmp_path,
                        macros={"SINK_PORT": str(sink.port)})
        d.prepare()
        (d.spool / "log").mkdir(parents=True, exist_ok=True)
        r = d.run("-odi", "-f", "s@test.example", *RCPTS, input=b"Subject: m\n\nbody\n")
        assert r.returncode == 0, r.stderr + d.log()
        return sorted(sorted(m.recipients) for m in sink.received())


def test_domains_share_a_transaction_by_default(tmp_path):
    assert _transactions(tmp_path, "multi_domain = true") == [sorted(RCPTS)]


def test_multi_domain_false_gives_each_domain_its_own(tmp_path):
    assert _transactions(tmp_path, "multi_domain = false") == \
        [["a@one.example", "b@one.example"], ["c@two.example"]]


def test_multi_domain_is_expanded_per_address(tmp_path):
    multi = "multi_domain = ${if eq{$domain}{two.example}{false}{true}}"
    # two.example's address is kept apart; one.example's go together
    assert _transactions(tmp_path, multi) == \
        [["a@one.example", "b@one.example"], ["c@two.example"]]
