"""-H/-D/-J files in Exim 4.96 format."""
import os
from pathlib import Path

import pytest

from pymta.spool import files
from pymta.spool.files import SpoolFormatError, format_header, parse_header
from pymta.spool.model import SpoolHeader, SpoolMessage, SpoolRecipient
from pymta.taint import Tainted, is_tainted

DATA = Path(__file__).parent.parent / "data" / "spool"
EXIM_ID = "1xUsgJ-0001b3-13"


def exim_h() -> bytes:
    return (DATA / f"{EXIM_ID}-H").read_bytes()


def test_parse_exim_written_file():
    m = parse_header(exim_h(), EXIM_ID)
    assert (m.id, m.originator_login, m.originator_uid, m.originator_gid) == (EXIM_ID, "root", 0, 0)
    assert m.sender == "s@remote.example"
    assert (m.received_time, m.warning_count, m.received_time_usec) == (1795296695, 0, 328560)
    assert m.variables["host_address"] == "[192.0.2.1]:4567"
    assert is_tainted(m.variables["helo_name"]) and not is_tainted(m.variables["ident"])
    assert m.variables["body_linecount"] == "1"
    assert m.acl_vars == {"acl_c0": "conn value", "acl_m_foo": "multi\nline"}
    assert m.flags == {"deliver_firsttime"}
    assert m.frozen_at == 1795296697
    assert m.nonrecipients == {"u@test.example"}
    assert [r.address for r in m.recipients] == ["u@test.example", "v@test.example"]
    assert [r.address for r in m.pending_recipients()] == ["v@test.example"]
    assert [h.flag for h in m.headers] == ["P", " ", "I", " "]
    assert m.headers[0].text.startswith("Received: from rhost.example\n\t([192.0.2.1]")
    assert m.headers[0].text.endswith("+0000\n") and len(m.headers[0].text) == 206
    assert m.message_size(len(b"hello\n")) == 265          # Exim logged S=265


def test_exim_file_round_trips_byte_for_byte():
    data = exim_h()
    assert format_header(parse_header(data)) == data


def test_spec_example_headers_and_tree():
    recv = ("Received: by hobbit.fict.example with local (Exim 4.00)\n"
            "\tid 14y9EI-00026G-00; Fri, 11 May 2001 10:28:59 +0100\n")
    hdrs = [("P", recv), ("*", "X-rewrote-sender: bb@hobbit.fict.example\n"),
            ("*", "From: Bilbo Baggins <bb@hobbit.fict.example>\n"),
            (" ", "Date: Fri, 11 May 2001 10:28:59 +0100\n")]
    text = ("16VDhn-0001bo-D3-H\nph10 1234 5678\n<ph10@x.example>\n1000000000 2\n-local\n"
            "YY darcy@austen.fict.example\nNN alice@wonderland.fict.example\n"
            "NN editor@thesaurus.ref.example\n4\neditor@thesaurus.ref.example\n"
            "darcy@austen.fict.example\nrdo@foundation\nalice@wonderland.fict.example\n\n"
            + "".join(f"{len(t):03d}{f} {t}" for f, t in hdrs)).encode()
    m = parse_header(text)
    assert m.warning_count == 2 and m.flags == {"local"}
    assert m.nonrecipients == {"darcy@austen.fict.example", "alice@wonderland.fict.example",
                               "editor@thesaurus.ref.example"}
    assert [r.address for r in m.pending_recipients()] == ["rdo@foundation"]
    assert [h.flag for h in m.headers] == ["P", "*", "*", " "]
    assert m.header_text() == recv + "Date: Fri, 11 May 2001 10:28:59 +0100\n"


