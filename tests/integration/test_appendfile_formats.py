"""appendfile: mailstore format, create_file, the owner check, and flock locking, through
`pymta -odi`.  Log lines and the .env file as Exim 4.96 wrote them for the same
configuration (exim4 -odi, Debian)."""
from __future__ import annotations

import fcntl
import os
import re
import socket
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon

USER = "user = nobody" if os.geteuid() == 0 else ""

CONFIG = f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  local_parts = ms : fl : ch : own : biff
  router_home_directory = DIR/home
  transport = t_$local_part_data
bs:
  driver = accept
  local_parts = b1 : b2 : b3
  transport = t_bsmtp
sh:
  driver = accept
  local_parts = sa : sb : sc
  transport = ${{if eq{{$local_part_data}}{{sc}}{{t_shadowed2}}{{t_shadowed}}}}
begin transports
t_ms:
  driver = appendfile
  directory = DIR/store
  mailstore_format
  mailstore_prefix = PRE $mailstore_basename
  mailstore_suffix = SUF
  {USER}
t_fl:
  driver = appendfile
  file = DIR/mbox-fl
  use_flock_lock
  use_fcntl_lock = false
  use_lockfile = false
  lock_retries = 1
  lock_interval = 1s
  {USER}
t_ch:
  driver = appendfile
  file = DIR/outside/mbox
  create_file = belowhome
  {USER}
t_own:
  driver = appendfile
  file = DIR/mbox-own
  {USER}
t_biff:
  driver = appendfile
  file = DIR/mbox-biff
  notify_comsat
  {USER}
t_shadowed:
  driver = appendfile
  file = DIR/mbox-$local_part_data
  shadow_transport = t_shadow
  shadow_condition = ${{if eq{{$local_part}}{{sb}}{{no}}{{yes}}}}
  {USER}
t_shadowed2:
  driver = appendfile
  file = DIR/mbox-$local_part_data
  shadow_transport = t_shadow_fails
  {USER}
t_shadow:
  driver = appendfile
  file = DIR/shadow-copy
  {USER}
t_shadow_fails:
  driver = appendfile
  file = DIR/readonly/copy
  {USER}
t_bsmtp:
  driver = appendfile
  file = DIR/batch.bsmtp
  use_bsmtp
  batch_max = 3
  {USER}
begin retry
* * F,1h,10m
"""


def send(d: PymtaDaemon, user: str) -> str:
    d.submit_and_deliver("s@test.example", f"{user}@test.example",
                         "From: s@test.example\nSubject: q\n\nhi\n".encode())
    msgid = re.findall(r"(\w{6}-\w{6}-\w{2}) <= s@test\.example", d.log())[-1]
    return [ln.split(f"{msgid} ", 1)[1] for ln in d.log().splitlines()
            if f" {msgid} " in ln and " <= " not in ln][0]


def _daemon(tmp_path: Path) -> PymtaDaemon:
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    for sub in ("home", "outside", "store"):
        (tmp_path / sub).mkdir()
        if os.geteuid() == 0:
            os.chown(tmp_path / sub, 65534, 65534)
    return d


def test_mailstore_envelope_and_message_files(tmp_path):
    d = _daemon(tmp_path)
    assert send(d, "ms") == "=> ms <ms@test.example> R=r T=t_ms"
    names = sorted(os.listdir(tmp_path / "store"))
    assert len(names) == 2 and names[0].endswith(".env") and names[1].endswith(".msg")
    base = str(tmp_path / "store" / names[0][:-4])
    assert re.fullmatch(r"\w{6}-\w{6}-\w{2}-\w{6}", names[0][:-4])
    assert (tmp_path / "store" / names[0]).read_text() == \
        f"PRE {base}\ns@test.example\nms@test.example\nSUF"
    assert "Subject: q\n" in (tmp_path / "store" / names[1]).read_text()


def test_create_file_belowhome_refuses_a_mailbox_elsewhere(tmp_path):
    d = _daemon(tmp_path)
    assert send(d, "ch") == (
        f"== ch@test.example R=r T=t_ch defer (-34): mailbox {tmp_path}/outside/mbox does "
        "not exist, but creation outside the home directory is not permitted")
    assert not (tmp_path / "outside" / "mbox").exists()


def test_wrong_owner_and_flock(tmp_path):
    d = _daemon(tmp_path)
    if os.geteuid() == 0:
        (tmp_path / "mbox-own").write_text("")      # owned by root, delivered as nobody
        os.chmod(tmp_path / "mbox-own", 0o666)
        assert send(d, "own") == (f"== own@test.example R=r T=t_own defer (-6): mailbox "
                                  f"{tmp_path}/mbox-own has wrong uid (0 != 65534)")
    mbox = tmp_path / "mbox-fl"
    mbox.write_text("")
    if os.geteuid() == 0:
        os.chown(mbox, 65534, 65534)
    fd = os.open(mbox, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert send(d, "fl") == (f"== fl@test.example R=r T=t_fl defer (-9): failed to lock "
                                 f"mailbox {mbox} (fcntl/flock)")
    finally:
        os.close(fd)
    assert send(d, "fl") == "=> fl <fl@test.example> R=r T=t_fl"


def test_batched_bsmtp_file(tmp_path):
    d = _daemon(tmp_path)
    r = d.run("-odi", "-f", "s@test.example", "b1@test.example", "b2@test.example",
              "b3@test.example", input=b"Subject: q\n\nhi\n")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "batch.bsmtp").read_text()
    assert text.startswith("MAIL FROM:<s@test.example>\nRCPT TO:<b1@test.example>\n"
                           "RCPT TO:<b2@test.example>\nRCPT TO:<b3@test.example>\nDATA\n")
    assert text.count("DATA\n") == 1 and text.endswith("\n.\n")


def test_shadow_transport(tmp_path):
    d = _daemon(tmp_path)
    (tmp_path / "readonly").mkdir(mode=0o555)
    lines = [send(d, name) for name in ("sa", "sb", "sc")]
    assert lines[0] == "=> sa <sa@test.example> R=sh T=t_shadowed ST=t_shadow"
    assert lines[1] == "=> sb <sb@test.example> R=sh T=t_shadowed"      # condition: no
    assert lines[2].startswith("=> sc <sc@test.example> R=sh T=t_shadowed2 ST=t_shadow_fails (")
    assert (tmp_path / "shadow-copy").read_text().count("Subject: q") == 1
    assert all((tmp_path / f"mbox-{n}").exists() for n in ("sa", "sb", "sc"))


def test_notify_comsat_tells_biff_where_each_message_starts(tmp_path):
    """The datagram exim4 4.96 sent for the same deliveries: "user@offset", a newline
    and a NUL, to the biff port on 127.0.0.1, one per message."""
    port = socket.getservbyname("biff", "udp") if _has_service("biff") else 512
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        listener.close()
        pytest.skip(f"cannot listen on the biff port {port} (udp): {exc}")
    with listener:
        listener.settimeout(10)
        d = _daemon(tmp_path)
        assert send(d, "biff") == "=> biff <biff@test.example> R=r T=t_biff"
        first = listener.recv(100)
        size = (tmp_path / "mbox-biff").stat().st_size
        assert send(d, "biff") == "=> biff <biff@test.example> R=r T=t_biff"
        second = listener.recv(100)
    assert first == b"biff@0\n\0"
    assert second == f"biff@{size}\n\0".encode()


def _has_service(name: str) -> bool:
    try:
        socket.getservbyname(name, "udp")
        return True
    except OSError:
        return False
