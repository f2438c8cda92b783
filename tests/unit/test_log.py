"""Exim-format log lines, the three log files, msglog and rotation."""
import os
import re
import time
import types

import pytest

from pymta import log as logmod
from pymta.log import Logger, panic_path_from

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def make_logger(tmp_path, **opts) -> Logger:
    main = types.SimpleNamespace(spool_directory=str(tmp_path / "spool"), **opts)
    return Logger(types.SimpleNamespace(main=main))


def read(path) -> str:
    with open(path) as f:
        return f.read()


def test_default_path_and_line_format(tmp_path):
    lg = make_logger(tmp_path)
    lg.main("Start queue run: pid=1")
    lg.main("<= a@b.example U=root P=local S=276", "1xUsgF-0001Z2-1I")
    text = read(tmp_path / "spool" / "log" / "mainlog")
    lines = text.splitlines()
    assert re.fullmatch(STAMP + r" Start queue run: pid=1", lines[0])
    assert re.fullmatch(STAMP + r" 1xUsgF-0001Z2-1I <= a@b.example U=root P=local S=276",
                        lines[1])


def test_timestamp_is_local_time(tmp_path, monkeypatch):
    lg = make_logger(tmp_path)
    t = 1795296691.4
    assert lg.format_line("x", None, t) == time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(t)) + " x\n"
    lgz = make_logger(tmp_path, log_timezone=True)
    assert re.fullmatch(STAMP + r" [+-]\d{4} x\n", lgz.format_line("x", None, t))


def test_millisec_selector(tmp_path):
    """+millisec: ".mmm" after the seconds, before the zone (Exim's
    "2026-12-04 16:14:44.243"), in the main log and the message log alike."""
    t = 1795296691.4
    lg = make_logger(tmp_path, log_selector="+millisec")
    assert lg.format_line("x", None, t) == time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(t)) + ".400 x\n"
    lgz = make_logger(tmp_path, log_selector="+millisec", log_timezone=True)
    assert re.fullmatch(STAMP + r"\.400 [+-]\d{4} x\n", lgz.format_line("x", None, t))
    assert make_logger(tmp_path, log_selector="+millisec -millisec").format_line(
        "x", None, t).endswith(":" + time.strftime("%S", time.localtime(t)) + " x\n")
    lg.msglog(str(tmp_path / "spool"), "1xUsgF-0001Z2-1I", "y")
    text = read(tmp_path / "spool" / "msglog" / "1xUsgF-0001Z2-1I")
    assert re.fullmatch(STAMP + r"\.\d{3} y\n", text)


def test_pid_selector(tmp_path):
    lg = make_logger(tmp_path, log_selector="+pid")
    assert re.fullmatch(STAMP + rf" \[{os.getpid()}\] ID x\n", lg.format_line("x", "ID"))


def test_newlines_cannot_forge_lines(tmp_path):
    lg = make_logger(tmp_path)
    lg.main("bad\nthing\r")
    assert read(tmp_path / "spool" / "log" / "mainlog").count("\n") == 1


def test_reject_and_panic_copies(tmp_path):
    path = str(tmp_path / "logs" / "exim_%s.log")
    lg = make_logger(tmp_path, log_file_path=path)
    from pymta.spool.model import SpoolHeader
    lg.reject("H=[1.2.3.4] rejected RCPT <x@y>: no", None,
              headers=[SpoolHeader("F", "From: a\n"), "Subject: s\n"],
              envelope=["Envelope-from: <a@b>"])
    lg.panic("failed to open something")
    main = read(tmp_path / "logs" / "exim_main.log").splitlines()
    reject = read(tmp_path / "logs" / "exim_reject.log").splitlines()
    panic = read(tmp_path / "logs" / "exim_panic.log").splitlines()
    assert len(main) == 2 and main[0].endswith("rejected RCPT <x@y>: no")
    assert main[1].endswith(" failed to open something")
    assert reject[0] == main[0]
    assert reject[1:] == ["Envelope-from: <a@b>", "F From: a", "  Subject: s"]
    assert panic == [main[1]]


