"""-bp listing, -bpc, -Mrm and the -Mv* viewers, compared with Exim 4.96 output."""
import os
import shutil
from pathlib import Path

import pytest

from pymta.spool import files, queue
from pymta.spool.lock import lock_message
from pymta.spool.model import SpoolHeader, SpoolMessage, SpoolRecipient

DATA = Path(__file__).parent.parent / "data" / "spool"


# ages and sizes as printed by exim4 -bp (observed with Exim 4.96)
@pytest.mark.parametrize("age,text", [
    (0, " 0m"), (3540, "59m"), (3660, "61m"), (5430, "90m"), (5460, " 2h"), (5990, " 2h"),
    (8940, " 2h"), (9000, " 3h"), (172800, "48h"), (259200, "72h"), (261000, " 3d"),
    (358140, " 4d"), (3150000, "36d"), (3157200, "37d"), (86400 * 400, "400d")])
def test_format_age(age, text):
    assert queue.format_age(age) == text


@pytest.mark.parametrize("size,text", [
    (0, "    0"), (276, "  276"), (1023, " 1023"), (1024, " 1.0K"), (1150, " 1.1K"),
    (10240, "  10K"), (12300, "  12K"), (900000, " 879K"), (2000000, " 1.9M"),
    (12000000, "  11M")])
def test_format_size(size, text):
    assert queue.format_size(size) == text


def make(spool, mid, t, sender, rcpts, body=b"x\n", frozen=None, done=()):
    m = SpoolMessage(id=mid, originator_login="root", originator_uid=0, originator_gid=0,
                     sender=sender, received_time=t, frozen_at=frozen,
                     nonrecipients=set(done),
                     recipients=[SpoolRecipient(r) for r in rcpts],
                     headers=[SpoolHeader(" ", "Subject: s\n")])
    files.write_spool(spool, m, body)
    return m


def test_exim_spool_file_listed_like_exim(tmp_path):
    spool = str(tmp_path)
    files.ensure_spool_dirs(spool)
    for suffix in ("-H", "-D"):
        shutil.copy(DATA / f"1xUsgJ-0001b3-13{suffix}", files.input_dir(spool))
    out = queue.format_bp(spool, now=1795296695 + 30)
    # exim4 -bp printed exactly this for the same files
    assert out == (" 0m   265 1xUsgJ-0001b3-13 <s@remote.example> *** frozen ***\n"
                   "        D u@test.example\n"
                   "          v@test.example\n\n")


def test_listing_order_count_and_journal(tmp_path):
    spool = str(tmp_path)
    make(spool, "1xUsgQ-0001f9-1K", 1795296700, "b@x", ["r1@x", "r2@x"])
    make(spool, "1xUsgF-0001Z2-1I", 1795296691 - 7200, "", ["r3@x"], body=b"y" * 2000)
    files.append_journal(spool, "1xUsgQ-0001f9-1K", "r2@x")
    Path(files.input_dir(spool), "junk-H").write_text("x")       # not an id: ignored
    assert queue.list_queue(spool) == ["1xUsgF-0001Z2-1I", "1xUsgQ-0001f9-1K"]
    assert queue.count_queue(spool) == 2
    out = queue.format_bp(spool, now=1795296700 + 61)
    assert out == (" 2h  2.0K 1xUsgF-0001Z2-1I <>\n"
                   "          r3@x\n\n"
                   " 1m    14 1xUsgQ-0001f9-1K <b@x>\n"
                   "          r1@x\n"
                   "        D r2@x\n\n")
    assert queue.format_bp(spool, ["1xUsgQ-0001f9-1K"], now=1795296700).startswith(" 0m ")


def test_remove_messages_logs_and_reports(tmp_path):
    spool = str(tmp_path)
    make(spool, "1xUsgQ-0001f9-1K", 1795296700, "b@x", ["r1@x"])
    make(spool, "1xUsgQ-0001f9-1L", 1795296700, "b@x", ["r1@x"])

    class Log:
        lines = []

        def main(self, text, msgid=None):
            self.lines.append(f"{msgid} {text}")

    log = Log()
    held = lock_message(spool, "1xUsgQ-0001f9-1L")
    pid = os.fork()
    if pid == 0:           # the lock must be held by another process to count
        os._exit(0 if "is locked" in queue.remove_messages(spool, ["1xUsgQ-0001f9-1L"],
                                                           None, "root") else 1)
    assert os.waitpid(pid, 0)[1] == 0
    held.release()
    out = queue.remove_messages(spool, ["1xUsgQ-0001f9-1K"], log, "root")
    assert out == "Message 1xUsgQ-0001f9-1K has been removed\n"
    assert log.lines == ["1xUsgQ-0001f9-1K removed by root", "1xUsgQ-0001f9-1K Completed"]
    assert queue.list_queue(spool) == ["1xUsgQ-0001f9-1L"]
    out = queue.remove_messages(spool, ["1xUsgQ-0001f9-1K"], log, "root")
    assert out.endswith("Message 1xUsgQ-0001f9-1K has been removed or did not exist\n")


def test_viewers_print_whole_files(tmp_path):
    spool = str(tmp_path)
    m = make(spool, "1xUsgQ-0001f9-1K", 1795296700, "b@x", ["r1@x"], body=b"hello\n")
    assert queue.view_body(spool, m.id) == b"1xUsgQ-0001f9-1K-D\nhello\n"
    assert queue.view_header(spool, m.id).startswith(b"1xUsgQ-0001f9-1K-H\nroot 0 0\n")
    Path(files.msglog_path(spool, m.id)).write_text("2026-11-21 21:31:35 Received\n")
    assert queue.view_log(spool, m.id) == b"2026-11-21 21:31:35 Received\n"
