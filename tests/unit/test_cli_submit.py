"""Reading a command-line message and extracting recipients (-t)."""
import io
from types import SimpleNamespace

import pytest

from pymta.cli.submit import caller_is_trusted, extract_recipients, qualify, read_message


def test_dot_line_ends_message_and_crlf_normalised():
    src = io.BytesIO(b"Subject: x\r\n\r\nline1\r\n..two\r\n.\r\nafter\n")
    assert read_message(src, True) == b"Subject: x\n\nline1\n..two\n"


def test_dot_ignored_with_i():
    src = io.BytesIO(b"Subject: x\n\n.\nmore")
    assert read_message(src, False) == b"Subject: x\n\n.\nmore\n"


def test_extract_recipients_removes_bcc_and_arguments():
    msg = (b"From: a@b\nTo: One <one@x>, two@x\nCc: three@x,\n  four@x\n"
           b"Bcc: secret@x\nSubject: hi\n\nBcc: not a header\n")
    rcpts, data = extract_recipients(msg, exclude=["two@x"])
    assert rcpts == ["one@x", "three@x", "four@x", "secret@x"]
    assert b"secret@x" not in data.split(b"\n\n")[0]
    assert data.endswith(b"\n\nBcc: not a header\n")
    assert b"Cc: three@x,\n  four@x\n" in data


def test_extract_adds_arguments_when_option_false():
    rcpts, _ = extract_recipients(b"To: a@x\n\nbody\n", exclude=["b@x"], remove_arguments=False)
    assert rcpts == ["a@x", "b@x"]


def test_resent_headers_take_precedence():
    msg = b"To: old@x\nResent-To: new@x\nResent-Bcc: hidden@x\n\nb\n"
    rcpts, data = extract_recipients(msg)
    assert rcpts == ["new@x", "hidden@x"]
    assert b"Resent-Bcc" not in data and b"To: old@x" in data


def test_qualify():
    assert qualify("user", "example.org") == "user@example.org"
    assert qualify("u@d", "example.org") == "u@d"
    assert qualify("", "example.org") == ""


def test_trusted_callers():
    cfg = SimpleNamespace(main=SimpleNamespace(exim_user="root", trusted_users=None))
    assert caller_is_trusted(cfg, 0)
    assert not caller_is_trusted(cfg, 65534)
    cfg.main.trusted_users = "nobody"
    assert caller_is_trusted(cfg, 65534)


def test_trusted_groups_and_no_exim_user():
    import grp
    import pwd
    nobody = pwd.getpwnam("nobody")
    cfg = SimpleNamespace(main=SimpleNamespace(exim_user=None, trusted_users=None,
                                               trusted_groups=None))
    # without an exim_user only root is trusted
    assert caller_is_trusted(cfg, 0)
    assert not caller_is_trusted(cfg, nobody.pw_uid)
    cfg.main.trusted_groups = grp.getgrgid(nobody.pw_gid).gr_name
    assert caller_is_trusted(cfg, nobody.pw_uid)


NOT_SMTP_CONF = """\
primary_hostname = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
acl_not_smtp = check_local
begin acl
check_local:
  deny    message = no spam from here
          condition = ${{if eq{{$h_subject:}}{{spam}}}}
  deny    !verify = header_syntax
  accept  add_header = X-Checked: $recipients_count for $sender_address
"""


def _submit_with_acl(tmp_path, message: bytes, args: tuple[str, ...] = ()):
    from pymta.cli.args import parse_args
    from pymta.cli.submit import submit
    from pymta.config import load_config
    from pymta.log import Logger
    from pymta.spool.files import read_header
    conf = tmp_path / "c.conf"
    conf.write_text(NOT_SMTP_CONF.format(spool=tmp_path / "spool"))
    config = load_config(str(conf))
    opts = parse_args(["-odq", "-i", *args, "r@test.example"])
    msgid, error = submit(config, opts, io.BytesIO(message), Logger(config))
    msg = read_header(str(tmp_path / "spool"), msgid) if msgid else None
    return msgid, error, msg


def test_acl_not_smtp_accepts_and_adds_header(tmp_path):
    msgid, error, msg = _submit_with_acl(tmp_path, b"Subject: hello\nTo: r@test.example\n\nx\n")
    assert error == "" and msgid
    assert any(h.text.startswith("X-Checked: 1 for ") for h in msg.headers)


@pytest.mark.parametrize("oma", ["192.0.2.1.4567", "[192.0.2.1]:4567"])
def test_oma_port_is_split_from_the_address(tmp_path, oma):
    # -oMa takes the spool's host address forms; the -H file gets Exim's "[ip]:port"
    msgid, error, msg = _submit_with_acl(tmp_path, b"Subject: hi\n\nx\n", ("-oMa", oma))
    assert error == "" and msg.variables["host_address"] == "[192.0.2.1]:4567"


def test_acl_not_smtp_deny_refuses_and_spools_nothing(tmp_path):
    msgid, error, _ = _submit_with_acl(tmp_path, b"Subject: spam\n\nbuy now\n")
    assert msgid is None and error == "no spam from here"
    assert not list((tmp_path / "spool" / "input").glob("*-H"))
    assert "rejected by non-SMTP ACL: no spam from here" in \
        (tmp_path / "spool" / "log" / "rejectlog").read_text()


def test_acl_not_smtp_header_syntax(tmp_path):
    msgid, error, _ = _submit_with_acl(tmp_path, b"Subject: ok\nTo: <broken@\n\nx\n")
    assert msgid is None and error
