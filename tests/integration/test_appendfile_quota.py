"""appendfile quotas through `pymta -odi`: maildirsize files, quota_filecount, the
warning threshold and message, no_check, quota_size_regex and mailbox_size.

The refusal lines and the warning message are those Exim 4.96 wrote for the same
configuration (exim4 -odi, Debian).  One deliberate difference: Exim 4.96 refused
even the first message under quota_filecount = 2 in a fresh maildir (it counts the
maildir's own directories); pymta counts messages.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.daemon import PymtaDaemon

USER = "user = nobody" if os.geteuid() == 0 else ""

CONFIG = f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  local_parts = s : a : b : c : d : e : f
  transport = t_$local_part_data
begin transports
t_a:
  driver = appendfile
  directory = DIR/maildir-a
  maildir_format
  maildir_use_size_file
  quota = 2K
  quota_warn_threshold = 50%
  {USER}
t_b:
  driver = appendfile
  directory = DIR/maildir-b
  maildir_format
  quota = 100K
  quota_filecount = 2
  {USER}
t_c:
  driver = appendfile
  file = DIR/mbox-c
  quota = 1K
  quota_warn_threshold = 600
  quota_warn_message = To: s@test.example\\nSubject: warn $local_part\\n\\nbig mailbox\\n
  {USER}
t_d:
  driver = appendfile
  directory = DIR/maildir-d
  maildir_format
  quota = 1K/no_check
  maildir_tag = ,S=$message_size
  quota_size_regex = ,S=(\\\\d+)
  {USER}
t_e:
  driver = appendfile
  file = DIR/mbox-e
  quota = 1K
  mailbox_size = ${{if exists{{DIR/e-size}}{{${{readfile{{DIR/e-size}}}}}}{{0}}}}
  {USER}
t_f:
  driver = appendfile
  directory = DIR/maildir-f
  maildir_format
  maildir_use_size_file
  quota = 10K
  {USER}
t_s:
  driver = appendfile
  file = DIR/mbox-s
  {USER}
begin retry
* * F,1h,10m
"""

BODY = "x" * 600


def send(d: PymtaDaemon, user: str) -> str:
    d.submit_and_deliver("s@test.example", f"{user}@test.example",
                         f"From: s@test.example\nTo: {user}@test.example\nSubject: q\n\n"
                         f"{BODY}\n".encode())
    return re.findall(r"(\w{6}-\w{6}-\w{2}) <= s@test\.example", d.log())[-1]


def outcome(d: PymtaDaemon, msgid: str) -> str:
    lines = [ln.split(f"{msgid} ", 1)[1] for ln in d.log().splitlines()
             if f" {msgid} " in ln and " <= " not in ln]
    return lines[0]


def test_maildirsize_quota_and_warning(tmp_path: Path):
    d = PymtaDaemon(CONFIG, tmp_path)
    assert outcome(d, send(d, "a")) == "=> a <a@test.example> R=r T=t_a"
    size_file = (tmp_path / "maildir-a" / "maildirsize").read_text()
    first = int(size_file.split("\n")[2].split()[0])
    assert size_file == f"2048S,0C\n0 0\n{first} 1\n"
    # the second crosses 50%: delivered, and the default warning goes to a@ itself,
    # whose maildir is now too full for it
    assert outcome(d, send(d, "a")) == "=> a <a@test.example> R=r T=t_a"
    warning = re.search(r"(\w{6}-\w{6}-\w{2}) <= <> R=", d.log()).group(1)
    assert re.fullmatch(r"== a@test\.example R=r T=t_a defer \(-22\): mailbox is full "
                        r"\(MTA-imposed quota exceeded while writing to tmp/\d+\.M\d+P\d+"
                        r"\.test\.example\)", outcome(d, warning))
    third = send(d, "a")
    assert "defer (-22): mailbox is full (MTA-imposed quota exceeded" in outcome(d, third)
    assert len(os.listdir(tmp_path / "maildir-a" / "new")) == 2
    # a corrupt maildirsize is recalculated from the maildir, and nothing is lost
    (tmp_path / "maildir-a" / "maildirsize").write_text("garbage\n")
    d.run("-M", third)
    assert (tmp_path / "maildir-a" / "maildirsize").read_text().startswith(
        f"2048S,0C\n{2 * first} 2\n")
    assert third in d.run("-bp").stdout


def test_filecount_no_check_and_size_regex(tmp_path: Path):
    d = PymtaDaemon(CONFIG, tmp_path)
    for _ in range(2):
        assert outcome(d, send(d, "b")) == "=> b <b@test.example> R=r T=t_b"
    assert re.fullmatch(r"== b@test\.example R=r T=t_b defer \(-22\): mailbox is full "
                        r"\(MTA-imposed filecount quota exceeded while writing to tmp/\S+\)",
                        outcome(d, send(d, "b")))
    # no_check: over the quota, still delivered; the sizes come from the file names
    for _ in range(3):
        assert outcome(d, send(d, "d")) == "=> d <d@test.example> R=r T=t_d"
    names = os.listdir(tmp_path / "maildir-d" / "new")
    assert len(names) == 3 and all(re.search(r",S=\d+$", n) for n in names)


def test_mbox_quota_warning_message_and_mailbox_size(tmp_path: Path):
    d = PymtaDaemon(CONFIG, tmp_path)
    first = send(d, "c")
    assert outcome(d, first) == "=> c <c@test.example> R=r T=t_c"
    warning = (tmp_path / "mbox-s").read_text()
    headers, _, body = warning.split("\n", 1)[1].partition("\n\n")
    names = [ln.split(":")[0] for ln in headers.split("\n") if not ln[:1].isspace()]
    assert names[1:4] == ["Auto-Submitted", "From", "To"]     # after Received:
    assert "From: Mail Delivery System <Mailer-Daemon@test.example>\n" in warning
    assert "Subject: warn c\n" in warning and body == "big mailbox\n\n"
    assert re.search(rf"\w{{6}}-\w{{6}}-\w{{2}} <= <> R={first} ", d.log())
    assert outcome(d, send(d, "c")) == ("== c@test.example R=r T=t_c defer (-22): mailbox "
                                        f"is full (MTA-imposed quota exceeded while writing "
                                        f"to {tmp_path}/mbox-c)")
    # mailbox_size: the size comes from elsewhere (here a file an external tool keeps)
    assert outcome(d, send(d, "e")) == "=> e <e@test.example> R=r T=t_e"
    (tmp_path / "e-size").write_text("1000")
    assert "mailbox is full" in outcome(d, send(d, "e"))


def test_maildir_folders_count_in_the_parent_quota(tmp_path: Path):
    d = PymtaDaemon(CONFIG, tmp_path)
    send(d, "f")
    folder = tmp_path / "maildir-f" / ".Lists" / "cur"
    folder.mkdir(parents=True)
    (folder / "old-message").write_text("y" * 3000)
    (tmp_path / "maildir-f" / "maildirsize").unlink()
    send(d, "f")
    lines = (tmp_path / "maildir-f" / "maildirsize").read_text().split("\n")
    size, count = map(int, lines[1].split())
    assert count == 2 and size > 3000           # the folder's message is counted
