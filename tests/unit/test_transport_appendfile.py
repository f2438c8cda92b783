"""appendfile transport: mbox and maildir byte-exact output, taint, modes, locking."""
from __future__ import annotations

import os
import re
import stat
from types import SimpleNamespace

import pytest

from pymta.address import Address
from pymta.config.model import DriverInstance
from pymta.delivery.job import DeliveryJob
from pymta.drivers import get_driver
from pymta.errnos import EximErrno
from pymta.expand.context import ExpandContext
from pymta.spool.model import SpoolHeader, SpoolMessage
from pymta.taint import Tainted
from pymta.transports import appendfile

MSGID = "1tAbCd-000042-Zz"
BODY = b"line one\nFrom the start\n>From quoted\n.dot line\n"
FROM_LINE_TIME = "Sat Nov 21 09:05:03 2026"


def make_config():
    return SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example"))


def make_job(tmp_path, body=BODY, sender="sender@src.example",
             rcpts=("user@dst.example",), variables=None) -> DeliveryJob:
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    data = spool / f"{MSGID}-D"
    data.write_bytes(f"{MSGID}-D\n".encode() + body)
    msg = SpoolMessage(MSGID, "sender", 1000, 1000, sender, 1700000000,
                       headers=[SpoolHeader("P", "Received: from a\n\tby b; today\n"),
                                SpoolHeader("*", "X-Deleted: gone\n"),
                                SpoolHeader(" ", "Subject: hello\n"),
                                SpoolHeader("T", "To: user@dst.example\n")])
    addrs = [Address(r) for r in rcpts]
    v = {"local_part": Tainted(addrs[0].local_part), "domain": Tainted(addrs[0].domain),
         "local_part_data": addrs[0].local_part, "primary_hostname": "test.example"}
    v.update(variables or {})
    ctx = ExpandContext(config=make_config(), variables=v)
    return DeliveryJob(msg, str(spool), str(data), addrs, ctx, None, make_config())


def make_transport(name="local_delivery", **options):
    cls = get_driver("transport", "appendfile")
    inst = DriverInstance("transport", name, "appendfile", options=options)
    return cls(inst, make_config())


@pytest.fixture(autouse=True)
def fixed_bsd_time(monkeypatch):
    monkeypatch.setattr(appendfile, "tod_bsdinbox", lambda t=None: FROM_LINE_TIME)


def test_registered_and_local():
    cls = get_driver("transport", "appendfile")
    assert cls is appendfile.AppendfileTransport and cls.is_local
    assert cls.options["mode"].default == 0o600
    assert cls.options["directory_mode"].default == 0o700


def test_mbox_byte_exact_and_appends(tmp_path):
    box = tmp_path / "mail" / "user"
    t = make_transport(file=f"{tmp_path}/mail/$local_part_data", return_path_add=True,
                       envelope_to_add=True)
    job = make_job(tmp_path)
    t.deliver(job)
    assert [a.result for a in job.addresses] == ["ok"]
    one = (b"From sender@src.example Sat Nov 21 09:05:03 2026\n"
           b"Return-path: <sender@src.example>\n"
           b"Envelope-to: user@dst.example\n"
           b"Received: from a\n\tby b; today\n"
           b"Subject: hello\n"
           b"To: user@dst.example\n"
           b"\n"
           b"line one\n>From the start\n>From quoted\n.dot line\n"
           b"\n")
    assert box.read_bytes() == one
    assert stat.S_IMODE(box.stat().st_mode) == 0o600
    assert stat.S_IMODE(box.parent.stat().st_mode) == 0o700
    job2 = make_job(tmp_path, sender="")
    t.deliver(job2)
    assert job2.addresses[0].result == "ok"
    data = box.read_bytes()
    assert data.startswith(one)
    assert data[len(one):].startswith(b"From MAILER-DAEMON Sat Nov 21 09:05:03 2026\n"
                                      b"Return-path: <>\n")
    assert not os.path.exists(str(box) + ".lock")


def test_mbox_body_split_across_chunks_is_escaped(tmp_path, monkeypatch):
    from pymta.transports import content
    monkeypatch.setattr(content, "CHUNK", 3)   # "From " straddles chunk boundaries
    body = b"ab\nFrom x\nFro\nFrom\nFrom y"
    t = make_transport(file=f"{tmp_path}/box", message_prefix="", message_suffix="")
    job = make_job(tmp_path, body=body)
    t.deliver(job)
    out = (tmp_path / "box").read_bytes()
    assert out.endswith(b"\n\nab\n>From x\nFro\nFrom\n>From y")


