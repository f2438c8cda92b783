"""The spool both ways with a real Exim 4.96: a queue Exim wrote is listed and delivered
by pymta with the same configuration, and a queue pymta wrote is listed and delivered
by Exim -- including a recipient marked delivered, a frozen message and the split spool
layout (split_spool_directory), so an admin can migrate in either direction.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.support.daemon import PymtaDaemon, give_to_user
from tests.support.exim import EXIM, exim_or_skip

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
SPLIT
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
  user = OWNER
"""

MESSAGE = b"From: s@test.example\nSubject: SUBJECT\n\nline one\nline two\n"


def _setup(tmp_path: Path, split: bool) -> tuple[PymtaDaemon, Path]:
    exim_or_skip()
    text = CONFIG.replace("SPLIT", "split_spool_directory" if split else "")
    d = PymtaDaemon(text.replace("OWNER", "nobody"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    for path in (d.spool, d.spool / "log"):
        give_to_user(path, d.exim_user or "root")
    exim_conf = tmp_path / "exim.conf"
    exim_conf.write_text(
        f"exim_user = {d.exim_user or 'root'}\nkeep_environment =\n" +
        text.replace("SPOOL", str(d.spool)).replace("DIR", str(tmp_path))
        .replace("OWNER", "nobody"))
    exim_conf.chmod(0o644)
    return d, exim_conf


def _exim(conf: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXIM, "-C", str(conf), *args], input=data, capture_output=True,
                          timeout=60)


def _ids(listing: str) -> list[str]:
    return re.findall(r"\b(\w{6}-\w{6}-\w{2}) <", listing)


def _listing(text: str) -> str:
    """-bp output without the age column (the two commands run moments apart)."""
    return re.sub(r"(?m)^ *-?\d+[smhd] ", "", text)


@pytest.mark.parametrize("split", [False, True], ids=["flat", "split"])
def test_exim_queue_delivered_by_pymta(tmp_path, split):
    d, conf = _setup(tmp_path, split)
    for subject in ("first", "second", "third"):
        r = _exim(conf, "-odq", "-f", "s@test.example", "a@test.example", "b@test.example",
                  data=MESSAGE.replace(b"SUBJECT", subject.encode()))
        assert r.returncode == 0, r.stderr
    listing = _exim(conf, "-bp").stdout.decode()
    first, second, third = sorted(_ids(listing))
    if split:
        assert (d.spool / "input" / first[5] / f"{first}-H").exists()
    assert _exim(conf, "-Mmd", second, "a@test.example").returncode == 0
    assert _exim(conf, "-Mf", third).returncode == 0
    exim_listing = _listing(_exim(conf, "-bp").stdout.decode())
    assert _listing(d.run("-bp").stdout) == exim_listing
    assert d.run("-q").returncode == 0
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("Subject: first\n") == 2 and mbox.count("Subject: second\n") == 1
    assert "Subject: third" not in mbox                 # still frozen
    assert "line one\nline two\n" in mbox and "Received: from " in mbox
    log = d.log()
    assert f"{second} => b <b@test.example> R=r T=t" in log
    assert f"{second} => a <a@test.example>" not in log
    assert d.queue() == [third]
    assert "*** frozen ***" in d.run("-bp").stdout


@pytest.mark.parametrize("split", [False, True], ids=["flat", "split"])
def test_pymta_queue_delivered_by_exim(tmp_path, split):
    d, conf = _setup(tmp_path, split)
    for subject in ("first", "second", "third"):
        r = d.run("-odq", "-f", "s@test.example", "a@test.example", "b@test.example",
                  input=MESSAGE.replace(b"SUBJECT", subject.encode()))
        assert r.returncode == 0, r.stderr
    first, second, third = d.queue()
    if split:
        assert (d.spool / "input" / first[5] / f"{first}-H").exists()
    assert d.run("-Mmd", second, "a@test.example").returncode == 0
    assert d.run("-Mf", third).returncode == 0
    assert _listing(_exim(conf, "-bp").stdout.decode()) == _listing(d.run("-bp").stdout)
    r = _exim(conf, "-q")
    assert r.returncode == 0, r.stderr
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("Subject: first\n") == 2 and mbox.count("Subject: second\n") == 1
    assert "Subject: third" not in mbox
    assert "line one\nline two\n" in mbox
    exim_log = (d.spool / "log" / "mainlog").read_text()
    assert re.search(rf"{second} => b <b@test\.example> R=r T=t", exim_log)
    assert not re.search(rf"{second} => a <a@test\.example>", exim_log)
    assert _ids(_exim(conf, "-bp").stdout.decode()) == [third]


# --------------------------------------------------------------------- DSN fields

DSN_SESSION = (
    "EHLO client.test\r\n"
    "MAIL FROM:<s@test.example> RET=HDRS ENVID=QQ+2Bid\r\n"
    "RCPT TO:<u@test.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;U+2Bx@test.example\r\n"
    "RCPT TO:<v@test.example> NOTIFY=NEVER\r\n"
    "RCPT TO:<w@test.example>\r\n"
    "DATA\r\nSubject: dsn\r\nMessage-Id: <dsn1@client.test>\r\n\r\nthe body\r\n.\r\n"
    "QUIT\r\n")

# what Exim 4.96 writes for that dialogue (and pymta too)
DSN_SPOOL_LINES = ("-dsn_envid QQ+2Bid\n-dsn_ret 2\n",
                   "\n3\nu@test.example rfc822;U+2Bx@test.example 25,20  0,-1#3\n"
                   "v@test.example  0,2  0,-1#3\nw@test.example\n\n")


def _dsn_setup(tmp_path: Path) -> tuple[PymtaDaemon, Path]:
    d, conf = _setup(tmp_path, False)
    # both offer DSN to the client and only queue what they receive (an Exim run with
    # -C as root gives up root: its report must wait for the next -q to be delivered)
    for path, extra in ((d.config_path, "queue_only\n"), (conf, "queue_only\n")):
        text = path.read_text() if path.exists() else d.config_text
        path.write_text(text.replace(
            "primary_hostname = test.example\n",
            "primary_hostname = test.example\ndsn_advertise_hosts = 127.0.0.1 : 1.2.3.4\n"
            f"acl_smtp_rcpt = accept\n{extra}"))
    d.config_text = d.config_path.read_text()
    return d, conf


def _dsn_report(mbox: Path) -> str:
    """The one success report in the mbox (waited for: it is delivered after the
    message it reports on)."""
    def reports() -> list[str]:
        return [m for m in mbox.read_text().split("\nFrom ")
                if "Subject: Delivery Status Notification" in m]
    (report,) = wait_for(reports, 10) or [""]
    return report


def test_exim_dsn_fields_are_read_by_pymta(tmp_path):
    d, conf = _dsn_setup(tmp_path)
    r = _exim(conf, "-odq", "-bs", "-oMa", "1.2.3.4", data=DSN_SESSION.encode())
    assert b"250 OK id=" in r.stdout, r.stdout + r.stderr
    [msgid] = _ids(_exim(conf, "-bp").stdout.decode())
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert DSN_SPOOL_LINES[0] in header and DSN_SPOOL_LINES[1] in header
    assert _listing(d.run("-bp").stdout) == _listing(_exim(conf, "-bp").stdout.decode())
    assert d.run("-q").returncode == 0
    # pymta read u's NOTIFY=SUCCESS and ORCPT and the message's ENVID and RET
    report = _dsn_report(tmp_path / "mbox")
    mbox = (tmp_path / "mbox").read_text()
    assert mbox.count("Subject: dsn\n") == 4       # three copies and the report's headers
    assert '\n<u@test.example> (relayed via non "Remote SMTP" router)\n' in report
    assert "Original-Envelope-ID: QQ+id\n\nOriginal-Recipient: rfc822;U+x@test.example\n" \
        "Action: delivered\nFinal-Recipient: rfc822;u@test.example\n" in report
    # (as whole addresses: a Message-ID such as <E1xZS28-0004FZ-1v@test.example> ends
    # in the same letters)
    assert not re.search(r"(?<![\w.+-])[vw]@test\.example", report)
    assert d.queue() == []


def test_pymta_dsn_fields_are_read_by_exim(tmp_path):
    d, conf = _dsn_setup(tmp_path)
    d.start()
    try:
        with d.client() as c:
            c.banner()
            for line in DSN_SESSION.split("\r\n")[:5]:
                assert c.cmd(line)[0] == 250, line
            code, text = c.data(b"Subject: dsn\nMessage-Id: <dsn1@client.test>\n\nthe body\n")
            assert code == 250, text
    finally:
        d.stop()
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert DSN_SPOOL_LINES[0] in header and DSN_SPOOL_LINES[1] in header
    assert _listing(_exim(conf, "-bp").stdout.decode()) == _listing(d.run("-bp").stdout)
    for _ in range(2):                  # the message, then the report Exim made
        r = _exim(conf, "-q")
        assert r.returncode == 0, r.stderr
    report = _dsn_report(tmp_path / "mbox")
    # Exim read u's NOTIFY=SUCCESS and ORCPT and the message's ENVID (it writes them as
    # they were sent, not decoded) and RET=HDRS (headers only)
    assert '\n<u@test.example> (relayed via non "Remote SMTP" router)\n' in report
    assert "Original-Envelope-ID: QQ+2Bid\n\nOriginal-Recipient: rfc822;U+2Bx@test.example\n" \
        "Action: delivered\nFinal-Recipient: rfc822;u@test.example\n" in report
    # (as whole addresses: a Message-ID such as <E1xZS28-0004FZ-1v@test.example> ends
    # in the same letters)
    assert not re.search(r"(?<![\w.+-])[vw]@test\.example", report)
