"""Exim filter files through `pymta -bf` / `-bF`: the output for each filter is what
exim4 -bf / -bF (Exim 4.96, Debian) printed for the same filter and message."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from pymta.cli.args import parse_args
from pymta.cli.filtertest import run_filter_test
from pymta.config import load_config
from pymta.expand import ExpandContext
from pymta.filter.exim_filter import FilterEnvironment, run_exim_filter
from pymta.filter.result import DELIVERED, NOT_DELIVERED, FilterError

MESSAGE = b"From: x@y\nTo: me@test.ex\nSubject: Hello world\n\nbody\n"
CONFIG = "primary_hostname = test.ex\n"


def load_config_text(text: str):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as fh:
        fh.write(text)
    return load_config(fh.name)


class _Stdin(io.StringIO):
    def __init__(self, data: bytes):
        super().__init__()
        self.buffer = io.BytesIO(data)


def bf(tmp_path: Path, body: str, flag: str = "-bf", message: bytes = MESSAGE,
       extra: tuple[str, ...] = ("-f", "a@b.c")) -> str:
    path = tmp_path / "f"
    path.write_text("# Exim filter\n" + body + "\n")
    opts = parse_args([flag, str(path), *extra])
    config = load_config_text(CONFIG)
    out, err = io.StringIO(), io.StringIO()
    run_filter_test(config, opts, _Stdin(message), out, err)
    text = out.getvalue()
    return text.split("\n\n", 1)[1] if "\n\n" in text else text


CASES = [
    ('if $h_subject: contains then deliver a@b endif',
     'Filter error: "and" or "or" or "then" expected near line 2 of filter file, but '
     'found "deliver"\n'),
    ("if a is b then", 'Filter error: "endif" missing at end of filter file\n'),
    ("frobnicate x",
     'Filter error: unknown filtering command "frobnicate" near line 2 of filter file\n'),
    ("deliver", 'Filter error: "deliver" requires an argument near line 3 of filter file\n'),
    ("add 3 to x5", 'Filter error: unknown variable "x5" in "add" command\n'),
    ("add x to n1", 'Filter error: malformed number "x" in "add" command\n'),
    ("if (a is b then seen endif",
     'Filter error: missing ")" at end of condition near line 2 of filter file\n'),
    ("else", 'Filter error: unexpected "else" command near line 3 of filter file\n'),
    ("endif", 'Filter error: unexpected "endif" command near line 3 of filter file\n'),
    ("mail to a@b foo bar",
     'Filter error: unknown filtering command "foo" near line 2 of filter file\n'),
    ('deliver "unterminated', "Filter error: quote missing at end of string in line 2\n"),
    ("headers charset", 'Filter error: value missing after "add", "remove", or "charset" '
                        "near line 3 of filter file\n"),
    ("headers foo", "Filter error: header addition and removal is available only in "
                    "system filters: near line 3 of filter file\n"),
    ("fail", 'Filter error: filtering command "fail" is disabled: near line 3 of filter '
             "file\n"),
    ("if a is b then deliver x@y elif then endif",
     'Filter error: unexpected "then" near line 2 of filter file\n'),
    ("seen seen deliver x@y", 'Filter error: "seen" or "unseen" repeated near line 2\n'),
    ("if $message_size is above 1q then endif",
     'Filter error: malformed numerical string "1q"\n'),
    ("unseen testprint x", "Testprint: x\nFiltering did not set up a significant delivery."
                           "\nNormal delivery will occur.\n"),
    ("testprint a\nfinish\ntestprint b",
     "Testprint: a\nFinish\nFiltering did not set up a significant delivery.\n"
     "Normal delivery will occur.\n"),
    ("seen finish", "Seen finish\nFiltering set up at least one significant delivery or "
                    "other action.\nNo other deliveries will occur.\n"),
    ("add 2 to n1\nadd $n1 to n1\ntestprint $n1",
     "Add 2 to n1\nAdd 2 to n1\nTestprint: 4\nFiltering did not set up a significant "
     "delivery.\nNormal delivery will occur.\n"),
    ("deliver bob\ndeliver \"B <c@d>\"\nseen deliver e@f errors_to x@y\n",
     "Deliver message to: bob@test.ex\nDeliver message to: c@d\n"
     "Filter error: errors_to must point to the caller's address\n"),
    ('testprint "a\\tb\\001\\x41\\101 \\\\ \\q"',
     "Testprint: a\tb\\001AA  q\nFiltering did not set up a significant delivery.\n"
     "Normal delivery will occur.\n"),
    ("testprint $reply_address:$return_path:$message_size:$body_linecount:$message_body",
     "Testprint: x@y:a@b.c:52:1:body \nFiltering did not set up a significant delivery.\n"
     "Normal delivery will occur.\n"),
    ('mail text "${if eq{a}{a}{fail}}"\nvacation expand file /etc/hostname\n'
     'mail to "a@b\\nc"',
     "Mail to: <default>\n   text: fail\nMail to: <default> (vacation)\n"
     "subject: On vacation\n   file: /etc/hostname (expanded)\n    log: .vacation.log\n"
     "   once: .vacation\nonce_repeat: 7d\n"
     'Filter error: \\n not followed by space in "a@b\\nc" in mail command\n'),
    ('if $h_subject: MATCHES "^hello" then testprint y else testprint n endif',
     "Testprint: n\nFiltering did not set up a significant delivery.\n"
     "Normal delivery will occur.\n"),
    ('if $h_subject: BEGINS "Hello" and $h_subject: ends WORLD then testprint y endif',
     "Testprint: y\nFiltering did not set up a significant delivery.\n"
     "Normal delivery will occur.\n"),
    ('if foranyaddress "$h_to:,$h_from:" ($thisaddress is x@y) then testprint '
     '"yes $thisaddress" endif testprint "after $thisaddress"',
     "Testprint: yes x@y\nTestprint: after \nFiltering did not set up a significant "
     "delivery.\nNormal delivery will occur.\n"),
    ("if 10k is above 10000 and 1m is not below 5 then testprint y endif",
     "Testprint: y\nFiltering did not set up a significant delivery.\n"
     "Normal delivery will occur.\n"),
    ('if $h_subject: is "Hello world" then save /x 600 else save /y endif',
     "Save message to: /x 0600\nFiltering set up at least one significant delivery or "
     "other action.\nNo other deliveries will occur.\n"),
    ('pipe "/bin/x $local_part"\nif delivered then testprint d endif',
     "Pipe message to: /bin/x $local_part\nTestprint: d\nFiltering set up at least one "
     "significant delivery or other action.\nNo other deliveries will occur.\n"),
]


@pytest.mark.parametrize("body,expected", CASES)
def test_bf_output_as_exim(tmp_path, body, expected):
    assert bf(tmp_path, body) == expected


SYSTEM_CASES = [
    ('fail text "<<x>>no way"', 'Fail text "<<x>>no way"\nFiltering ended by "fail".\n'),
    ('defer "later"', 'Defer text "later"\nFiltering ended by "defer".\n'),
    ('headers add "X-A: b"\nheaders remove "Subject:X-A"\n'
     'testprint "$h_x-a: $h_subject:"',
     'Headers add "X-A: b"\nHeaders remove "Subject:X-A"\nTestprint:  \n'
     "Filtering did not set up a significant delivery.\nNormal delivery will occur.\n"),
    ("deliver a@b errors_to c@d",
     "Deliver message to: a@b errors_to c@d\nFiltering set up at least one significant "
     "delivery or other action.\nNo other deliveries will occur.\n"),
    ("mail to a@b cc c@d bcc e@f from g@h reply_to i@j subject s extra_headers "
     '"X-A: 1" text t expand file /etc/hostname return message log /tmp/l once /tmp/o '
     "once_repeat 2d\nunseen mail text x\nseen vacation to x@y\n"
     "noerror deliver a@b.c errors_to root@test.ex\nsave rel/path\nsave /abs/dir/\n"
     'pipe "/bin/cat"\nfreeze "why"',
     "Mail to: a@b\n     cc: c@d\n    bcc: e@f\n   from: g@h\nreply_to: i@j\n"
     "subject: s\nextra_headers: X-A: 1\n   text: t\n   file: /etc/hostname (expanded)\n"
     "    log: /tmp/l\n   once: /tmp/o\nonce_repeat: 2d\nReturn original message\n"
     "Mail to: <default>\n   text: x\nSeen mail to: x@y (vacation)\nsubject: On vacation\n"
     "   file: .vacation.msg (expanded)\n    log: .vacation.log\n   once: .vacation\n"
     "once_repeat: 7d\nDeliver message to: a@b.c (noerror) errors_to root@test.ex\n"
     "Save message to: rel/path\nSave message to: /abs/dir/\nPipe message to: /bin/cat\n"
     'Freeze text "why"\nFiltering ended by "freeze".\n'),
]


@pytest.mark.parametrize("body,expected", SYSTEM_CASES)
def test_bF_output_as_exim(tmp_path, body, expected):
    assert bf(tmp_path, body, "-bF") == expected


def test_bf_envelope_from_line_return_path_and_suffix(tmp_path):
    message = (b"From bob@x.y Mon Jan  1 00:00:00 2024\nReturn-path: <rp@x>\nFrom: a@b\n\n"
               b"body\n")
    path = tmp_path / "uf"
    path.write_text('# Exim filter\ntestprint "u: $n1 $sn1 $local_part"\n')
    opts = parse_args(["-bf", str(path), "-bfl", "joe", "-bfd", "ex.org", "-bfs", "-sfx"])
    out = io.StringIO()
    run_filter_test(load_config_text(CONFIG), opts, _Stdin(message), out, io.StringIO())
    assert out.getvalue() == (
        'Sender taken from "From " line\nReturn-path taken from "Return-path:" header '
        "line\nReturn-path = rp@x\nSender      = bob@x.y\nRecipient   = joe-sfx@ex.org\n"
        f'Suffix    = -sfx\nTesting Exim filter file "{path}"\n\nTestprint: u: 0 0 joe\n'
        "Filtering did not set up a significant delivery.\nNormal delivery will occur.\n")


def test_system_filter_user_variables_reach_the_user_filter(tmp_path):
    (tmp_path / "sf").write_text("# Exim filter\nadd 5 to n1\n")
    (tmp_path / "uf").write_text('# Exim filter\ntestprint "u: $n1 $sn1"\n')
    opts = parse_args(["-bF", str(tmp_path / "sf"), "-bf", str(tmp_path / "uf")])
    out = io.StringIO()
    run_filter_test(load_config_text(CONFIG), opts, _Stdin(MESSAGE), out, io.StringIO())
    assert "Testprint: u: 0 5\n" in out.getvalue()


def _env(**kw) -> FilterEnvironment:
    ctx = ExpandContext(variables={"local_part": "me", "domain": "test.ex",
                                   "sender_address": "x@y"},
                        headers=["From: x@y\n", "To: me@test.ex\n", "Subject: hi\n"])
    return FilterEnvironment(ctx, user_addresses=["me@test.ex"], qualify_domain="test.ex",
                             **kw)


@pytest.mark.parametrize("extra,personal", [
    ("", True), ("Precedence: bulk\n", False), ("List-Id: <l.x>\n", False),
    ("Auto-Submitted: auto-replied\n", False), ("Auto-Submitted: no\n", True)])
def test_personal(extra, personal):
    env = _env()
    if extra:
        env.ctx.headers = (env.ctx.headers or []) + [extra]
    result = run_exim_filter("# Exim filter\nif personal then seen finish endif\n", env)
    assert (result.status == DELIVERED) is personal


def test_personal_is_false_for_mail_from_the_user_or_a_daemon():
    for sender in ("me@test.ex", "mailer-daemon@x.y", "owner-list@x.y", "list-request@x"):
        env = _env()
        env.ctx.headers = [f"From: {sender}\n", "To: me@test.ex\n"]
        result = run_exim_filter("# Exim filter\nif personal then seen finish endif\n", env)
        assert result.status == NOT_DELIVERED, sender


def test_forbidden_expansions_and_commands():
    env = _env(forbid_pipe=True)
    with pytest.raises(FilterError, match='"pipe" is disabled'):
        run_exim_filter('# Exim filter\npipe "/bin/true"\n', env)
    env = _env()
    env.ctx.forbid = frozenset({"run"})
    with pytest.raises(FilterError, match="running a command is not permitted"):
        run_exim_filter('# Exim filter\nif "${run{/bin/true}}" is "" then endif\n', env)


def test_mail_in_a_bounce_does_nothing_and_actions_are_collected():
    result = run_exim_filter(
        "# Exim filter\nunseen deliver a@b\nsave /tmp/box 640\nmail text hi\n",
        _env(error_message=True))
    assert [(a.kind, a.target, a.significant, a.mode) for a in result.actions] == [
        ("address", "a@b", False, None), ("file", "/tmp/box", True, 0o640)]
    assert result.status == DELIVERED


def test_matches_captures_of_message_data_are_tainted():
    """$1 after "matches" against a header is tainted, as the header is (Exim copies it
    out of the subject), so a filter cannot take a file name from a message."""
    from pymta.taint import Tainted, is_tainted
    env = _env()
    env.ctx.headers = ["From: x@y\n", "Subject: ../../etc/x\n"]
    env.ctx.variables["local_part"] = Tainted("me")
    result = run_exim_filter(
        '# Exim filter\nif $h_subject: matches "^(.*)\\\\$" then save /tmp/$1 endif\n', env)
    target = result.actions[0].target
    assert target.endswith("etc/x") and is_tainted(target)
    result = run_exim_filter(
        '# Exim filter\nif "plain" matches "^(.*)\\\\$" then save /tmp/$1 endif\n', env)
    assert not is_tainted(result.actions[0].target)
