"""The MIME ACL (acl_smtp_mime, acl_not_smtp_mime), acl_not_smtp_start, and the regex,
mime_regex and decode conditions: -bh transcripts compared with Exim 4.96's
(tests/data/mime/), messages over SMTP to the daemon, and messages from sendmail.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "mime"
_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}"


def _normal(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if not line.startswith("LOG:") or " <= " in line:
            continue                  # (S= differs: Exim's Received: line names Exim)
        line = re.sub(rf"^LOG: {_ID} ", "LOG: ", line)
        line = re.sub(r"\S*/scan/\S+", "<file>", line)
        line = re.sub(r"From MAILER-DAEMON .*\]", "From MAILER-DAEMON <date>]", line)
        out.append(line)
    return out


@pytest.mark.parametrize("name", ["mime", "anomalies"])
def test_bh_matches_exim(tmp_path, name):
    """Every $mime_* variable of every part (nested multiparts, an attached message,
    RFC 2047/2231 file names, broken base64 and quoted-printable), regex on raw parts
    and on the whole message, mime_regex, decode: as Exim 4.96 logged them."""
    spool = tmp_path / "spool"
    spool.mkdir()
    conf = tmp_path / "pymta.conf"
    conf.write_text((DATA / f"{name}.conf").read_text().replace("SPOOL", str(spool)))
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input=(DATA / f"{name}.in").read_bytes())
    assert proc.returncode == 0, proc.stderr
    # Exim's log escapes bytes that are not printable ASCII; the test config
    # shows the one file name that has such bytes in base64.
    assert _normal(proc.stderr.splitlines()) == \
        _normal((DATA / f"{name}.exim.log").read_text().splitlines())
    assert not list(spool.glob("scan/*"))          # decoded files are removed


ACLS = r"""
acl_mime:
  deny    condition = ${if match{$mime_filename}{\N\.exe$\N}}
          message = no executables ($mime_filename in part $mime_part_count)
  deny    mime_regex = \N(?i)viagra\N
          message = spam in part $mime_part_count
  accept  decode = default
          add_header = X-Part-$mime_part_count: $mime_content_type $mime_content_size \
                       ${if exists{$mime_decoded_filename}{decoded}{missing}}

acl_data:
  deny    regex = ^Subject::.*\N[Ll]ottery\N
          message = lottery: $regex_match_string
  warn    add_header = X-Mime-Parts: $mime_part_count
  accept
"""

MIXED = (b"Subject: files\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
         b"--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
         b"--XX\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Disposition: attachment; filename=\"FILE\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nB64\r\n--XX--\r\n")


def _mixed(filename: str, content: bytes) -> bytes:
    import base64
    return MIXED.replace(b"FILE", filename.encode()).replace(
        b"B64", base64.b64encode(content))


def _config() -> str:
    return (BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt\n",
                                "acl_smtp_rcpt = acl_check_rcpt\nacl_smtp_mime = acl_mime\n"
                                "acl_smtp_data = acl_data\n")
            .replace("begin acl\n", "begin acl\n" + ACLS))


def test_mime_acl_over_smtp(pymta_daemon, tmp_path):
    d = pymta_daemon(config=_config())
    with d.client() as c:
        code, text = c.send_message("a@remote.example", "alice@test.example",
                                    _mixed("run.exe", b"MZ\x90\x00"))
        assert (code, text) == (550, "no executables (run.exe in part 2)")
        assert c.cmd("RSET")[0] == 250
        code, text = c.send_message("a@remote.example", "alice@test.example",
                                    _mixed("notes.txt", b"buy VIAGRA now\n"))
        assert (code, text) == (550, "spam in part 2")
        assert c.cmd("RSET")[0] == 250
        code, text = c.send_message("a@remote.example", "alice@test.example",
                                    MIXED.replace(b"Subject: files", b"Subject: Lottery!"))
        assert (code, text) == (550, "lottery: ^Subject:.*[Ll]ottery")
        assert c.cmd("RSET")[0] == 250
        assert c.send_message("a@remote.example", "alice@test.example",
                              _mixed("notes.txt", b"x" * 3000))[0] == 250
        c.quit()
    d.wait_for_log(r"F=<a@remote\.example> rejected during MIME ACL checks: no executables "
                   r"\(run\.exe in part 2\)", name="reject")
    d.wait_for_log(r"rejected after DATA: lottery", name="reject")
    msgs = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert len(msgs) == 1
    head = msgs[0].split(b"\n\n", 1)[0].decode()
    assert "X-Part-0: multipart/mixed 5 decoded" in head     # raw: base64 not undone
    assert "X-Part-1: text/plain 1 decoded" in head
    assert "X-Part-2: application/octet-stream 3 decoded" in head
    assert "X-Mime-Parts: 2" in head
    assert not list((d.spool / "scan").glob("*"))


def test_decode_refuses_a_tainted_file_name(pymta_daemon):
    config = _config().replace("accept  decode = default",
                               "accept  decode = ${if def:mime_filename{$mime_filename}"
                               "{default}}")
    d = pymta_daemon(config=config)
    with d.client() as c:
        code, _ = c.send_message("a@remote.example", "alice@test.example",
                                 _mixed("notes.txt", b"data"))
        assert code == 451
        c.quit()
    d.wait_for_log(r'tainted filename for decode: "notes\.txt"', name="reject")
    assert not (d.spool / "scan").exists() or not list((d.spool / "scan").rglob("notes.txt"))


NOT_SMTP = r"""
acl_start:
  deny    senders = blocked@test.example
          message = you may not send mail
  accept

acl_nsmime:
  deny    mime_regex = forbidden
          message = forbidden content in part $mime_part_count
  accept  add_header = X-Seen-Part-$mime_part_count: $mime_content_type
"""


def test_not_smtp_start_and_mime_acls(pymta_daemon, tmp_path):
    config = (BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt\n",
                                  "acl_smtp_rcpt = acl_check_rcpt\n"
                                  "acl_not_smtp_start = acl_start\n"
                                  "acl_not_smtp_mime = acl_nsmime\n")
              .replace("begin acl\n", "begin acl\n" + NOT_SMTP))
    d = pymta_daemon(config=config)
    refused = d.run("-odq", "-f", "blocked@test.example", "alice@test.example",
                    input=b"Subject: x\n\nbody\n")
    assert refused.returncode != 0
    assert "you may not send mail" in refused.stderr
    bad = d.run("-odq", "alice@test.example", input=_mixed("a.txt", b"forbidden stuff")
                .replace(b"\r\n", b"\n"))
    assert bad.returncode != 0 and "forbidden content in part 2" in bad.stderr
    assert d.queue() == []
    good = d.run("-odq", "alice@test.example", input=_mixed("a.txt", b"fine")
                 .replace(b"\r\n", b"\n"))
    assert good.returncode == 0, good.stderr
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert "X-Seen-Part-0: multipart/mixed" in header
    assert "X-Seen-Part-2: application/octet-stream" in header
    assert not list((d.spool / "scan").glob("*"))
