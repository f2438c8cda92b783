"""The system integration files in etc/ checked by the real tools: the systemd unit by
systemd-analyze verify, the logrotate file by logrotate (a dry run, then a real rotation
under a running daemon, which goes on logging into the new file without a postrotate),
the fail2ban jail by fail2ban-client's configuration test, and the unit's Type=notify by
a NOTIFY_SOCKET the test listens on."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import REPO, PymtaDaemon, pymta_env

ETC = REPO / "etc"
CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_mail = check_mail
begin acl
check_mail:
  deny
"""


def _pymta_command() -> str:
    """An executable to stand for /usr/local/bin/pymta in the copies of the files."""
    venv = Path(sys.executable).parent / "pymta"
    return str(venv) if venv.exists() else (shutil.which("pymta") or "/bin/true")


def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / "pymta.service"
    unit.write_text((ETC / "systemd" / "pymta.service").read_text()
                    .replace("/usr/local/bin/pymta", _pymta_command()))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    problems = [ln for ln in (out.stdout + out.stderr).splitlines()
                if "pymta.service" in ln]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
    text = unit.read_text()
    assert "Type=notify" in text and "EnvironmentFile=-/etc/default/pymta" in text


def test_default_file_sets_what_the_unit_reads():
    unit = (ETC / "systemd" / "pymta.service").read_text()
    default = (ETC / "default" / "pymta").read_text()
    settings = dict(re.findall(r"^([A-Z]+)=(.*)$", default, re.M))
    assert settings == {"QUEUEINTERVAL": "30m", "OPTIONS": ""}
    for name in settings:
        assert f"${name}" in unit or f"${{{name}}}" in unit


def _logrotate_conf(tmp_path: Path, logdir: Path, user: str, group: str) -> Path:
    conf = tmp_path / "logrotate.conf"
    conf.write_text((ETC / "logrotate.d" / "pymta").read_text()
                    .replace("/var/log/pymta", str(logdir))
                    .replace("pymta pymta", f"{user} {group}"))
    return conf


