"""The originator of command-line submissions: unknown_login and unknown_username for a
caller without a passwd entry, and the gecos full name in the created From: line.

pymta runs as that caller (``-odq -t``); the results are Exim 4.96's
(tests/data/originator/exim4-unknown-uid.txt, recorded with Debian's exim4 run as uid
4242, which has no passwd entry here either).
"""
from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from tests.support.asuser import open_to_all, run_pymta_as

DATA = Path(__file__).resolve().parent.parent / "data" / "originator"
UNKNOWN_UID = 4242

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
{extra}
begin routers
r:
  driver = redirect
  data = :blackhole:
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change uid")


def _unknown_cases() -> list[tuple[str, str, int, str]]:
    rows = []
    for line in (DATA / "exim4-unknown-uid.txt").read_text().splitlines():
        if not line.startswith("#"):
            extra, name, rc, text = line.split("\t")
            rows.append((extra.replace(";", "\n") if extra != "-" else "", name, int(rc), text))
    return rows


def _setup(tmp_path: Path, extra: str) -> tuple[Path, Path]:
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONFIG.format(spool=spool, extra=extra))
    open_to_all(conf)
    for d in (spool, spool / "log"):
        os.chmod(d, 0o777)          # no exim_user: the caller writes the spool itself
    return conf, spool


def _from_line(spool: Path) -> str:
    [header] = list(spool.glob("input/**/*-H"))
    m = re.search(r"^\d{3}F (From: .*)$", header.read_text(), re.M)
    assert m, header.read_text()
    return m.group(1)


@pytest.mark.skipif(any(p.pw_uid == UNKNOWN_UID for p in pwd.getpwall()),
                    reason=f"uid {UNKNOWN_UID} has a passwd entry here")
@pytest.mark.parametrize("extra,name,rc,text", _unknown_cases())
def test_unknown_caller_as_exim(tmp_path, extra, name, rc, text):
    conf, spool = _setup(tmp_path, extra)
    args = ["-odq", "-t"] + (["-F", name] if name != "-" else [])
    out = run_pymta_as(UNKNOWN_UID, UNKNOWN_UID, conf, args,
                       input="To: alice@test.example\nSubject: x\n\nbody\n")
    assert out.returncode == rc, out.stderr
    if rc:
        assert out.stderr == f"pymta: {text}\n"
        assert not list(spool.glob("input/**/*-H"))
    else:
        assert _from_line(spool) == text


def test_gecos_name_from_the_pattern(tmp_path):
    pw = pwd.getpwnam("nobody")
    extra = "gecos_pattern = ^(.)(.*)\ngecos_name = <$2 $1>"
    conf, spool = _setup(tmp_path, extra)
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "-t"],
                       input="To: alice@test.example\nSubject: x\n\nbody\n")
    assert out.returncode == 0, out.stderr
    gecos = pw.pw_gecos.replace("&", "Nobody")
    assert _from_line(spool) == f'From: "<{gecos[1:]} {gecos[:1]}>" <nobody@test.example>'


def _local_from_cases() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in (DATA / "exim4-local-from.txt").read_text().splitlines():
        if not line.startswith("#"):
            extra, name, given, after = line.split("\t")
            rows.append((extra if extra != "-" else "", name, given, after))
    return rows


def _live_headers(spool: Path) -> str:
    """The header lines of the queued message (not those marked deleted, not Received:)
    in Exim's $message_headers form, Message-Id and Date values masked."""
    [path] = list(spool.glob("input/**/*-H"))
    lines = []
    for m in re.finditer(r"^\d{3}(.) ((?:.*\n)(?:[ \t].*\n)*)", path.read_text(), re.M):
        if m.group(1) in ("*", "P"):
            continue
        text = m.group(2).rstrip("\n")
        text = re.sub(r"^Message-Id: <[^>]*>", "Message-Id: <ID>", text)
        lines.append(re.sub(r"^Date: .*", "Date: DATE", text))
    return "\\n".join(lines)


