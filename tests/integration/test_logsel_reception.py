"""log_selector items about reception and SMTP sessions, against Exim 4.96's lines.

The same dialogues (tests/support/logsel.py) were played to a real Exim 4.96 daemon and
its masked log lines recorded in tests/data/logsel/reception.log; the real pymta
daemon must write the same lines, field by field and in the same order.  Where exim4
can run here, the recording itself is checked against a live Exim.
"""
from __future__ import annotations

import os
import pwd
import re

from tests.support.daemon import PymtaDaemon
from tests.support.exim import EximDaemon, exim_or_skip
from tests.support.logsel import (
    EXPECTED,
    EXPECTED_MAILAUTH,
    EXPECTED_REJECT,
    config,
    mailauth_shapes,
    reject_entry,
    run_data_rejection,
    run_mailauth,
    run_sessions,
    shapes,
    wait_for_lines,
)
from tests.support.smtp import SmtpTestClient


def _pymta(tmp_path, selector: str | None = None) -> PymtaDaemon:
    text = config("SPOOL", "DIR") if selector is None else \
        config("SPOOL", "DIR", selector=selector)
    return PymtaDaemon(text, tmp_path).start()


def _play(log, port: int) -> list[str]:
    wait_for_lines(log, r"no MAIL in", 1)            # the start-up probe's session
    start = len(log())
    run_sessions(port, lambda rx, n: wait_for_lines(lambda: log()[start:], rx, n))
    return shapes(log(), start)


def test_pymta_writes_exims_reception_lines(tmp_path):
    d = _pymta(tmp_path)
    try:
        got = _play(d.log, d.port)
    finally:
        d.stop()
    want = EXPECTED.read_text().splitlines()
    for g, w in zip(got, want):
        assert g.split() == w.split(), f"\npymta: {g}\nexim:  {w}"
    assert got == want


def test_the_recording_is_what_exim_writes(tmp_path):
    exim_or_skip()
    d = EximDaemon(config("@SPOOL@", "@DIR@", user="  user = Debian-exim\n"), tmp_path)
    with d:
        got = _play(d.log, d.port)
        run_data_rejection(d.port)
        wait_for_lines(lambda: d.log("reject"), r"rejected after DATA", 1)
        entry = reject_entry(d.log("reject"))
        start = len(d.log())
        run_mailauth(d.port, lambda rx, n: wait_for_lines(lambda: d.log()[start:], rx, n))
        mailauth = mailauth_shapes(d.log(), start)
    assert mailauth == EXPECTED_MAILAUTH.read_text().splitlines()
    assert got == EXPECTED.read_text().splitlines()
    assert entry == EXPECTED_REJECT.read_text().splitlines()


def test_items_off_by_default_write_nothing(tmp_path):
    # Exim's defaults: none of the items under test but connection_reject
    d = _pymta(tmp_path, selector="")
    try:
        lines = _default_lines(d)
    finally:
        d.stop()
    arrival = [ln for ln in lines if " <= " in ln]
    assert len(arrival) == 3 and all(
        re.search(r" P=esmtp (K )?S=SIZE( id=m\d@outside\.example)?$", ln) for ln in arrival), \
        arrival
    assert not [ln for ln in lines if "SMTP connection" in ln or "no MAIL" in ln
                or "incomplete" in ln]
    assert lines.count('H=[127.0.0.2] rejected connection in "connect" ACL') == 1
    # lost_incoming_connection: only the session that lost its MAIL transaction
    assert [ln for ln in lines if "unexpected disconnection" in ln] == [
        "unexpected disconnection while reading SMTP command from (client.test) [127.0.0.1] "
        "D=SECONDS"]
    assert 'rejected connection in "connect" ACL' in d.log("reject")


def _default_lines(d: PymtaDaemon) -> list[str]:
    # without smtp_no_mail there is no line to wait for: wait for the ACL line instead
    def wait(rx: str, n: int) -> None:
        if re.search(r"no MAIL|closed by QUIT|incomplete|lost D=", rx):
            return
        wait_for_lines(d.log, rx, n)
    start = len(d.log())
    run_sessions(d.port, wait)
    return shapes(d.log(), start)


def test_connection_reject_off_keeps_only_exims_copies(tmp_path):
    # -connection_reject: the connect ACL's line stays in mainlog only; a refusal by
    # host_reject_connection goes to rejectlog only (as Exim 4.96 does)
    text = config("SPOOL", "DIR", selector="-connection_reject").replace(
        "acl_smtp_connect", "host_reject_connection = 127.0.0.3\nacl_smtp_connect")
    d = PymtaDaemon(text, tmp_path).start()
    try:
        with SmtpTestClient(d.port, source="127.0.0.2") as c:
            assert c.banner()[0] == 550
            c.close()
        wait_for_lines(d.log, r"rejected connection", 1)
        with SmtpTestClient(d.port, source="127.0.0.3") as c:
            assert c.banner()[0] == 554
            c.close()
        wait_for_lines(lambda: d.log("reject"), r"host_reject_connection", 1)
    finally:
        d.stop()
    assert "host_reject_connection" not in d.log()
    assert 'rejected connection in "connect" ACL' not in d.log("reject")