def test_maildir_byte_exact(tmp_path):
    t = make_transport(directory=f"{tmp_path}/Maildir", maildir_format=True,
                       delivery_date_add=True, envelope_to_add=True)
    job = make_job(tmp_path, rcpts=("user@dst.example", "other@dst.example"))
    t.deliver(job)
    assert {a.result for a in job.addresses} == {"ok"}
    md = tmp_path / "Maildir"
    assert sorted(os.listdir(md)) == ["cur", "new", "tmp"]
    assert os.listdir(md / "tmp") == [] and os.listdir(md / "cur") == []
    (name,) = os.listdir(md / "new")
    assert re.fullmatch(r"\d+\.M\d{1,6}P%d\.test\.example" % os.getpid(), name)
    data = (md / "new" / name).read_bytes()
    env = b"Envelope-to: user@dst.example,\n other@dst.example\n"
    assert data.startswith(env)
    m = re.match(rb"Delivery-date: (.*)\n", data[len(env):])
    assert m and re.fullmatch(rb"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", m.group(1))
    rest = data[len(env) + m.end():]
    assert rest == (b"Received: from a\n\tby b; today\n"
                    b"Subject: hello\n"
                    b"To: user@dst.example\n"
                    b"\n" + BODY)   # no From_ line, no escaping, no suffix in maildir
    assert stat.S_IMODE((md / "new" / name).stat().st_mode) == 0o600
    for sub in ("new", "cur", "tmp"):
        assert stat.S_IMODE((md / sub).stat().st_mode) == 0o700


def test_maildir_names_unique_and_tag(tmp_path):
    t = make_transport(directory=f"{tmp_path}/md", maildir_format=True, maildir_tag=",S=1")
    for _ in range(3):
        t.deliver(make_job(tmp_path))
    names = os.listdir(tmp_path / "md" / "new")
    assert len(set(names)) == 3 and all(n.endswith(",S=1") for n in names)


def test_tainted_path_is_refused(tmp_path):
    t = make_transport(file=f"{tmp_path}/mail/$local_part")
    job = make_job(tmp_path)
    t.deliver(job)
    a = job.addresses[0]
    assert a.result == "defer"
    assert a.message == (f"Tainted '{tmp_path}/mail/user' (file or directory name for "
                         "local_delivery transport) not permitted")
    assert a.basic_errno == -1          # Exim 4.96 logs "defer (-1)" for this
    assert not (tmp_path / "mail").exists()


def test_mode_and_directory_mode(tmp_path):
    t = make_transport(file=f"{tmp_path}/a/b/box", mode=0o640, directory_mode=0o750)
    job = make_job(tmp_path)
    t.deliver(job)
    assert job.addresses[0].result == "ok"
    assert stat.S_IMODE((tmp_path / "a/b/box").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "a/b").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750


def test_existing_wider_mode_is_narrowed(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"")
    os.chmod(box, 0o666)
    job = make_job(tmp_path)
    make_transport(file=str(box)).deliver(job)
    assert job.addresses[0].result == "ok"
    assert stat.S_IMODE(box.stat().st_mode) == 0o600


@pytest.mark.parametrize("have", [0o600, 0o640, 0o604])
def test_narrower_mode_defers_unless_mode_fail_narrower_is_false(tmp_path, have):
    # as exim4 4.96 does (mode = 0660): a mailbox lacking any bit of the mode defers
    # with errno -7, even when it also has a bit the mode lacks (0604)
    box = tmp_path / "box"
    box.write_bytes(b"")
    os.chmod(box, have)
    job = make_job(tmp_path)
    make_transport(file=str(box), mode=0o660).deliver(job)
    a = job.addresses[0]
    assert (a.result, a.basic_errno) == ("defer", EximErrno.BADMODE)
    assert a.message == f"mailbox {box} has the wrong mode {have:o} (660 expected)"
    assert box.read_bytes() == b"" and stat.S_IMODE(box.stat().st_mode) == have
    # mode_fail_narrower = false: delivered, the mode left as it was
    job = make_job(tmp_path)
    make_transport(file=str(box), mode=0o660, mode_fail_narrower=False).deliver(job)
    assert job.addresses[0].result == "ok" and box.read_bytes().startswith(b"From ")
    assert stat.S_IMODE(box.stat().st_mode) == have


