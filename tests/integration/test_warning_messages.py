"""Delay warnings (delay_warning, delay_warning_condition, warn_message_file) and
errors_reply_to, through `pymta -odi` and queue runs.  The warning's text is the one
Exim 4.96 wrote for the same configuration and message (exim4, Debian)."""
from __future__ import annotations

import re
import time

from tests.support.daemon import PymtaDaemon

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
delay_warning = 2s:12s
EXTRA
begin routers
d:
  driver = redirect
  local_parts = slow
  data = :defer: not now
  allow_defer
r:
  driver = accept
  local_parts = s
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
begin retry
* * F,1h,1s
"""

EXIM_TEXT = """\
This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 0 minutes on the queue on test.example.

The message identifier is:     {id}
The subject of the message is: hello
The date of the message is:    {date}

The address to which the message has not yet been delivered is:

  slow@test.example
    Delay reason: not now

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.
"""


def _queue_one(d: PymtaDaemon, headers: str = "", sender: str = "s@test.example") -> str:
    d.submit_and_deliver(sender, "slow@test.example",
                         f"From: s@test.example\nSubject: hello\nMessage-Id: <m1@x>\n"
                         f"Date: Fri, 04 Dec 2026 06:26:17 +0000\n{headers}\nbody\n"
                         .encode())
    return d.queue()[-1]


def _warnings(d: PymtaDaemon) -> list[str]:
    path = d.dir / "mbox-s"
    text = path.read_text() if path.exists() else ""
    return [m for m in text.split("\nFrom MAILER-DAEMON ") if "Subject: Warning:" in m]


def test_warnings_as_exim_writes_them_and_their_schedule(tmp_path):
    d = PymtaDaemon(CONFIG.replace("EXTRA", "errors_reply_to = postmaster@test.example"),
                    tmp_path)
    msgid = _queue_one(d)
    # counted from after the message is on the queue, so that a slow submission cannot
    # make the wait too short (the test's clock may differ from pymta's)
    started = time.monotonic()
    assert _warnings(d) == []                       # not yet two seconds old
    time.sleep(max(0.0, started + 2.3 - time.monotonic()))
    d.run("-qf")
    (warning,) = _warnings(d)
    head, _, body = warning.partition("\n\n")
    for line in ("Auto-Submitted: auto-replied", "From: Mail Delivery System "
                 "<Mailer-Daemon@test.example>", "To: s@test.example",
                 "Reply-To: postmaster@test.example", "References: <m1@x>",
                 f"Subject: Warning: message {msgid} delayed 0 minutes"):
        assert f"\n{line}\n" in head + "\n", line
    text = body.split("charset=us-ascii\n\n", 1)[1]
    assert text.startswith(EXIM_TEXT.format(id=msgid,
                                            date="Fri, 04 Dec 2026 06:26:17 +0000"))
    assert "Action: delayed\nFinal-Recipient: rfc822;slow@test.example\nStatus: 4.0.0\n" \
        in warning
    assert "Content-type: text/rfc822-headers\n\nReturn-path: <s@test.example>\n" in warning
    assert re.search(rf"\w{{6}}-\w{{6}}-\w{{2}} <= <> R={msgid} ", d.log())
    header = (d.spool / "input" / f"{msgid}-H").read_text().split("\n")
    assert header[3].endswith(" 1")                 # the warning count in -H
    d.run("-qf")
    # the next is due at 12s (far enough for a slow machine to run -qf twice before)
    assert len(_warnings(d)) == 1
    time.sleep(max(0.0, started + 12.3 - time.monotonic()))
    d.run("-qf")
    assert len(_warnings(d)) == 2


def test_no_warning_for_bulk_mail_or_bounces(tmp_path):
    d = PymtaDaemon(CONFIG.replace("EXTRA", ""), tmp_path)
    _queue_one(d, "Precedence: bulk\n")
    _queue_one(d, sender="")
    started = time.monotonic()
    time.sleep(max(0.0, started + 2.3 - time.monotonic()))
    d.run("-qf")
    assert _warnings(d) == []


def test_warn_message_file(tmp_path):
    (tmp_path / "warn.txt").write_text(
        "Subject: Still waiting: $message_exim_id ($warn_message_delay)\n****\n"
        "Your message to us is late.\n****\nSorry.\n")
    d = PymtaDaemon(CONFIG.replace("EXTRA", "warn_message_file = DIR/warn.txt"), tmp_path)
    msgid = _queue_one(d)
    started = time.monotonic()
    time.sleep(max(0.0, started + 2.3 - time.monotonic()))
    d.run("-qf")
    warning = (tmp_path / "mbox-s").read_text()
    assert f"\nSubject: Still waiting: {msgid} (0 minutes)\n" in warning
    assert ("charset=us-ascii\n\nYour message to us is late.\n  slow@test.example\n"
            "    Delay reason: not now\n\nSorry.\n") in warning


BOUNCE_CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
EXTRA
begin routers
f:
  driver = redirect
  local_parts = bad
  data = :fail: no such user
  allow_fail
  ERRORS_TO
r:
  driver = accept
  local_parts = s : admin
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
"""