def test_logrotate_dry_run(tmp_path):
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (Debian package logrotate)")
    logdir = tmp_path / "log"
    logdir.mkdir()
    for name in ("mainlog", "rejectlog", "paniclog"):
        (logdir / name).write_text("2026-01-01 00:00:00 a line\n")
    me = pwd.getpwuid(os.getuid())
    conf = _logrotate_conf(tmp_path, logdir, me.pw_name, "root" if os.getuid() == 0
                           else str(os.getgid()))
    out = subprocess.run(["logrotate", "-d", "-s", str(tmp_path / "state"), str(conf)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "error" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    assert f"rotating pattern: {logdir}/mainlog {logdir}/rejectlog" in out.stderr + out.stdout


def test_logrotate_under_a_running_daemon_needs_no_postrotate(tmp_path):
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate is not installed (Debian package logrotate)")
    with PymtaDaemon(CONFIG, tmp_path) as d:
        logdir = d.spool / "log"
        owner = pwd.getpwuid(logdir.stat().st_uid).pw_name
        group = str(logdir.stat().st_gid)
        with d.client() as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<first@test.example>")[0] == 550
            c.quit()
        d.wait_for_log(r"first@test\.example")
        conf = _logrotate_conf(tmp_path, logdir, owner, group)
        out = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(conf)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "first@test.example" in (logdir / "mainlog.1").read_text()
        assert "first@test.example" not in d.log()
        # a process checks for a rename at most once a second: a line written within
        # that second still goes to the renamed file (delaycompress keeps it plain)
        time.sleep(1.5)
        with d.client() as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<second@test.example>")[0] == 550
            c.quit()
        # the receiver notices the rename by itself
        d.wait_for_log(r"second@test\.example", timeout=15)
        assert "second@test.example" not in (logdir / "mainlog.1").read_text()
        assert "second@test.example" in d.log("reject")


def test_fail2ban_accepts_the_jails(tmp_path):
    if shutil.which("fail2ban-client") is None:
        pytest.skip("fail2ban-client is not installed (Debian package fail2ban)")
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for f in (conf / "jail.d").iterdir():
        f.unlink()                         # only pymta's jails (no sshd on this host)
    log = tmp_path / "mainlog"
    log.write_text("2026-01-01 00:00:00 H=(x.example) [192.0.2.7] F=<a@x.example> "
                   "rejected RCPT <b@y.example>: relay not permitted\n")
    (conf / "jail.d" / "pymta.conf").write_text(
        (ETC / "fail2ban" / "jail.d" / "pymta.conf").read_text()
        .replace("/var/log/pymta/mainlog", str(log)))
    out = subprocess.run(["fail2ban-client", "-c", str(conf), "-d"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "['add', 'pymta', 'auto']" in out.stdout, out.stdout
    assert "['add', 'pymta-spam', 'auto']" in out.stdout, out.stdout
    assert f"['set', 'pymta', 'addlogpath', '{log}', 'head']" in out.stdout, out.stdout
    # and the jail's filter finds the line in that file
    regex = subprocess.run(["fail2ban-regex", str(log), str(conf / "filter.d" / "exim.conf")],
                           capture_output=True, text=True, timeout=120)
    assert "1 matched" in regex.stdout, regex.stdout


def test_type_notify_ready_after_listening(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    try:
        d = PymtaDaemon(CONFIG, tmp_path, env={"NOTIFY_SOCKET": path})
        with d:
            # start() returned after the banner: the notification was sent before
            state = sock.recv(1024).decode()
            assert d.proc is not None
            assert state == f"READY=1\nMAINPID={d.proc.pid}"
            sock.settimeout(0.5)
            with d.client() as c:          # children never inherit NOTIFY_SOCKET
                c.banner()
                c.quit()
            with pytest.raises(socket.timeout):
                sock.recv(1024)
    finally:
        sock.close()


def test_signals_right_after_ready_are_handled(tmp_path):
    # systemctl reload or stop may come as soon as READY=1 has arrived: a SIGHUP must
    # not kill the master, and a SIGTERM must be a clean stop (status 0, not -15)
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True)
    command = [sys.executable, "-c", "import sys; from pymta.cli.main import main; "
               "sys.exit(main())", "-C", str(d.config_path), f"-DSPOOL={d.spool}",
               "-oX", str(d.port), "-bdf"]
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        proc = subprocess.Popen(command, env=pymta_env({"NOTIFY_SOCKET": path}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            assert sock.recv(100).decode() == f"READY=1\nMAINPID={proc.pid}"
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
            assert proc.poll() is None, "SIGHUP killed the daemon"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_cron_file_runs_the_queue_every_15_minutes(tmp_path):
    """The cron line is well formed (five time fields, a user, a command), and its
    command, "pymta -q", makes one queue run that delivers a queued message and exits."""
    lines = [ln for ln in (ETC / "cron.d" / "pymta").read_text().splitlines()
             if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]]
    [entry] = lines
    fields = entry.split(None, 6)
    assert fields[:6] == ["*/15", "*", "*", "*", "*", "root"]
    assert fields[6] == "[ -x /usr/local/bin/pymta ] && /usr/local/bin/pymta -q"
    config = ("spool_directory = SPOOL\nlog_file_path = SPOOL/log/%slog\n"
              "begin routers\nlocal:\n  driver = accept\n  transport = file\n"
              "begin transports\nfile:\n  driver = appendfile\n  file = DIR/mbox\n"
              "  user = nobody\n")
    d = PymtaDaemon(config, tmp_path)
    d.prepare()
    queued = d.run("-odq", "alice@localhost", input=b"Subject: hi\n\nqueued\n")
    assert queued.returncode == 0, queued.stderr
    assert len(d.queue()) == 1
    run = d.run("-q")                  # what cron starts
    assert run.returncode == 0, run.stderr
    assert d.queue() == []
    assert "queued" in (tmp_path / "mbox").read_text()


def _unit_command(key: str, options: str) -> list[str]:
    """The unit's ``key=`` command line with /etc/default/pymta's settings, OPTIONS
    replaced by ``options``, as systemd expands it (${VAR} in a word, $VAR as words)."""
    unit = (ETC / "systemd" / "pymta.service").read_text()
    [line] = [ln for ln in unit.splitlines() if ln.startswith(key + "=")]
    settings = dict(re.findall(r"^([A-Z]+)=(.*)$", (ETC / "default" / "pymta").read_text(),
                               re.M))
    settings["OPTIONS"] = options
    words: list[str] = []
    for word in line.split("=", 1)[1].split():
        if word.startswith("$") and not word.startswith("${"):
            words += settings[word[1:]].split()
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: settings[m.group(1)], word))
    return words


def test_the_units_command_lines_run(tmp_path):
    """ExecStartPre's check and ExecStart's daemon, as systemd runs them: the daemon says
    READY=1 to NOTIFY_SOCKET, takes a connection, and stops cleanly on SIGTERM."""
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True)
    options = f"-C {d.config_path} -DSPOOL={d.spool} -oX {d.port}"
    command = [sys.executable, "-c", "import sys; from pymta.cli.main import main; "
               "sys.exit(main())"]
    check = _unit_command("ExecStartPre", options)
    assert check[0] == "/usr/local/bin/pymta"
    out = subprocess.run(command + check[1:], capture_output=True, text=True, timeout=60,
                         env=pymta_env())
    assert out.returncode == 0 and "pymta version" in out.stdout, out.stderr
    start = _unit_command("ExecStart", options)
    assert start[1:3] == ["-bdf", "-q30m"]
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        proc = subprocess.Popen(command + start[1:], env=pymta_env({"NOTIFY_SOCKET": path}),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            assert sock.recv(100).decode() == f"READY=1\nMAINPID={proc.pid}"
            with socket.create_connection(("127.0.0.1", d.port), timeout=10) as c:
                assert c.recv(100).startswith(b"220 ")
            proc.send_signal(signal.SIGTERM)        # KillMode=mixed: the master only
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert "daemon started" in d.log() and "-q30m" in d.log()