def test_no_create_directory_defers(tmp_path):
    t = make_transport(file=f"{tmp_path}/missing/box", create_directory=False)
    job = make_job(tmp_path)
    t.deliver(job)
    assert job.addresses[0].result == "defer"
    assert not (tmp_path / "missing").exists()


def test_file_must_exist(tmp_path):
    job = make_job(tmp_path)
    make_transport(file=f"{tmp_path}/box", file_must_exist=True).deliver(job)
    assert job.addresses[0].result == "defer"
    assert "does not exist" in job.addresses[0].message


def test_symlink_refused_unless_allowed(tmp_path):
    real = tmp_path / "real"
    real.write_bytes(b"")
    os.symlink(real, tmp_path / "link")
    job = make_job(tmp_path)
    make_transport(file=f"{tmp_path}/link").deliver(job)
    assert job.addresses[0].result == "defer"
    assert "symbolic link" in job.addresses[0].message
    assert real.read_bytes() == b""
    job = make_job(tmp_path)
    make_transport(file=f"{tmp_path}/link", allow_symlink=True).deliver(job)
    assert job.addresses[0].result == "ok" and real.read_bytes().startswith(b"From ")


def test_quota_exceeded_defers_and_leaves_box_unchanged(tmp_path):
    box = tmp_path / "box"
    box.write_bytes(b"x" * 100)
    job = make_job(tmp_path)
    make_transport(file=str(box), quota="150").deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == EximErrno.EXIMQUOTA
    assert a.message.startswith("mailbox is full")
    assert box.read_bytes() == b"x" * 100
    job = make_job(tmp_path)
    make_transport(file=str(box), quota="1M").deliver(job)
    assert job.addresses[0].result == "ok"


def test_held_lockfile_defers(tmp_path):
    box = tmp_path / "box"
    (tmp_path / "box.lock").write_bytes(b"")
    job = make_job(tmp_path)
    make_transport(file=str(box), lock_retries=0).deliver(job)
    assert job.addresses[0].result == "defer"
    assert job.addresses[0].basic_errno == EximErrno.LOCKFAILED
    assert not box.exists()


def test_headers_add_and_remove(tmp_path):
    t = make_transport(file=f"{tmp_path}/box", message_prefix="", message_suffix="",
                       headers_add="X-Added: $local_part_data\nX-Two: 2",
                       headers_remove="subject:x-*")
    job = make_job(tmp_path)
    job.addresses[0].extra_headers.append("X-Router: r\n")
    t.deliver(job)
    assert (tmp_path / "box").read_bytes() == (
        b"Received: from a\n\tby b; today\nTo: user@dst.example\n"
        b"X-Router: r\nX-Added: user\nX-Two: 2\n\n"
        b"line one\n>From the start\n>From quoted\n.dot line\n")


def test_directory_without_maildir_writes_one_file(tmp_path):
    t = make_transport(directory=f"{tmp_path}/d", directory_file="msg-$inode")
    job = make_job(tmp_path)
    t.deliver(job)
    assert job.addresses[0].result == "ok"
    (name,) = os.listdir(tmp_path / "d")
    assert name.startswith("msg-") and name[4:].isdigit()
    assert (tmp_path / "d" / name).read_bytes().endswith(b"\n\n" + BODY)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_option_delivers_as_that_user(tmp_path):
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="pymta-af-")
    try:
        os.chmod(base, 0o777)
        job = make_job(tmp_path)
        make_transport(file=f"{base}/box", user="nobody").deliver(job)
        assert job.addresses[0].result == "ok", job.addresses[0].message
        assert os.stat(f"{base}/box").st_uid == nobody.pw_uid
        assert os.geteuid() == 0 and os.getegid() == 0
    finally:
        shutil.rmtree(base)


def test_defaults_stored_by_config_loader_count_as_unset(tmp_path):
    # The config loader stores every option with its default (None for unset strings).
    opts = {name: spec.default for name, spec in appendfile.AppendfileTransport.options.items()}
    opts["file"] = f"{tmp_path}/box"
    job = make_job(tmp_path)
    make_transport(**opts).deliver(job)
    assert (tmp_path / "box").read_bytes().startswith(
        b"From sender@src.example " + FROM_LINE_TIME.encode() + b"\n")