def _bounce(tmp_path, extra: str = "", errors_to: str = "", to: str = "s") -> str:
    d = PymtaDaemon(BOUNCE_CONFIG.replace("EXTRA", extra).replace("ERRORS_TO", errors_to),
                    tmp_path)
    d.submit_and_deliver("s@test.example", "bad@test.example",
                         b"From: s@test.example\nSubject: hello\n\nbody\n")
    return (tmp_path / f"mbox-{to}").read_text()


def test_bounce_message_text_and_errors_to_wording_as_exim(tmp_path):
    text = _bounce(tmp_path / "a", "bounce_message_text = Please contact postmaster.")
    assert "\nSubject: Mail delivery failed: returning message to sender\n" in text
    assert ("charset=us-ascii\n\nThis message was created automatically by mail delivery "
            "software.\nPlease contact postmaster.\nA message that you sent could not be "
            "delivered to one or more of its\nrecipients. This is a permanent error. The "
            "following address(es) failed:\n\n  bad@test.example\n    no such user\n") in text
    text = _bounce(tmp_path / "b", errors_to="errors_to = admin@test.example", to="admin")
    assert "\nSubject: Mail delivery failed\n" in text and "\nTo: admin@test.example\n" in text
    assert ("software.\n\nA message sent by\n\n  <s@test.example>\n\ncould not be delivered "
            "to one or more of its recipients. The following\naddress(es) failed:\n\n"
            "  bad@test.example\n    no such user\n") in text


def test_bounce_message_file(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bounce.txt").write_text(
        "Subject: Undeliverable (to $bounce_recipient, limit $bounce_return_size_limit)\n"
        "****\nWe could not deliver your message.\n****\nOutput:\n****\n****\n")
    text = _bounce(tmp_path / "b", "bounce_message_file = DIR/bounce.txt\n"
                   "errors_reply_to = postmaster@test.example")
    assert "\nSubject: Undeliverable (to s@test.example, limit 102400)\n" in text
    assert "\nReply-To: postmaster@test.example\n" in text
    assert ("charset=us-ascii\n\nWe could not deliver your message.\n\n  bad@test.example\n"
            "    no such user\n") in text


FREEZE_CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
freeze_tell = admin@test.example
auto_thaw = 5s
system_filter = DIR/sysf
begin routers
r:
  driver = accept
  local_parts = s : admin
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
"""


def test_freeze_tell_and_auto_thaw_as_exim(tmp_path):
    (tmp_path / "sysf").write_text(
        '# Exim filter\nif $h_subject: contains "hold" then freeze "held" endif\n')
    d = PymtaDaemon(FREEZE_CONFIG, tmp_path)
    d.submit_and_deliver("s@test.example", "s@test.example",
                         b"From: s@test.example\nSubject: hold me\nMessage-Id: <h@x>\n\nb\n")
    started = time.monotonic()      # frozen by now (the test's clock may differ from pymta's)
    msgid = d.queue()[0]
    notice = (tmp_path / "mbox-admin").read_text()
    assert "\nSubject: Message frozen\n" in notice and "\nReferences: <h@x>\n" in notice
    assert notice.split("\n\n", 1)[1].startswith(
        f"Message {msgid} has been frozen by the system filter.\nheld.\n"
        "The sender is <s@test.example>.\n\n"
        "The following address(es) have yet to be delivered:\n  s@test.example\n")
    d.run("-q")
    assert "Unfrozen by auto-thaw" not in d.log()       # not frozen for 5s yet
    time.sleep(max(0.0, started + 5.3 - time.monotonic()))
    d.run("-q")
    lines = [ln.split(f"{msgid} ", 1)[1] for ln in d.log().splitlines() if f" {msgid} " in ln]
    assert lines[-2:] == ["Unfrozen by auto-thaw", "Frozen by the system filter: held"]
    assert (tmp_path / "mbox-admin").read_text().count("Subject: Message frozen") == 2
