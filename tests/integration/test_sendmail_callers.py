"""Real programs' ``sendmail`` command lines, run through pymta's ``sendmail`` entry point.

Each test runs the exact argv a well-known caller uses (Debian cron, logwatch, mdadm,
PHP's mail(), git send-email, mutt) as ``/usr/sbin/sendmail`` with the configuration from
``$PYMTA_CONFIG`` (so the argv is not changed by a ``-C``), lets the default background
delivery (-odb) write to a maildir, and checks the delivered message: envelope
(Return-path:, Envelope-to:) and From: as Exim 4.96 produces them.  When ``exim4`` is
installed, :func:`test_same_spool_header_as_exim` compares the -H files of both for the
same command lines.
"""
from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tempfile
from email.message import Message
from pathlib import Path

import pytest

from tests.support.daemon import REPO, give_to_user, pymta_env
from tests.support.wait import wait_until

# The router and transport deliver root, alice and bob of test.example to
# DIR/mail/<user> (maildir).  pymta, run as root, receives and delivers as nobody;
# exim4 -C gets exim_user = root so that it can use the same file as root.
CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {dir}/spool
log_file_path = {dir}/spool/log/%slog
exim_user = {user}
exim_group = {group}
domainlist local_domains = test.example
begin routers
local:
  driver = accept
  domains = +local_domains
  local_parts = root : alice : bob
  transport = maildir
begin transports
maildir:
  driver = appendfile
  maildir_format
  directory = {dir}/mail/$local_part_data
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
"""

#: ``sendmail`` as installed: pymta's main() called by the name "sendmail"
SENDMAIL = [sys.executable, "-c", "import sys; sys.argv[0] = '/usr/sbin/sendmail'; "
            "from pymta.cli.main import main; sys.exit(main())"]

# Debian cron (do_command.c) writes these headers; its MAILARGS are
# "%s -FCronDaemon -i -B8BITMIME -oem %s" with MAILCMD /usr/sbin/sendmail.
CRON_ARGV = ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]
CRON_BODY = "line one\n.\nd\u00e9j\u00e0 vu\n".encode()
CRON_MESSAGE = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts\n"
                b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
                b"Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\n" + CRON_BODY)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "spool" / "log").mkdir(parents=True)
    (tmp_path / "conf").write_text(CONFIG.format(dir=tmp_path, user="nobody", group="nogroup"))
    give_to_user(tmp_path, "nobody")
    return tmp_path


def sendmail(site: Path, argv: list[str], message: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(SENDMAIL + argv, input=message, capture_output=True, timeout=30,
                          env=pymta_env({"PYMTA_CONFIG": str(site / "conf")}), cwd=str(REPO))


def delivered(site: Path, user: str) -> tuple[Message, bytes]:
    """Wait for the one message in ``user``'s maildir; (parsed message, raw bytes)."""
    new = site / "mail" / user / "new"
    files = wait_until(lambda: new.is_dir() and sorted(new.iterdir()), timeout=15)
    assert len(files) == 1, files
    raw = files[0].read_bytes()
    return email.message_from_bytes(raw), raw


def submit_ok(site: Path, argv: list[str], message: bytes) -> None:
    proc = sendmail(site, argv, message)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""


def test_debian_cron(site):
    submit_ok(site, CRON_ARGV, CRON_MESSAGE)
    msg, raw = delivered(site, "root")
    assert msg["Return-path"] == "<root@test.example>"
    assert msg["Envelope-to"] == "root@test.example"
    # the caller's own From: is kept, its unqualified address qualified (as Exim does)
    assert msg["From"] == "root@test.example (Cron Daemon)"
    # -i: the lone dot is data; -B8BITMIME: the 8-bit body arrives unchanged
    assert raw.endswith(b"\n\n" + CRON_BODY)
    log = (site / "spool" / "log" / "mainlog").read_text()
    assert "<= root@test.example U=root P=local" in log and "B8BITMIME" not in log


def test_cron_full_name_goes_into_a_constructed_from(site):
    submit_ok(site, CRON_ARGV, b"Subject: Cron <root@host> date\n\nout\n")
    msg, _ = delivered(site, "root")
    assert msg["From"] == "CronDaemon <root@test.example>"
    assert msg["Return-path"] == "<root@test.example>"


@pytest.mark.parametrize("caller, message", [
    ("logwatch", b"To: root\nFrom: logwatch@test.example\n"
                 b"Subject: Logwatch for host (Linux)\n\n ### Logwatch 7.8 ###\n"),
    ("mdadm", b"From: mdadm monitoring <root>\nTo: root\n"
              b"Subject: Fail event on /dev/md0:host\n\n"
              b"This is an automatically generated mail message from mdadm\n"),
], ids=["logwatch", "mdadm"])
def test_recipients_from_headers(site, caller, message):
    submit_ok(site, ["-t"], message)
    msg, raw = delivered(site, "root")
    assert msg["Return-path"] == "<root@test.example>"
    assert msg["Envelope-to"] == "root@test.example"
    assert raw.endswith(message.split(b"\n\n", 1)[1])


def test_php_mail(site):
    # php.ini's default sendmail_path is "sendmail -t -i"; mail() adds no From:.
    submit_ok(site, ["-t", "-i"], b"To: alice@test.example\nSubject: from php\n"
                                  b"X-PHP-Originating-Script: 0:index.php\n\nhello\n.\nbye\n")
    msg, raw = delivered(site, "alice")
    assert msg["Return-path"] == "<root@test.example>"
    assert msg["From"] == "root <root@test.example>"
    assert raw.endswith(b"\n\nhello\n.\nbye\n")