def test_minus_rejected_header(tmp_path):
    """-rejected_header: the rejectlog entry without envelope and header lines, from
    reject() and to_logs() alike."""
    lg = make_logger(tmp_path, log_selector="-rejected_header")
    lg.reject("rejected RCPT <x@y>: no", None, headers=["Subject: s\n"],
              envelope=["Envelope-from: <a@b>"])
    lg.to_logs(["reject"], "noted", "1xUsgF-0001Z2-1I", headers=["Subject: s\n"])
    reject = read(tmp_path / "spool" / "log" / "rejectlog").splitlines()
    assert len(reject) == 2, reject
    assert reject[0].endswith(" rejected RCPT <x@y>: no")
    assert reject[1].endswith(" 1xUsgF-0001Z2-1I noted")


def test_write_rejectlog_false(tmp_path):
    lg = make_logger(tmp_path, write_rejectlog=False)
    lg.reject("rejected")
    assert not (tmp_path / "spool" / "log" / "rejectlog").exists()
    assert "rejected" in read(tmp_path / "spool" / "log" / "mainlog")


def test_log_path_list_skips_syslog(tmp_path):
    lg = make_logger(tmp_path, log_file_path="syslog : " + str(tmp_path / "%s.log"))
    assert lg.path_for("main") == str(tmp_path / "main.log")
    lg2 = make_logger(tmp_path, log_file_path=":syslog")
    assert lg2.path_for("reject") == str(tmp_path / "spool" / "log" / "rejectlog")


@pytest.mark.parametrize("template,panic", [      # the spec's examples
    ("/var/spool/exim/log/%slog-%D", "/var/spool/exim/log/paniclog"),
    ("/var/log/exim-%s-%D.log", "/var/log/exim-panic.log"),
    ("/var/spool/exim/log/%D-%slog", "/var/spool/exim/log/paniclog"),
    ("/var/log/exim/%s.%M", "/var/log/exim/panic"),
])
def test_panic_log_name_drops_datestamp(template, panic):
    assert panic_path_from(template).replace("%s", "panic") == panic


def test_datestamped_names(tmp_path):
    lg = make_logger(tmp_path, log_file_path=str(tmp_path / "%slog-%D"))
    t = 1795296691
    assert lg.path_for("main", t) == str(tmp_path / ("mainlog-" + time.strftime(
        "%Y%m%d", time.localtime(t))))


def test_reopens_after_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(logmod, "_CHECK_INTERVAL", 0.0)
    lg = make_logger(tmp_path)
    logdir = tmp_path / "spool" / "log"
    lg.main("one")
    os.rename(logdir / "mainlog", logdir / "mainlog.1")
    lg.main("two")
    assert read(logdir / "mainlog.1").endswith(" one\n")
    assert read(logdir / "mainlog").endswith(" two\n")
    assert read(logdir / "mainlog").count("\n") == 1


def test_concurrent_writers_interleave_whole_lines(tmp_path):
    make_logger(tmp_path)            # creates the log directory
    pids = []
    for n in range(3):
        pid = os.fork()
        if pid == 0:
            child = make_logger(tmp_path)
            for i in range(200):
                child.main(f"writer {n} line {i} " + "x" * 300)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    lines = read(tmp_path / "spool" / "log" / "mainlog").splitlines()
    assert len(lines) == 600
    assert all(re.fullmatch(STAMP + r" writer \d line \d+ x{300}", ln) for ln in lines)


def test_msglog(tmp_path):
    lg = make_logger(tmp_path)
    spool = str(tmp_path / "spool")
    lg.msglog(spool, "1xUsgF-0001Z2-1I", "Received from a@b.example U=root P=local S=276")
    lg.msglog(spool, "1xUsgF-0001Z2-1I", "second")
    lines = read(os.path.join(spool, "msglog", "1xUsgF-0001Z2-1I")).splitlines()
    assert re.fullmatch(STAMP + r" Received from a@b.example U=root P=local S=276", lines[0])
    assert lines[1].endswith(" second") and len(lines) == 2