@pytest.mark.parametrize("extra,name,given,after", _local_from_cases())
def test_untrusted_sender_header_rules_as_exim(tmp_path, extra, name, given, after):
    pw = pwd.getpwnam("nobody")
    login, full = pw.pw_name, pw.pw_gecos.replace("&", pw.pw_name.capitalize())
    conf, spool = _setup(tmp_path, extra)
    args = ["-odq", "-t"] + (["-F", name] if name != "-" else [])
    message = (given.replace("UCLOGIN", login.upper()).replace("LOGIN", login)
               .replace("\\n", "\n"))
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, args, input=message)
    assert out.returncode == 0, out.stderr
    expected = (after.replace("UCLOGIN", login.upper()).replace("LOGIN", login)
                .replace("NAME", full))
    assert _live_headers(spool) == expected


def test_old_sender_line_is_kept_marked_deleted(tmp_path):
    pw = pwd.getpwnam("nobody")
    conf, spool = _setup(tmp_path, "")
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "-t"],
                       input="To: a@test.example\nFrom: x@else.example\n"
                             "Sender: fake@x.example\n\nb\n")
    assert out.returncode == 0, out.stderr
    [path] = list(spool.glob("input/**/*-H"))
    assert re.search(r"^\d{3}\* Sender: fake@x\.example$", path.read_text(), re.M)


def test_trusted_caller_keeps_sender_and_from(tmp_path):
    conf, spool = _setup(tmp_path, "")
    out = run_pymta_as(0, 0, conf, ["-odq", "-t"],
                       input="To: a@test.example\nFrom: other@else.example\n"
                             "Sender: fake@x.example\nSubject: t\n\nb\n")
    assert out.returncode == 0, out.stderr
    assert _live_headers(spool) == ("To: a@test.example\\nFrom: other@else.example\\n"
                                    "Sender: fake@x.example\\nSubject: t\\n"
                                    "Message-Id: <ID>\\nDate: DATE")


def test_local_smtp_untrusted_gets_sender_header(tmp_path):
    pw = pwd.getpwnam("nobody")
    conf, spool = _setup(tmp_path, "acl_smtp_rcpt = accept")
    session = ("HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@test.example>\r\nDATA\r\n"
               "From: other@else.example\r\nSubject: s\r\n\r\nb\r\n.\r\nQUIT\r\n")
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "-bs"], input=session)
    assert out.returncode == 0, out.stderr
    assert "\n250 OK id=" in out.stdout, out.stdout
    assert f"Sender: {pw.pw_gecos} <{pw.pw_name}@test.example>" in _live_headers(spool)


def _envelope_sender(spool: Path) -> str:
    [header] = list(spool.glob("input/**/*-H"))
    return header.read_text().splitlines()[2]        # "<sender>", after the id and owner


@pytest.mark.parametrize("extra,given,kept", [
    ("", "boss@elsewhere.example", False),
    ("", "<>", True),                                       # always allowed
    ("untrusted_set_sender = ^$sender_ident-", "LOGIN-news@elsewhere.example", True),
    ("untrusted_set_sender = ^$sender_ident-", "boss-news@elsewhere.example", False),
    ("untrusted_set_sender = *@lists.example", "LOGIN", False),
    ("untrusted_set_sender = *@test.example", "alias", True),       # qualified first
    ("untrusted_set_sender = *", "boss@elsewhere.example", True),
])
def test_untrusted_caller_sets_the_sender_as_untrusted_set_sender_allows(
        tmp_path, extra, given, kept):
    """-f from a caller who is not trusted: the empty sender, and addresses in
    untrusted_set_sender (expanded with $sender_ident = the caller's login), are
    taken; any other is replaced by the caller's own address."""
    pw = pwd.getpwnam("nobody")
    conf, spool = _setup(tmp_path, extra)
    given = given.replace("LOGIN", pw.pw_name)
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "-f", given, "a@test.example"],
                       input="Subject: s\n\nb\n")
    assert out.returncode == 0, out.stderr
    expected = ("<>" if given == "<>" else
                f"<{given if '@' in given else given + '@test.example'}>") if kept \
        else f"<{pw.pw_name}@test.example>"
    assert _envelope_sender(spool) == expected


def test_caller_who_cannot_write_the_spool_gets_a_message_not_a_traceback(tmp_path):
    conf, spool = _setup(tmp_path, "")
    os.chmod(spool, 0o755)          # as a daemon's spool is to anyone but exim_user
    (spool / "input").mkdir(mode=0o750)
    pw = pwd.getpwnam("nobody")
    out = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "x@test.example"],
                       input="Subject: s\n\nbody\n")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith(f"pymta: Failed to create spool file {spool}/input/")
    assert ": Permission denied\npymta: pymta is not setuid root" in out.stderr