def test_bad_message_size_limit_defers(tmp_path):
    job = make_job(tmp_path)
    make_transport(file=f"{tmp_path}/box", message_size_limit="lots").deliver(job)
    assert job.addresses[0].result == "defer"
    assert not (tmp_path / "box").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_router_uid_used_when_user_unset(tmp_path):
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="pymta-af-")
    groups_before = os.getgroups()
    try:
        os.chmod(base, 0o777)
        job = make_job(tmp_path)
        job.addresses[0].uid, job.addresses[0].gid = nobody.pw_uid, nobody.pw_gid
        make_transport(directory=f"{base}/md", maildir_format=True).deliver(job)
        assert job.addresses[0].result == "ok", job.addresses[0].message
        assert os.stat(f"{base}/md/new").st_uid == nobody.pw_uid
        assert os.geteuid() == 0 and os.getgroups() == groups_before
    finally:
        shutil.rmtree(base)


def test_use_bsmtp_writes_batch_smtp(tmp_path):
    t = make_transport(file=f"{tmp_path}/bsmtp", use_bsmtp=True, message_prefix="HELO me\n")
    job = make_job(tmp_path, rcpts=("u1@dst.example", "u2@dst.example"))
    t.deliver(job)
    assert (tmp_path / "bsmtp").read_bytes() == (
        b"HELO me\nMAIL FROM:<sender@src.example>\nRCPT TO:<u1@dst.example>\n"
        b"RCPT TO:<u2@dst.example>\nDATA\n"
        b"Received: from a\n\tby b; today\nSubject: hello\nTo: user@dst.example\n\n"
        b"line one\nFrom the start\n>From quoted\n..dot line\n.\n")


FORMAT_CONF = """primary_hostname = test.example
begin transports
mb:
  driver = appendfile
  file = {d}/mbox
md:
  driver = appendfile
  directory = {d}/md
  maildir_format
dd:
  driver = appendfile
  directory = {d}/dd
bs:
  driver = appendfile
  file = {d}/bsmtp
  use_bsmtp
own:
  driver = appendfile
  directory = {d}/own
  message_prefix = X-Start\\n
  check_string =
"""


def test_format_dependent_defaults_match_exim(tmp_path):
    """check_string, escape_string, message_prefix and message_suffix as Exim 4.96's
    -bP shows them after loading (checked with exim4): mbox defaults for a file,
    nothing for directory deliveries, "." and ".." for batch SMTP."""
    from pymta.config import load_config
    p = tmp_path / "configure"
    p.write_text(FORMAT_CONF.format(d=tmp_path))
    c = load_config(str(p))
    names = ("check_string", "escape_string", "message_prefix", "message_suffix")

    def effective(t):
        inst = c.transports[t]
        return tuple(inst.options[n] for n in names)

    assert effective("mb") == (
        "From ", ">From ",
        "From ${if def:return_path{$return_path}{MAILER-DAEMON}} ${tod_bsdinbox}\n", "\n")
    assert effective("md") == effective("dd") == ("", "", "", "")
    assert effective("bs") == (".", "..", "", "")
    # unquoted: the backslash stays until expansion (as in Exim)
    assert effective("own") == ("", "", "X-Start\\n", "")


def test_format_defaults_used_for_delivery(tmp_path):
    from pymta.config import load_config
    p = tmp_path / "configure"
    p.write_text(FORMAT_CONF.format(d=tmp_path))
    c = load_config(str(p))
    job = make_job(tmp_path, body=b"From me\n")
    c.transports["dd"].obj.deliver(job)
    assert job.addresses[0].result == "ok"
    (name,) = os.listdir(tmp_path / "dd")
    out = (tmp_path / "dd" / name).read_bytes()
    assert out.endswith(b"\n\nFrom me\n") and not out.startswith(b"From ")
    job = make_job(tmp_path, body=b"From me\n")
    c.transports["mb"].obj.deliver(job)
    assert (tmp_path / "mbox").read_bytes() == (
        b"From sender@src.example " + FROM_LINE_TIME.encode() + b"\n"
        b"Received: from a\n\tby b; today\nSubject: hello\nTo: user@dst.example\n\n"
        b">From me\n\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_never_users_defers_delivery_as_listed_user(tmp_path):
    job = make_job(tmp_path)
    t = make_transport(file=f"{tmp_path}/box", user="nobody")
    t.config = SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example",
                                                    never_users="daemon : nobody"))
    t.deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and "never_users" in a.message
    assert not (tmp_path / "box").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_root_is_always_a_never_user(tmp_path):
    job = make_job(tmp_path)
    make_transport(file=f"{tmp_path}/box", user="root").deliver(job)
    assert job.addresses[0].result == "defer"
    assert "User 0 set for local_delivery transport is on the never_users list" \
        in job.addresses[0].message