def test_msg_id_created_on_local_submission(tmp_path):
    d = PymtaDaemon(config("SPOOL", "DIR", selector="+msg_id_created"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    proc = d.run("-odq", "-f", "s@outside.example", "alice@test.example",
                 input=b"Subject: x\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    line = [ln for ln in d.log().splitlines() if " <= " in ln][0]
    # Exim: "<= s@outside.example U=root P=local S=294 id*=E<id>@mx.test.example"
    msgid = line.split()[2]
    assert re.search(r" P=local S=\d+ id\*=E" + re.escape(msgid) + r"@mx\.test\.example$",
                     line), line


def test_rejectlog_entry_after_data_has_exims_envelope_and_headers(tmp_path):
    d = _pymta(tmp_path)
    try:
        run_data_rejection(d.port)
        wait_for_lines(lambda: d.log("reject"), r"rejected after DATA", 1)
    finally:
        d.stop()
    got = reject_entry(d.log("reject"))
    want = EXPECTED_REJECT.read_text().splitlines()
    for g, w in zip(got, want):
        assert g == w, f"\npymta: {g!r}\nexim:  {w!r}\nall:\n" + "\n".join(got)
    assert got == want
    # the mainlog has the one line
    assert "Envelope-from" not in d.log()


def test_smtp_mailauth_adds_the_auth_sender_to_a(tmp_path):
    d = _pymta(tmp_path)
    try:
        wait_for_lines(d.log, r"no MAIL in", 1)
        start = len(d.log())
        run_mailauth(d.port, lambda rx, n: wait_for_lines(lambda: d.log()[start:], rx, n))
        got = mailauth_shapes(d.log(), start)
    finally:
        d.stop()
    assert got == EXPECTED_MAILAUTH.read_text().splitlines()


def test_arguments_line_as_exim_writes_it(tmp_path):
    # Exim 4.96: 'cwd=/dir 10 args: exim4 -C /conf -odq -f s@b.test ""a b"@x.test"
    # c\d@x.test "t<TAB>x@x.test" \303\251@x.test'; none for -bt (a test mode)
    d = PymtaDaemon(config("SPOOL", "DIR", selector="+arguments"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    args = ["-odq", "-f", "s@outside.example", '"a b"@test.example', "c\\d@test.example",
            "t\tx@test.example", "\u00e9@test.example"]
    proc = d.run(*args, input=b"Subject: x\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    assert d.run("-bt", "alice@test.example").returncode in (0, 2)
    lines = [ln for ln in d.log().splitlines() if " args: " in ln]
    assert len(lines) == 1, d.log()
    m = re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d cwd=(\S+) (\d+) args: (.*)", lines[0])
    assert m, lines[0]
    count = int(m.group(2))
    shown = m.group(3)
    assert shown.endswith(' -odq -f s@outside.example ""a b"@test.example" c\\d@test.example '
                          '"t\tx@test.example" \\303\\251@test.example'), shown
    # the program name, -C conf, the macros, then the arguments above
    assert count == len(shown.split(" ")) - 1      # "a b" is one argument


def test_bs_session_lines_name_the_calling_user(tmp_path):
    # Exim 4.96 under -bs: "SMTP connection from root", "... closed by QUIT",
    # "no MAIL in SMTP connection from root D=0s C=EHLO,NOOP,QUIT"
    d = PymtaDaemon(config("SPOOL", "DIR"), tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    proc = d.run("-bs", input=b"EHLO x\r\nNOOP\r\nQUIT\r\n")
    assert proc.returncode == 0, proc.stderr
    login = pwd.getpwuid(os.getuid()).pw_name
    assert shapes(d.log()) == [f"SMTP connection from {login}",
                               f"SMTP connection from {login} closed by QUIT",
                               f"no MAIL in SMTP connection from {login} D=SECONDS "
                               "C=EHLO,NOOP,QUIT"]


def test_prdr_refusals_stay_in_the_for_list_and_out_of_the_rejectlog(tmp_path):
    # Exim 4.96: "PRDR bob@test.example no bob" in the mainlog, nothing in the
    # rejectlog, and the arrival line still lists every recipient received:
    # "<= a@outside.example H=(client.test) [127.0.0.1] P=esmtp L.- PRDR S=198 M8S=0
    # RT=0s T="p" from <a@outside.example> for alice@test.example bob@test.example"
    text = config("SPOOL", "DIR").replace(
        "acl_smtp_data = acl_data",
        "acl_smtp_data = acl_data\nprdr_enable = true\nacl_smtp_data_prdr = acl_prdr").replace(
        "acl_data:", "acl_prdr:\n  deny    local_parts = bob\n          message = no bob\n"
                     "  accept\n\nacl_data:", 1)
    d = PymtaDaemon(text, tmp_path).start()
    try:
        with SmtpTestClient(d.port) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@outside.example> PRDR")[0] == 250
            assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
            assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send_raw(b"Subject: p\r\n\r\nbody\r\n.\r\n")
            assert [c.read_reply()[0] for _ in range(4)] == [353, 250, 550, 250]
        wait_for_lines(d.log, r" <= a@outside", 1)
    finally:
        d.stop()
    arrival = [ln for ln in shapes(d.log()) if " <= " in ln]
    assert arrival == ['MSGID <= a@outside.example H=(client.test) [127.0.0.1] P=esmtp L.- PRDR '
                       'S=SIZE M8S=0 RT=SECONDS T="p" from <a@outside.example> '
                       'for alice@test.example bob@test.example'], d.log()
    assert "PRDR bob@test.example no bob" in d.log()
    assert "bob" not in d.log("reject")
