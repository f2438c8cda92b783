"""Sieve filters: what `pymta -bf` says for each script is what exim4 -bf (Exim 4.96)
said; the actions a script sets up; vacation's RFC 5230 rules."""
from __future__ import annotations

import io

import pytest

from pymta.expand import ExpandContext
from pymta.filter.result import DELIVERED, FilterError
from pymta.filter.sieve import SieveEnvironment, report_sieve, run_sieve

HEADERS = ["From: x@y\n", "To: me@test.ex\n", "Subject: Hello world\n"]


def _ctx(headers: list[str] | None = None, sender: str = "root@test.ex") -> ExpandContext:
    return ExpandContext(variables={"sender_address": sender, "local_part": "me",
                                    "domain": "test.ex", "message_size": "52"},
                         headers=list(HEADERS if headers is None else headers))


def bf(script: str) -> str:
    out = io.StringIO()
    report_sieve("# Sieve filter\n" + script + "\n", _ctx(), out, io.StringIO())
    return out.getvalue().strip()


EXIM_SAYS = [
    ("", "Implicit keep"),
    ("keep;", "No implicit keep"),
    ('require "fileinto"; fileinto "Junk"; fileinto :copy "x";',
     'Sieve error: missing previous require "copy"; in line 2'),
    ('redirect "bob@x.y"; redirect :copy "c@d";',
     'Sieve error: missing previous require "copy"; in line 2'),
    ("discard;", "No implicit keep"),
    ('if header :contains "subject" "hello" { stop; } keep;', "Implicit keep"),
    ('require ["vacation"]; vacation :days 3 :subject "away" "I am away";', "Implicit keep"),
    ('require "reject"; reject "no";', "Sieve error: unknown capability in line 2"),
    ('require "imap4flags";', "Sieve error: unknown capability in line 2"),
    ('require "relational";', "Sieve error: unknown capability in line 2"),
    ("foo;", "Sieve error: syntax error in line 2"),
    ("if size :over 10 { discard; }", "No implicit keep"),
    ('redirect "bob";', "Sieve error: unqualified recipient address in line 2"),
    ('require ["envelope","subaddress","comparator-i;ascii-numeric","copy"]; '
     'if envelope :localpart :is "from" "root" { redirect "e@x.y"; }', "No implicit keep"),
    ('if header :matches "subject" "Hel*wor?d" { discard; }', "No implicit keep"),
    ('if address :domain "from" "Y" { discard; }', "No implicit keep"),
    ('if exists ["subject","to"] { discard; }', "No implicit keep"),
    ('if not exists "x-foo" { discard; }', "No implicit keep"),
    ('if anyof (false, header :is "to" "me@test.ex") { discard; }', "No implicit keep"),
    ('require "fileinto"; fileinto "a/../b";', "Sieve error: invalid folder in line 2"),
    ("if true { keep;", "Sieve error: expecting command or closing brace in line 3"),
    ("keep", "Sieve error: missing semicolon in line 3"),
    ('if header :contains "sub:ject" "x" { discard; }',
     "Sieve error: invalid header field in line 2"),
    ("if size :under 1k { discard; }", "Sieve error: missing block in line 2"),
    ("if size :under 1K { discard; }", "No implicit keep"),
    ('if header :is "subject" text:\nHello world\n.\n { discard; }', "Implicit keep"),
    ('if header :contains "subject" ["a", "World"] { discard; }', "No implicit keep"),
    ('require "comparator-i;ascii-numeric"; if header :is :comparator "i;ascii-numeric" '
     '"x-n" "0" { discard; }', "Implicit keep"),
    ("/* c */ # x\nkeep;", "No implicit keep"),
    ('require "subaddress"; if address :user "to" "me" { discard; }', "No implicit keep"),
]


@pytest.mark.parametrize("script,expected", EXIM_SAYS)
def test_bf_as_exim(script, expected):
    assert bf(script) == expected


def test_actions():
    result = run_sieve('# Sieve filter\nrequire ["fileinto", "copy"];\n'
                       'fileinto :copy "Lists"; redirect "a@b.c"; fileinto "Lists";\n',
                       SieveEnvironment(_ctx()))
    assert [(a.kind, a.target) for a in result.actions] == [
        ("file", "Lists"), ("address", "a@b.c")]
    assert result.status == DELIVERED
    kept = run_sieve("# Sieve filter\n", SieveEnvironment(_ctx()))
    assert [(a.kind, a.target) for a in kept.actions] == [("file", "inbox")]


def test_detail_and_forbidden_file():
    script = ('# Sieve filter\nrequire "subaddress";\n'
              'if envelope :detail "to" "lists" { discard; }\n')
    with pytest.raises(FilterError):        # envelope needs its own require
        run_sieve(script, SieveEnvironment(_ctx()))
    ctx = _ctx()
    ctx.variables["local_part_suffix"] = "+lists"
    script = ('# Sieve filter\nrequire ["subaddress", "envelope"];\n'
              'if envelope :detail "to" "lists" { discard; }\n')
    assert run_sieve(script, SieveEnvironment(ctx)).actions == []
    with pytest.raises(FilterError, match="not permitted"):
        run_sieve("# Sieve filter\nkeep;\n", SieveEnvironment(_ctx(), forbid_file=True))


@pytest.mark.parametrize("headers,sender,replies", [
    (HEADERS, "x@y", True),
    (HEADERS + ["Precedence: list\n"], "x@y", False),
    (HEADERS + ["List-Id: <a.b>\n"], "x@y", False),
    (HEADERS + ["Auto-Submitted: auto-generated\n"], "x@y", False),
    (["From: x@y\n", "To: other@test.ex\n"], "x@y", False),     # not addressed to me
    (HEADERS, "", False),                                       # a bounce
    (HEADERS, "owner-list@x.y", False),
])
def test_vacation_rules(headers, sender, replies, tmp_path):
    env = SieveEnvironment(_ctx(headers, sender), user_addresses=["me@test.ex"],
                           vacation_directory=str(tmp_path),
                           error_message=not sender)
    result = run_sieve('# Sieve filter\nrequire "vacation";\nvacation :days 2 "gone";\n',
                       env)
    sent = [a for a in result.actions if a.kind == "reply"]
    assert bool(sent) is replies
    if sent:
        reply = sent[0].reply
        assert reply is not None
        assert (reply.to, reply.subject, reply.text, reply.once_repeat) == (
            "x@y", "Auto: Hello world", "gone\n", "2d")
        assert reply.once is not None and reply.once.startswith(str(tmp_path) + "/")
        assert not sent[0].significant       # vacation keeps the implicit keep
