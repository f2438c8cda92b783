"""What happens to locally delivered messages and their bounces when local deliveries
go wrong, compared with Exim 4.96 (Debian's exim4, run with -odi on the same
configuration and message; its log lines are quoted in each test)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from tests.support.daemon import PymtaDaemon

SENDER = "s@test.example"

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  local_parts = u : s
  transport = t
begin transports
t:
  driver = pipe
  {user}
  {transport}
"""


def _mta(tmp_path: Path, transport: str) -> PymtaDaemon:
    user = "user = nobody" if os.geteuid() == 0 else ""
    d = PymtaDaemon(CONFIG.format(user=user, transport=transport), tmp_path / "mta")
    d.prepare()
    return d


def _log(d: PymtaDaemon) -> list[str]:
    """The main log without timestamps and message ids."""
    return [re.sub(r"^\w{6}-\w{6}-\w{2} ", "", line.split(" ", 2)[2])
            for line in d.log().splitlines()]


def test_a_bounce_whose_delivery_times_out_is_discarded_not_frozen(tmp_path):
    """With no retry rules a pipe's temporary failure times out at once.  The bounce
    to the sender defers the same way; Exim 4.96 then discards it:
        == s@test.example R=r T=t defer (0): Child process of t transport returned 75 ...
        ** s@test.example: retry timeout exceeded
        s@test.example: error ignored
        Completed
    (it freezes a bounce only for a permanent failure)."""
    d = _mta(tmp_path, 'command = /bin/sh -c "exit 75"')
    d.submit_and_deliver(SENDER, "u@test.example", b"Subject: t\n\nbody\n")
    lines = _log(d)
    assert "** s@test.example: retry timeout exceeded" in lines, lines
    assert lines[-2:] == ["s@test.example: error ignored", "Completed"], lines
    assert not any(line.startswith("Frozen") for line in lines), lines
    assert d.queue() == []


def test_a_command_that_does_not_expand_waits_on_the_queue(tmp_path):
    """A pipe command that fails to expand is the configuration's fault: Exim 4.96
    defers the address (to the main and panic logs) with no retry hint, so it is not
    timed out and bounced even with no retry rules:
        == u@test.example R=r T=t defer (0): Expansion of "kill -9 $$" from command
           "/bin/sh -c 'kill -9 $$'" in t transport failed: $ not followed by letter,
           digit, or {
    and nothing more."""
    d = _mta(tmp_path, "command = /bin/sh -c 'kill -9 $$'")
    d.submit_and_deliver(SENDER, "u@test.example", b"Subject: t\n\nbody\n")
    deferral = ("== u@test.example R=r T=t defer (0): Expansion of \"kill -9 $$\" from "
                "command \"/bin/sh -c 'kill -9 $$'\" in t transport failed: $ not followed "
                "by letter, digit, or {")
    lines = _log(d)
    assert lines[1:] == [deferral], lines
    assert deferral in d.log("panic")
    assert len(d.queue()) == 1


def _bounce_reasons(d: PymtaDaemon) -> str:
    """The bounce's report for u@test.example: its lines up to the next part."""
    [bounce] = [p.read_text() for p in (d.spool / "input").glob("*-D")
                if "u@test.example" in p.read_text()]
    start = bounce.index("  u@test.example")
    end = re.compile(r"\n--\d+-eximdsn-").search(bounce, start)
    assert end is not None
    return bounce[start:end.start()]


def test_the_bounce_names_no_details_of_a_failed_command(tmp_path):
    """Exim 4.96's bounce for a pipe delivery says "local delivery failed" whatever
    went wrong after the command started (here a timeout), also above the output that
    return_output sends back; a command that could not be set up (a tainted argument)
    gets no reason at all.  The details are only in the log."""
    d = _mta(tmp_path, 'command = /bin/sh -c "echo said something; sleep 5"\n'
                       '  timeout = 1s\n  return_output')
    d.submit_and_deliver(SENDER, "u@test.example", b"Subject: t\n\nbody\n")
    assert _bounce_reasons(d) == (
        "  u@test.example\n    local delivery failed\n\n"
        "The following text was generated during the delivery attempt:\n\n"
        "------ u@test.example ------\n\nsaid something\n"), _log(d)
    d = _mta(tmp_path / "taint", "command = /bin/echo $local_part")
    d.submit_and_deliver(SENDER, "u@test.example", b"Subject: t\n\nbody\n")
    assert _bounce_reasons(d) == "  u@test.example\n", _log(d)


def _frozen_msglog(d: PymtaDaemon) -> list[str]:
    """The message log of the (frozen) bounce, without time stamps."""
    [bounce] = [p for p in (d.spool / "input").glob("*-H") if "\n<>\n" in p.read_text()]
    msgid = bounce.name[:-2]
    [path] = list(d.spool.glob(f"msglog/**/{msgid}"))
    return [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", line)
            for line in path.read_text().splitlines()]


def test_a_frozen_bounce_s_message_log_as_exim_writes_it(tmp_path):
    """Exim 4.96's message log has a failure without the "** " of the main log
    ("routing failed for" in front when no router took the address) and the freezing
    as "*** Frozen (...)" with no time stamp; the retry timeout line is main log only."""
    d = _mta(tmp_path, 'command = /bin/sh -c "exit 3"')
    d.submit_and_deliver(SENDER, "u@test.example", b"Subject: t\n\nbody\n")
    assert _frozen_msglog(d)[1:] == [
        "s@test.example R=r T=t: Child process of t transport returned 3 from command: "
        "/bin/sh",
        "*** Frozen (delivery error message)"]
    d = _mta(tmp_path / "unrouteable", 'command = /bin/sh -c "exit 3"')
    d.submit_and_deliver("x@nowhere.example", "u@test.example", b"Subject: t\n\nbody\n")
    assert _frozen_msglog(d)[1:] == [
        "routing failed for x@nowhere.example: Unrouteable address",
        "*** Frozen (delivery error message)"]


def test_a_bounce_is_marked_localerror_in_its_header_file(tmp_path):
    """exim4 4.96 writes "-localerror" in the -H file of a message made while
    delivering another (its child process gets -E): here the frozen bounce."""
    d = _mta(tmp_path, 'command = /bin/sh -c "exit 3"')
    d.submit_and_deliver(SENDER, "u@test.example", b"Subject: t\n\nbody\n")
    [header] = list((d.spool / "input").glob("*-H"))
    text = header.read_text()
    assert "\n<>\n" in text and "\n-localerror\n" in text, text
