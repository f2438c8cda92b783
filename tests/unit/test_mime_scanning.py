"""MIME parts as the MIME ACL sees them (pymta.acl.mime) and the regex / mime_regex /
decode conditions (pymta.acl.content)."""
from __future__ import annotations

import os

import pytest

from pymta.acl.content import (
    ContentError,
    ContentScan,
    check_decode,
    check_mime_regex,
    check_regex,
    run_mime_acl,
)
from pymta.acl.mime import decode_part, mime_parts, split_entity
from pymta.taint import is_tainted, taint

MESSAGE = (b"Subject: t\nContent-Type: multipart/mixed; boundary=\"o\"\n\n"
           b"preamble\n--o\nContent-Type: multipart/alternative; boundary=a\n\n"
           b"--a\nContent-Type: text/plain\n\nplain\n--a\nContent-Type: text/html\n\n<p>\n"
           b"--a--\n--o\nContent-Type: multipart/related; boundary=r\n\n"
           b"--r\nContent-Type: text/html\n\nrel\n--r\nContent-Type: image/png\n\npng\n"
           b"--r--\n--o\nContent-Type: message/rfc822\n\n"
           b"Subject: inner\nContent-Type: multipart/mixed; boundary=i\n\n"
           b"--i\nContent-Type: text/plain\n\ninner\n--i\nContent-Type: image/gif\n\ngif\n"
           b"--i--\n--o\nContent-Type: text/plain\n\nlast\n--o--\nepilogue\n")


def _parts(data: bytes = MESSAGE):
    headers, body = split_entity(data)
    return list(mime_parts(headers, body))


def test_order_counts_and_cover_letter():
    got = [(p.number, p.content_type, p.is_rfc822, p.is_coverletter) for p in _parts()]
    assert got == [
        (0, "multipart/mixed", False, True),
        (1, "multipart/alternative", False, True),      # first part of a cover letter
        (2, "text/plain", False, True), (3, "text/html", False, True),  # alternative
        (4, "multipart/related", False, False),         # later parts: attachments
        (5, "text/html", False, False), (6, "image/png", False, False),
        (7, "message/rfc822", False, False),
        (0, "multipart/mixed", True, True),             # the attached message: from 0
        (1, "text/plain", True, True), (2, "image/gif", True, False),
        (8, "text/plain", False, False)]


def test_raw_content_of_a_multipart_holds_its_nested_parts():
    parts = _parts()
    assert b"preamble" in parts[0].raw and b"epilogue" in parts[0].raw
    assert b"<p>" in parts[1].raw and b"rel" not in parts[1].raw
    assert parts[2].raw == b"plain\n"


def test_header_values_and_file_names():
    data = (b"Content-Type: Text/Plain; CHARSET=\"UTF-8\"; name=\"=?utf-8?q?caf=C3=A9?=\"\n"
            b"Content-Disposition: Attachment;\n filename*0*=iso-8859-1''r%E9sum%E9;\n"
            b" filename*1=\".txt\"\nContent-ID: < A@B >\n"
            b"Content-Description: Two  Words\n\nbody\n")
    [part] = _parts(data)
    assert (part.content_type, part.charset, part.disposition, part.content_id,
            part.description) == ("text/plain", "UTF-8", "attachment", "<a@b>", "twowords")
    assert part.filename == "résumé.txt"       # the disposition's name wins
    assert is_tainted(part.variables()["mime_filename"])
    [only_type] = _parts(b"Content-Type: a/b; name=\"=?utf-8?q?caf=C3=A9?=\"\n\nx\n")
    assert only_type.filename == "café"


def test_decode_places(tmp_path):
    scan_dir = str(tmp_path / "scan" / "ID")
    seq = [0]
    [part] = _parts(b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
                    b"aGVsbG8=\n")
    assert decode_part(part, "default", scan_dir, "ID", seq) == f"{scan_dir}/ID-00000"
    assert part.content_size == 1 and open(part.decoded_filename, "rb").read() == b"hello"
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert decode_part(part, str(other), scan_dir, "ID", seq) == f"{other}/ID-00001"
    assert decode_part(part, str(tmp_path / "full.bin"), scan_dir, "ID", seq) == \
        str(tmp_path / "full.bin")
    assert decode_part(part, "name.txt", scan_dir, "ID", seq) == f"{scan_dir}/name.txt"
    assert seq == [2]


def _scan(tmp_path, data: bytes) -> ContentScan:
    headers, body = split_entity(data)
    return ContentScan(headers, body, "1xAAAA-000000-00", str(tmp_path))


def test_conditions_in_the_mime_acl(tmp_path):
    scan = _scan(tmp_path, MESSAGE)
    seen: list[tuple[str, bool, bool, str]] = []
    variables: dict[str, str] = {}

    def acl() -> str:
        seen.append((variables["mime_part_count"],
                     check_regex(r"^inn(er)$", scan, "mime", variables),
                     check_mime_regex("gif|png", scan, "mime", variables),
                     variables.get("regex1", "")))
        return "accept"
    assert run_mime_acl(scan, variables, acl) is None
    assert seen[2] == ("2", False, False, "")
    assert seen[6] == ("6", False, True, "")
    assert seen[9] == ("1", True, False, "er")
    assert variables["mime_part_count"] == "8" and "mime_content_type" not in variables
    assert not os.path.exists(scan.scan_dir) or os.listdir(scan.scan_dir)
    scan.cleanup()
    assert not os.path.exists(scan.scan_dir)


def test_conditions_refused_where_there_is_nothing_to_scan(tmp_path):
    scan = _scan(tmp_path, MESSAGE)
    with pytest.raises(ContentError, match="cannot test regex condition in RCPT ACL"):
        check_regex("x", scan, "rcpt", {})
    with pytest.raises(ContentError, match="cannot test mime_regex condition in DATA ACL"):
        check_mime_regex("x", scan, "data", {})
    with pytest.raises(ContentError, match="tainted filename"):
        scan.part = _parts()[2]
        check_decode(taint("/tmp/x"), scan, "mime", {})
    assert check_decode("0", scan, "mime", {}) is False


def test_regex_on_the_whole_message_sees_a_from_line_and_headers(tmp_path):
    scan = _scan(tmp_path, MESSAGE)
    v: dict[str, str] = {}
    assert check_regex(r"^From (\S+)", scan, "data", v) and v["regex1"] == "MAILER-DAEMON"
    assert check_regex(r"^Subject:: (t)$ : ^epilogue", scan, "data", v)
    assert v["regex_match_string"] == "^Subject: (t)$"
    assert not check_regex("^nowhere", scan, "data", v)
