"""One message model from the SMTP edge to the spool (pymta/message/envelope.py,
pymta/message/receive.py, pymta/smtp/assemble.py).

The data is parsed once (split_message); the DATA ACL sees the headers the spool gets,
our own Received: header and the local fixups included, as in Exim 4.96 (checked with
``exim4 -bh`` and an ACL that logs $h_received: and $message_headers: the live
comparison runs when exim4 is installed); headers added before DATA are visible in the
DATA ACL, its own additions and removals are not but reach the spool.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pymta.dsn import NOTIFY_NEVER
from pymta.message.envelope import Envelope, RecipientParams
from pymta.message.headers import split_message
from pymta.message.receive import apply_data_acl, prepare_message
from pymta.spool.files import read_header
from tests.support.daemon import run_pymta

CONF = """\
primary_hostname = test.example
spool_directory = {spool}
exim_user = root
exim_group = root
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
begin acl
acl_rcpt:
  accept add_header = X-Rcpt: $local_part
         {control}
acl_data:
  warn log_message = LATE=[$h_x-late:] REMOVED=[$h_x-gone:] NH=[$message_headers]
  accept add_header = X-Data: yes
         remove_header = X-Gone
"""
INPUT = (b"HELO x.y\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n"
         b"Subject: hi\r\nX-Gone: 1\r\nBad line: x\r\nX-Late: y\r\n\r\nbody\r\n.\r\nQUIT\r\n")
_ID = re.compile(r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b")
_DATE = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def _config(tmp_path, control="control = submission/domain=test.example"):
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    path = tmp_path / "test.conf"
    path.write_text(CONF.format(spool=spool, control=control))
    return path


def _data_acl_view(stderr: str) -> str:
    """The DATA ACL's warn line, newlines as Exim's log shows them (\\n), ids, dates
    and the product name normalised."""
    m = re.search(r"Warning: (LATE=.*?\])\n(?:LOG: |>>> |\Z)", stderr.replace("\\n", "\n"),
                  re.S)
    assert m, stderr
    text = _ID.sub("<id>", _DATE.sub("<date>", m.group(1)))
    return re.sub(r"\((Exim 4\.96|pymta [\d.]+)\)", "(<version>)", text)


def test_data_acl_sees_received_and_fixups_but_not_body_lines(tmp_path):
    proc = run_pymta(["-bh", "10.0.0.1"], _config(tmp_path), input=INPUT)
    view = _data_acl_view(proc.stderr)
    # "Bad line: x" is not a header (a space in the name): the body starts there, so
    # X-Late is body text.  X-Gone is removed by the DATA ACL, but only afterwards.
    assert view == (
        "LATE=[] REMOVED=[1] NH=[Received: from [10.0.0.1] (helo=x.y)\n"
        "\tby test.example with smtp (<version>)\n\t(envelope-from <a@b.c>)\n"
        "\tid <id>\n\tfor d@e.f;\n\t<date>\n"
        "Subject: hi\nX-Gone: 1\nMessage-Id: <E<id>@test.example>\nFrom: a@b.c\n"
        "Date: <date>\nX-Rcpt: d]")


@pytest.mark.skipif(shutil.which("exim4") is None, reason="exim4 (the oracle) not installed")
def test_data_acl_headers_match_exim(tmp_path):
    conf = _config(tmp_path)
    exim = subprocess.run(["exim4", "-C", str(conf), "-bh", "10.0.0.1"], input=INPUT,
                          capture_output=True, timeout=30)
    ours = run_pymta(["-bh", "10.0.0.1"], conf, input=INPUT)
    assert _data_acl_view(ours.stderr) == _data_acl_view(exim.stderr.decode())


def test_spool_gets_exactly_the_data_acl_headers_plus_its_changes(tmp_path):
    from pymta.config import load_config
    conf = _config(tmp_path, control="")
    cfg = load_config(str(conf))
    env = Envelope(sender="a@b.c", recipients=[], host_address="10.0.0.1", host_port=1,
                   helo_name="x.y", msgid="1abcde-000001-00",
                   extra_headers=["X-Rcpt: d"])
    env.add_recipient("d@e.f", {"NOTIFY": "NEVER", "ORCPT": "rfc822;d@e.f"})
    data = b"Subject: hi\nX-Gone: 1\n\nbody\n"
    prepared = prepare_message(cfg, env, data)
    seen = prepared.visible_headers()
    assert [h.split(":")[0] for h in seen] == ["Received", "Subject", "X-Gone", "X-Rcpt"]
    size_before = prepared.size
    apply_data_acl(prepared, env, ["X-Data: yes"], ["X-Gone"])
    spool = prepared.spool
    assert [(h.flag, h.text.split(":")[0]) for h in spool.headers] == [
        ("P", "Received"), (" ", "Subject"), ("*", "X-Gone"), (" ", "X-Rcpt"),
        (" ", "X-Data")]
    # Exim counts live headers only: X-Gone no longer counts, X-Data does.
    assert prepared.size == size_before + len("X-Data: yes\n") - len("X-Gone: 1\n")
    assert env.extra_headers == ["X-Rcpt: d", "X-Data: yes"]
    assert env.recipient_params == [RecipientParams(NOTIFY_NEVER, "rfc822;d@e.f")]
    # The body offset is the parser's: the spool writer writes from there.
    assert data[prepared.body_start:] == b"body\n"


def test_session_spools_what_the_data_acl_saw(tmp_path):
    """Over SMTP (run_session on a socketpair): the -H file holds the headers the DATA
    ACL saw, with its own add/remove applied."""
    from tests.unit.test_session import Client, make_config, spooled
    acls = ("log_headers:\n  warn log_message = NH=[$message_headers]\n"
            "  accept add_header = X-Data: yes\n         remove_header = X-Gone\n")
    cfg = make_config(tmp_path, acls=acls)
    cfg.main.set("acl_smtp_data", "log_headers")
    c = Client(cfg)
    c.read_reply()
    c.cmd(b"EHLO client.example\r\n")
    c.cmd(b"MAIL FROM:<s@x.example>\r\n")
    c.cmd(b"RCPT TO:<joe@a.example>\r\n")
    c.cmd(b"DATA\r\n")
    reply = c.cmd(b"Subject: s\r\nX-Gone: 1\r\nBad line: x\r\n\r\nbody\r\n.\r\n")
    assert reply[0].startswith("250 OK id=")
    c.cmd(b"QUIT\r\n")
    c.close()
    msgid = reply[0].split("id=")[1]
    logged = [t for _, t in c.log.lines if "NH=[" in t][0]
    # a warn log_message is written as Exim's string_printing writes it (\n for a newline)
    seen = logged.split("NH=[", 1)[1].rstrip("]").replace("\\n", "\n")
    spool_dir = str(cfg.main.spool_directory)
    assert spooled(cfg) == [msgid + "-H"]
    headers = read_header(spool_dir, msgid).headers
    live_before_acl = "".join(h.text for h in headers if h.text.split(":")[0] != "X-Data")
    assert seen + "\n" == live_before_acl
    assert seen.startswith("Received: from ") and "Bad line" not in seen
    assert [h.flag for h in headers if h.text.startswith("X-Gone")] == ["*"]
    assert headers[-1].text == "X-Data: yes\n"


def test_split_message_is_the_one_header_parser():
    """The rules the DATA ACL and the spool now share (before, the DATA ACL took any
    line with a colon as a header)."""
    parsed = split_message(b"A: 1\n  more\nB c: 2\nD: 3\n\nbody")
    assert [h.text for h in parsed.headers] == ["A: 1\n  more\n"]
    assert parsed.body_start == len(b"A: 1\n  more\n")
    parsed = split_message(b"A: 1\nB:2\n\nbody\n")
    assert [h.text for h in parsed.headers] == ["A: 1\n", "B:2\n"]
    assert parsed.body_start == len(b"A: 1\nB:2\n\n")


def test_white_space_lines_that_end_a_header_are_dropped():
    """As exim4 4.96 spools them (checked with -bm): a continuation line of nothing but
    white space is dropped when it ends a header, kept inside one."""
    parsed = split_message(b"Subject: x\n \t \nTo: z\n\nbody\n")
    assert [h.text for h in parsed.headers] == ["Subject: x\n", "To: z\n"]
    assert parsed.dropped == 4 and not parsed.blank_line_missing
    parsed = split_message(b"Subject: x\n \n  y\n \n\nbody\n")
    assert [h.text for h in parsed.headers] == ["Subject: x\n \n  y\n"]
    assert parsed.dropped == 2
    parsed = split_message(b"Subject: x\n\t\nhello\n")
    assert [h.text for h in parsed.headers] == ["Subject: x\n"]
    assert parsed.body_start == len(b"Subject: x\n\t\n") and parsed.blank_line_missing
    # a white-space line with no header before it is the body
    parsed = split_message(b" \nhello\n")
    assert parsed.headers == [] and parsed.body_start == 0 and parsed.blank_line_missing
    assert not split_message(b"Subject: x\n").blank_line_missing


def test_file_body_loses_its_from_line_in_place(tmp_path):
    from pymta.config import load_config
    from pymta.message.body import FileBody
    from pymta.message.uucp_from import take_from_line
    conf = tmp_path / "c.conf"
    conf.write_text(f"spool_directory = {tmp_path}\nqualify_domain = q.example\n")
    config = load_config(str(conf))
    body = FileBody(str(tmp_path))
    data = b"From a@b.example Sat Dec  5 10:00:00 2026\nSubject: s\n\nbody\n"
    body.write(data[:10])
    body.write(data[10:])
    same, sender = take_from_line(config, body, None)
    assert same is body and sender == "a@b.example"
    assert body.read_from(0) == b"Subject: s\n\nbody\n"
    assert len(body) == len(b"Subject: s\n\nbody\n") and body.newlines == 3
    assert body.ends(0, 7) == (b"Subject", b"\n\nbody\n")
    head, parsed = body.header_block()
    assert [h.text for h in parsed.headers] == ["Subject: s\n"]
    out = tmp_path / "copy"
    with open(out, "wb") as f:
        body.copy_to(f.fileno(), parsed.body_start)
    assert out.read_bytes() == b"body\n"