GIT_PATCH = (b"From: A U Thor <author@example.org>\nTo: alice@test.example\n"
             b"Cc: bob@test.example\nSubject: [PATCH] fix\n\n---\n.\n")


def test_git_send_email(site):
    submit_ok(site, ["-i", "alice@test.example", "bob@test.example"], GIT_PATCH)
    for user in ("alice", "bob"):
        msg, raw = delivered(site, user)
        assert msg["Return-path"] == "<root@test.example>"
        assert msg["Envelope-to"] == f"{user}@test.example"
        assert msg["From"] == "A U Thor <author@example.org>"
        assert raw.endswith(b"\n\n---\n.\n")


def test_git_send_email_with_envelope_sender(site):
    submit_ok(site, ["-f", "author@example.org", "-i", "alice@test.example"], GIT_PATCH)
    msg, _ = delivered(site, "alice")
    assert msg["Return-path"] == "<author@example.org>"
    assert msg["From"] == "A U Thor <author@example.org>"


def test_mutt(site):
    # mutt's default $sendmail is "/usr/sbin/sendmail -oem -oi"; it ends options with --.
    submit_ok(site, ["-oem", "-oi", "--", "alice@test.example"],
              b"From: Me <root@test.example>\nTo: alice@test.example\nSubject: m\n\n.\n")
    msg, raw = delivered(site, "alice")
    assert msg["Return-path"] == "<root@test.example>" and msg["From"] == "Me <root@test.example>"
    assert raw.endswith(b"\n\n.\n")


def test_mutt_with_envelope_from(site):
    submit_ok(site, ["-oem", "-oi", "-B8BITMIME", "-f", "me@example.org", "--",
                     "alice@test.example", "bob@test.example"], b"Subject: m\n\nbody\n")
    for user in ("alice", "bob"):
        msg, _ = delivered(site, user)
        assert msg["Return-path"] == "<me@example.org>"
        assert msg["From"] == "me@example.org"        # Exim: no gecos name for a -f sender


def test_unknown_flag_is_refused_and_nothing_is_spooled(site):
    proc = sendmail(site, ["-V", "root"], b"Subject: x\n\nb\n")
    assert proc.returncode == 1
    assert proc.stderr == b"pymta abandoned: unknown, malformed, or incomplete option -V\n"
    assert not (site / "spool" / "input").exists() or not os.listdir(site / "spool" / "input")


# ---- the same command lines through exim4, compared on the spool -H file -------------

EXIM = shutil.which("exim4") or shutil.which("exim")

COMPARED = [
    CRON_ARGV,
    ["-FCronDaemon", "-B", "8BITMIME", "-oem", "-i", "root"],
    ["-f", "author@example.org", "-i", "alice@test.example", "bob@test.example"],
    ["-fbob@test.example", "-F", "Bob B.", "alice"],
    ["-f", "root@test.example", "alice"],
    ["-f", "<>", "-FNobody", "alice"],
    ["-oem", "-oi", "-B8BITMIME", "-f", "me@example.org", "--", "alice@test.example"],
    ["-h", "20", "-O", "DeliveryMode=b", "-X/dev/null", "-U", "-x", "-n", "-m", "-om", "-oo",
     "-Ac", "-Am", "-oB", "5", "-or5m", "-os", "1m", "-em", "-dropcr", "alice"],
    ["-G", "alice"],
]


def _spool_summary(spool: Path) -> tuple[str, list[str], list[str]]:
    """(sender line, recipients, headers other than Received/Message-Id/Date) of the one
    message in ``spool``."""
    (h,) = [p for p in (spool / "input").iterdir() if p.name.endswith("-H")]
    lines = h.read_bytes().decode().split("\n")
    count = next(i for i, line in enumerate(lines) if line.isdigit() and i > 3)
    blank = lines.index("", count)
    headers = [line[3:] for line in lines[blank + 1:] if line[:3].isdigit()
               and not line[5:].startswith(("Received:", "Message-Id:", "Date:"))]
    return lines[2], lines[count + 1:blank], headers


@pytest.mark.skipif(EXIM is None or os.getuid() != 0, reason="needs exim4, run as root")
@pytest.mark.parametrize("argv", COMPARED, ids=[" ".join(a) for a in COMPARED])
def test_same_spool_header_as_exim(argv):
    message = b"Subject: compare\n\nbody\n"
    # exim4 runs as its own user at times: a directory it can enter, removed afterwards.
    base = Path(tempfile.mkdtemp(prefix="pymta-exim-"))
    try:
        base.chmod(0o755)
        summaries = []
        for name, cmd in (("exim", [EXIM]), ("pymta", SENDMAIL)):
            d = base / name
            (d / "spool" / "log").mkdir(parents=True)
            user, group = ("root", "root") if name == "exim" else ("nobody", "nogroup")
            (d / "conf").write_text(CONFIG.format(dir=d, user=user, group=group))
            give_to_user(d, user)
            proc = subprocess.run(cmd + ["-C", str(d / "conf"), "-odq"] + argv, input=message,
                                  capture_output=True, timeout=30, env=pymta_env(),
                                  cwd=str(REPO))
            assert proc.returncode == 0, (name, proc.stderr)
            summaries.append(_spool_summary(d / "spool"))
        assert summaries[1] == summaries[0]
    finally:
        shutil.rmtree(base, ignore_errors=True)
