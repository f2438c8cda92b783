"""Named queues: the ACL "queue" modifier, spool/<name>/input, -bp/-bpc -qG<name>,
-qG<name> queue runs, -M with -qG, and -MG between queues.  Log lines as Exim 4.96
writes them (exim4 -bs / -qGfoo / -MG on Debian's package); Exim lists pymta's named
queue."""
from __future__ import annotations

import re
import subprocess

from tests.support.daemon import PymtaDaemon
from tests.support.exim import EXIM, exim_or_skip

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
QUEUE_ONLY
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  accept queue = ${if eq{$local_part}{a}{foo}{}}
begin routers
r:
  driver = accept
  local_parts = s : a : b
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
"""

# _smtp passes -odi, which overrides queue_only unless queue_only_override is false
QUEUED = "queue_only\nqueue_only_override = false"


def _smtp(d: PymtaDaemon, rcpt: str) -> str:
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    session = (f"HELO x\r\nMAIL FROM:<s@test.example>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
               "Subject: q\r\n\r\nb\r\n.\r\nQUIT\r\n")
    out = d.run("-odi", "-bs", input=session.encode()).stdout
    return re.search(r"250 OK id=(\S+)", out).group(1)


def _lines(d: PymtaDaemon, msgid: str) -> list[str]:
    return [ln.split(f"{msgid} ", 1)[1] for ln in d.log().splitlines() if f" {msgid} " in ln]


def test_named_queue_delivered_at_once(tmp_path):
    d = PymtaDaemon(CONFIG.replace("QUEUE_ONLY", ""), tmp_path)
    msgid = _smtp(d, "a@test.example")
    lines = _lines(d, msgid)
    assert re.fullmatch(r"<= s@test\.example U=\S+ P=local-smtp S=\d+ Q=foo", lines[0])
    assert lines[1:] == ["=> a <a@test.example> Q=foo R=r T=local", "Completed"]


def test_queue_runs_listing_and_moving(tmp_path):
    d = PymtaDaemon(CONFIG.replace("QUEUE_ONLY", QUEUED), tmp_path)
    in_foo = _smtp(d, "a@test.example")
    in_default = _smtp(d, "b@test.example")
    assert (d.spool / "foo" / "input" / f"{in_foo}-H").exists()
    assert (d.spool / "foo" / "msglog" / in_foo).exists()
    assert in_foo not in d.run("-bp").stdout and in_default in d.run("-bp").stdout
    assert in_foo in d.run("-bp", "-qGfoo").stdout
    assert d.run("-bpc", "-qGfoo").stdout == "1\n"
    # a default queue run leaves the named queue alone; -qGfoo delivers it
    d.run("-q")
    assert not (tmp_path / "mbox-a").exists()
    d.run("-qGfoo")
    assert re.search(r"Start 'foo' queue run: pid=\d+\n", d.log())
    assert re.search(r"End 'foo' queue run: pid=\d+\n", d.log())
    assert _lines(d, in_foo)[-2:] == ["=> a <a@test.example> Q=foo R=r T=local", "Completed"]
    # -MG: into a named queue and back; -M with -qG finds it there
    again = _smtp(d, "b@test.example")
    assert d.run("-MG", "bar", again).returncode == 0
    assert (d.spool / "bar" / "input" / f"{again}-H").exists()
    assert not (d.spool / "input" / f"{again}-H").exists()
    assert d.run("-qGbar", "-MG", "", again).returncode == 0
    assert (d.spool / "input" / f"{again}-H").exists()
    assert _lines(d, again)[-2:] == ["moved from input, msglog to (bar) input, msglog",
                                     "moved from (bar) input, msglog to input, msglog"]
    d.run("-MG", "bar", again)
    d.run("-qGbar", "-M", again)
    assert _lines(d, again)[-2:] == ["=> b <b@test.example> Q=bar R=r T=local", "Completed"]


def test_exim_lists_pymta_named_queue(tmp_path):
    exim_or_skip()
    d = PymtaDaemon(CONFIG.replace("QUEUE_ONLY", QUEUED), tmp_path)
    msgid = _smtp(d, "a@test.example")
    conf = tmp_path / "exim.conf"
    conf.write_text(f"spool_directory = {d.spool}\nexim_user = {d.exim_user or 'root'}\n"
                    "keep_environment =\n")
    conf.chmod(0o644)
    out = subprocess.run([EXIM, "-C", str(conf), "-bp", "-qGfoo"], capture_output=True,
                         text=True, timeout=30).stdout
    assert f"{msgid} <s@test.example>\n          a@test.example\n" in out
    assert re.sub(r"(?m)^ *-?\d+[smhd] ", "", out) == \
        re.sub(r"(?m)^ *-?\d+[smhd] ", "", d.run("-bp", "-qGfoo").stdout)