def make_message(**kw) -> SpoolMessage:
    m = SpoolMessage(id="1xUsgJ-0001b3-14", originator_login="exim", originator_uid=101,
                     originator_gid=102, sender="a@b.example", received_time=1795296695,
                     received_time_usec=5, warning_count=1)
    m.variables.update({"received_protocol": "esmtpsa", "helo_name": Tainted("h.example"),
                        "host_address": Tainted("[2001:db8::1]:25"), "body_linecount": "3",
                        "tls_cipher": "TLS1.3:TLS_AES_256_GCM_SHA384:256",
                        "auth_id": "joe"})
    m.flags.update({"deliver_firsttime", "manual_thaw", "local"})
    m.acl_vars.update({"acl_m_x": "naïve\nline", "acl_c9": ""})
    m.nonrecipients.update(f"d{i}@x.example" for i in range(9))
    m.recipients = [SpoolRecipient("plain@x.example"),
                    SpoolRecipient('"odd name"@x.example', errors_to="e@x.example", pno=0),
                    SpoolRecipient("dsn@x.example", orcpt="rfc822;dsn@x.example", dsn_flags=6),
                    SpoolRecipient("child@x.example", pno=1)]
    m.headers = [SpoolHeader("P", "Received: from x\n\tby y; date\n"),
                 SpoolHeader("*", "To: old\n"), SpoolHeader("T", "To: ünïcode <a@b>\n"),
                 SpoolHeader(" ", "Subject: " + "1234567890" * 120 + "\n")]
    m.frozen_at = 1795296999
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_constructed_message_round_trip():
    m = make_message()
    data = format_header(m)
    back = parse_header(data, m.id)
    assert back == m
    assert format_header(back) == data
    assert is_tainted(back.variables["helo_name"]) and not is_tainted(back.variables["auth_id"])
    # header lengths count bytes and use at least three digits
    assert "1210  Subject:".encode() in data
    assert b"\n020T To: \xc3\xbcn\xc3\xafcode <a@b>\n" in data
    assert b"-aclc 9 0\n\n" in data and "-aclm _x 11\nnaïve\nline\n".encode() in data
    # Exim 4.96's order: address, the DSN group, then the errors_to group
    assert b"\ndsn@x.example rfc822;dsn@x.example 20,6  0,-1#3\n" in data
    assert b'\n"odd name"@x.example  0,0 e@x.example 11,0#3\n' in data
    assert b"\nchild@x.example  0,0  0,1#3\n" in data


def test_tree_is_written_balanced_and_flags_correct():
    out = []
    files._write_tree(["a", "b", "c"], out)
    assert out == ["YY b\n", "NN a\n", "NN c\n"]
    out = []
    files._write_tree(["a", "b"], out)
    assert out == ["YN b\n", "NN a\n"]
    assert b"\nXX\n" in format_header(make_message(nonrecipients=set()))


