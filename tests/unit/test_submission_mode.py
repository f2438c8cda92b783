"""pymta.message.submission: control = submission's options and Sender: rules."""
from __future__ import annotations

from pymta.message.submission import (
    SubmissionOptions,
    apply_sender_rules,
    created_from,
    parse_submission,
    submission_address,
)
from pymta.spool.model import SpoolHeader


def test_options():
    assert parse_submission("submission") == SubmissionOptions()
    assert parse_submission("submission/sender_retain").sender_retain
    o = parse_submission("submission/domain=example.org/name=A. B/C")
    assert (o.domain, o.name) == ("example.org", "A. B/C")     # name takes the rest
    assert parse_submission("submission/domain=").domain == ""


def test_address_from_authenticated_id():
    assert submission_address("joe", SubmissionOptions(), "q.test") == "joe@q.test"
    assert submission_address("joe", SubmissionOptions(domain="d.test"), "q.test") == \
        "joe@d.test"
    assert submission_address("joe@x.test", SubmissionOptions(domain=""), "q.test") == \
        "joe@x.test"


def test_sender_rules():
    headers = [SpoolHeader("F", "From: Joe <JOE@q.test>\n"),
               SpoolHeader("S", "Sender: other@x.test\n")]
    assert apply_sender_rules(headers, "joe", SubmissionOptions(), "q.test") is None
    assert headers[1].flag == "*" and len(headers) == 2        # From: names joe already
    headers = [SpoolHeader("F", "From: other@x.test\n")]
    assert apply_sender_rules(headers, "joe", SubmissionOptions(name="Joe"), "q.test") == \
        "joe@q.test"
    assert headers[-1] == SpoolHeader("S", "Sender: Joe <joe@q.test>\n")
    kept = [SpoolHeader("S", "Sender: other@x.test\n")]
    assert apply_sender_rules(kept, "joe", SubmissionOptions(sender_retain=True), "q") is None
    assert kept[0].flag == "S"
    assert created_from("joe", SubmissionOptions(), "q.test") == "From: joe@q.test\n"
    assert created_from(None, SubmissionOptions(), "q.test") is None
