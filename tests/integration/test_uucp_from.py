"""uucp_from_pattern / uucp_from_sender: a leading UUCP "From " line on standard input
gives the envelope sender and is taken off the message; -f wins; a "From " line that
does not match the pattern starts the body.  Compared with exim4 4.96's spool files for
the same inputs (tests/data/uucp_from)."""
from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.support.asuser import open_to_all, run_pymta_as
from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "uucp_from"

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
{extra}
begin routers
r:
  driver = redirect
  data = :blackhole:
"""

INPUTS = [
    ([], b"From ph10 Fri Jan  5 12:35 GMT 1996\nSubject: t1\n\nbody\n"),
    (["-f", "given@x.example"],
     b"From ph10@else.example Fri, 7 Jan 97 14:00:00 GMT\nSubject: t2\n\nbody\n"),
    ([], b"From junk line\nSubject: t3\n\nbody\n"),
]


def _spool_view(spool: Path) -> tuple[str, str]:
    [header] = list(spool.glob("input/**/*-H"))
    sender = header.read_text().splitlines()[2]
    body = Path(str(header)[:-2] + "-D").read_text().splitlines()[1:3]
    return sender, "".join(line + "|" for line in body)


def _setup(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONFIG.format(spool=spool, extra=extra))
    return conf, spool


@pytest.mark.skipif(os.geteuid() != 0, reason="the recording was made by root (trusted)")
@pytest.mark.parametrize("case", range(len(INPUTS)))
def test_trusted_caller_as_exim(tmp_path, case):
    args, message = INPUTS[case]
    want = (DATA / "exim4-spool.tsv").read_text().splitlines()[case].split("\t")
    conf, spool = _setup(tmp_path)
    r = run_pymta(["-odq", *args, "u@test.example"], conf, input=message)
    assert r.returncode == 0, r.stderr
    sender, body = _spool_view(spool)
    assert [sender.replace(pwd.getpwuid(os.getuid()).pw_name, "root"), body] == want


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")
@pytest.mark.parametrize("extra,sender", [("", "<nobody@test.example>"),
                                          ("untrusted_set_sender = *", "<ph10@test.example>")])
def test_untrusted_caller_sender_only_as_untrusted_set_sender_allows(tmp_path, extra,
                                                                    sender):
    """An untrusted caller's "From " line is taken off, and its sender used only when
    untrusted_set_sender allows it (the rule for -f)."""
    conf, spool = _setup(tmp_path, extra)
    open_to_all(conf)
    for d in (spool, spool / "log"):
        os.chmod(d, 0o777)
    pw = pwd.getpwnam("nobody")
    r = run_pymta_as(pw.pw_uid, pw.pw_gid, conf, ["-odq", "u@test.example"],
                     input=INPUTS[0][1].decode())
    assert r.returncode == 0, r.stderr
    assert _spool_view(spool) == (sender, "body|")


@pytest.mark.parametrize("args,logged", [([], True), (["-f", "x@y.example"], False)])
def test_failed_sender_expansion_is_logged(tmp_path, args, logged):
    """The line goes either way; uucp_from_sender is expanded only without -f."""
    conf, spool = _setup(tmp_path, "uucp_from_sender = ${lookup{$1}lsearch{/nonexistent}}")
    r = run_pymta(["-odq", *args, "u@test.example"], conf, input=INPUTS[0][1])
    assert r.returncode == 0, r.stderr
    log = (spool / "log" / "mainlog").read_text()
    assert ('expansion of "${lookup{$1}lsearch{/nonexistent}}" failed after matching '
            '"From " line' in log) is logged, log
    assert _spool_view(spool)[1] == "body|"
