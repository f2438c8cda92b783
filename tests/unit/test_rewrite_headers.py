"""Header lines through the rewrite engine: only the working address changes, the
w flag replaces the whole item, and unqualified addresses are qualified by place
(qualify_domain for From:/Sender:/Reply-To:, qualify_recipient for To:/Cc:/Bcc:)."""
from __future__ import annotations

from pymta.config.model import RewriteRule
from pymta.rewrite import Rewriter, Where, compile_rules, qualify_domains, rewrite_header_text
from pymta.rewrite.headers import rewrite_headers
from pymta.spool.model import SpoolHeader


def _rewriter(*lines: tuple[str, str, str]) -> Rewriter:
    rules = compile_rules([RewriteRule(p, r, f) for p, r, f in lines])
    return Rewriter(rules, None, qualify_recipient="rcpt.example")


def test_only_the_working_address_changes():
    rw = _rewriter(("*@old.example", "$1@new.example", ""))
    text = 'To: "Doe, J." <j@old.example> (work), k@old.example (K),\n\tgroup: m@old.example;\n'
    assert rewrite_header_text(rw, text) == (
        'To: "Doe, J." <j@new.example> (work), k@new.example (K),\n'
        '\tgroup: m@new.example;\n')
    assert rewrite_header_text(rw, "To: other@x.example\n") is None
    assert rewrite_header_text(rw, "Subject: j@old.example\n") is None
    assert rewrite_header_text(rw, "Errors-To: j@old.example\n") is None


def test_flags_choose_the_headers_and_w_replaces_the_item():
    rw = _rewriter(("*@old.example", "New Name <$1@new.example>", "wf"))
    assert rewrite_header_text(rw, "To: A <a@old.example>\n") is None
    assert rewrite_header_text(rw, "From: A <a@old.example>\n") == \
        "From: New Name <a@new.example>\n"
    assert rewrite_header_text(rw, "Resent-From: a@old.example\n") == \
        "Resent-From: New Name <a@new.example>\n"
    # an envelope address keeps only the working part of a w replacement
    rw = _rewriter(("*@old.example", "New Name <$1@new.example>", "wF"))
    assert rw.address("a@old.example", Where.ENV_FROM).address == "a@new.example"


def test_unqualified_addresses_are_qualified_by_place():
    qualify = qualify_domains("dom.example", "rcpt.example")
    assert rewrite_header_text(None, "From: me (Me)\n", qualify=qualify) == \
        "From: me@dom.example (Me)\n"
    assert rewrite_header_text(None, "Cc: Bob <bob>, c@x.example\n", qualify=qualify) == \
        "Cc: Bob <bob@rcpt.example>, c@x.example\n"
    assert rewrite_header_text(None, "To: bob\n") is None     # not allowed: left alone
    assert rewrite_header_text(None, "To: undisclosed-recipients:;\n", qualify=qualify) is None


def test_rewritten_headers_are_kept_deleted_before_the_new_one():
    rw = _rewriter(("*@old.example", "$1@new.example", ""))
    headers = [SpoolHeader("F", "From: a@old.example\n"), SpoolHeader(" ", "Subject: s\n"),
               SpoolHeader("*", "To: gone@old.example\n")]
    assert rewrite_headers(rw, headers) == [
        SpoolHeader("*", "From: a@old.example\n"), SpoolHeader("F", "From: a@new.example\n"),
        SpoolHeader(" ", "Subject: s\n"), SpoolHeader("*", "To: gone@old.example\n")]


def test_repeat_quit_and_qualify_flags():
    rw = _rewriter((r"\N^x(.+)@r\.example$\N", "$1@r.example", "R"))
    assert rw.address("xxxxxxxxxxxxxxab@r.example", Where.ENV_TO).address == \
        "xxxab@r.example"               # the rule itself plus ten repeats (as exim4)
    rw = _rewriter(("a@*", "b@$domain", "q"), ("b@*", "c@$domain", ""))
    assert rw.address("a@x.example", Where.TO).address == "b@x.example"
    rw = _rewriter(("a@*", "local", "Q"))
    assert rw.address("a@x.example", Where.TO).address == "local@rcpt.example"


class _Log:
    def __init__(self) -> None:
        self.panics: list[str] = []

    def main(self, text: str, msgid: str | None = None) -> None:
        pass

    def panic(self, text: str, msgid: str | None = None) -> None:
        self.panics.append(text)


def test_message_addresses_are_tainted_data(tmp_path):
    # the domain of a header address may not name the file a lookup reads
    (tmp_path / "x.example").write_text("a: b\n")
    log = _Log()
    rules = compile_rules([RewriteRule(
        "*@*", "${lookup{$1}lsearch{" + str(tmp_path) + "/$2}{$value}fail}@y.example", "")])
    rw = Rewriter(rules, None, log=log)
    assert rewrite_header_text(rw, "From: a@x.example\n") is None
    assert log.panics and "Tainted" in log.panics[0]
    # the same rule with the address given by the configuration itself is fine
    assert rw.address("a@x.example", Where.FROM).address == "b@y.example"