@pytest.mark.parametrize("damage", [
    lambda d: d[:len(d) // 2],                                  # truncated mid-headers
    lambda d: d.replace(b"\n2\nu@", b"\nx\nu@"),                # bad recipient count
    lambda d: d.replace(b"NN u@test", b"QQ u@test"),            # bad tree line
    lambda d: d.replace(b"014  Subject", b"0x4  Subject"),      # bad header length
    lambda d: d.replace(b"-aclc 0 10\n", b"-aclc 0 99\n"),      # acl value overruns
    lambda d: d.replace(b"<s@remote.example>", b"s@remote.example"),
    lambda d: b"",
])
def test_corrupt_files_raise_spool_format_error(damage):
    with pytest.raises(SpoolFormatError):
        parse_header(damage(exim_h()), EXIM_ID)


def test_wrong_id_line_is_an_error():
    with pytest.raises(SpoolFormatError):
        parse_header(exim_h(), "1xUsgJ-0001b3-99")


def test_write_spool_creates_files_durably(tmp_path):
    spool = str(tmp_path / "spool")
    m = make_message()
    body = b"line 1\nline 2\n"
    files.write_spool(spool, m, memoryview(body))
    assert sorted(os.listdir(tmp_path / "spool")) == ["db", "input", "msglog"]
    assert sorted(os.listdir(files.input_dir(spool))) == [m.id + "-D", m.id + "-H"]
    assert open(files.data_path(spool, m.id), "rb").read() == m.id.encode() + b"-D\n" + body
    assert files.read_header(spool, m.id) == m
    assert files.read_body(spool, m.id) == body
    assert files.body_size(spool, m.id) == len(body)
    with files.open_data(spool, m.id) as f:
        assert f.readline() == b"line 1\n"
    assert os.stat(files.header_path(spool, m.id)).st_mode & 0o777 == 0o640
    with pytest.raises(FileExistsError):          # ids are never reused
        files.write_spool(spool, m, body)


def test_rewrite_header_replaces_atomically(tmp_path):
    spool = str(tmp_path)
    m = make_message()
    files.write_spool(spool, m, b"x\n")
    m.nonrecipients.add("plain@x.example")
    m.flags.discard("deliver_firsttime")
    files.rewrite_header(spool, m)
    assert files.read_header(spool, m.id) == m
    assert sorted(os.listdir(files.input_dir(spool))) == [m.id + "-D", m.id + "-H"]


def test_journal_append_and_torn_line(tmp_path):
    spool = str(tmp_path)
    files.ensure_spool_dirs(spool)
    mid = "1xUsgJ-0001b3-14"
    assert files.read_journal(spool, mid) == []
    files.append_journal(spool, mid, "a@x.example")
    files.append_journal(spool, mid, "b@x.example")
    with open(files.journal_path(spool, mid), "ab") as f:
        f.write(b"c@x.ex")                           # crash in the middle of a write
    assert files.read_journal(spool, mid) == ["a@x.example", "b@x.example"]


def test_remove_message_removes_everything(tmp_path):
    spool = str(tmp_path)
    m = make_message()
    files.write_spool(spool, m, b"x\n")
    files.append_journal(spool, m.id, "a@x.example")
    Path(files.msglog_path(spool, m.id)).write_text("log\n")
    files.remove_message(spool, m.id)
    assert os.listdir(files.input_dir(spool)) == []
    assert os.listdir(tmp_path / "msglog") == []
    files.remove_message(spool, m.id)                # idempotent


def test_degenerate_tree_is_read_without_recursion():
    addrs = [f"a{i}@x" for i in range(5000)]
    lines = [f"NY {a}" for a in addrs[:-1]] + [f"NN {addrs[-1]}"]
    text = ("1xUsgJ-0001b3-13-H\nu 1 1\n<>\n1 0\n" + "\n".join(lines) +
            "\n1\nz@x\n\n").encode()
    m = parse_header(text)
    assert m.nonrecipients == set(addrs) and m.sender == "" and m.headers == []


def test_journal_reserves_room_and_keeps_exim_format(tmp_path):
    spool = str(tmp_path)
    files.ensure_spool_dirs(spool)
    j = files.Journal(spool, "1xUsgQ-0001f9-1K")
    j.reserve(4096)
    j.append("a@x.example")
    j.append("b@x.example")
    j.close()
    path = files.journal_path(spool, "1xUsgQ-0001f9-1K")
    assert open(path, "rb").read() == b"a@x.example\nb@x.example\n"
    assert os.stat(path).st_blocks * 512 >= 4096          # the room is allocated


def test_journal_padding_where_space_cannot_be_reserved(tmp_path, monkeypatch):
    """Without fallocate the room is NUL padding: lines go over it, readers skip it,
    and a torn last line from a crash is overwritten by the next attempt."""
    monkeypatch.setattr(files, "reserve_beyond_eof", lambda fd, off, n: False)
    spool = str(tmp_path)
    files.ensure_spool_dirs(spool)
    mid = "1xUsgQ-0001f9-1K"
    path = files.journal_path(spool, mid)
    with open(path, "wb") as f:
        f.write(b"a@x.example\nb@x.exa")                  # torn by a crash
    j = files.Journal(spool, mid)
    j.reserve(100)
    assert os.path.getsize(path) == len(b"a@x.example\n") + 100
    assert files.read_journal(spool, mid) == ["a@x.example"]
    j.append("c@x.example")
    j.close()
    assert files.read_journal(spool, mid) == ["a@x.example", "c@x.example"]


def test_new_spool_directory_is_closed_to_other_users(tmp_path):
    # as Exim's: the queue's senders, recipients and the directory names are not for all
    spool = tmp_path / "var" / "spool"
    old = os.umask(0o022)
    try:
        files.ensure_spool_dirs(str(spool))
    finally:
        os.umask(old)
    for path in (spool, spool / "input", spool / "msglog", spool / "db"):
        assert path.stat().st_mode & 0o777 == 0o750, path
