"""The redirect router's file checks and error handling through `pymta -odi`:
modemask, owners/check_owner, owngroups/check_group, a missing directory,
ignore_eacces, forbid_smtp_code, skip_syntax_errors with syntax_errors_to /
syntax_errors_text, hide_child_in_errmsg and repeat_use.  Log lines as Exim 4.96
writes them for the same configuration (exim4 -odi, Debian)."""
from __future__ import annotations

import os
import re

import pytest

from tests.support.daemon import PymtaDaemon

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
fwd:
  driver = redirect
  local_parts = u1 : u2 : u3 : u4 : u5 : u6
  file = DIR/fwd/${local_part_data}
  owners = root
  owngroups = root
  forbid_smtp_code
  allow_fail
  skip_syntax_errors
  syntax_errors_to = s@test.example
  syntax_errors_text = Your forward file has errors:
  hide_child_in_errmsg
lists:
  driver = redirect
  local_parts = list1 : list2
  data = ${if eq{$local_part}{list1}{list2@test.example}{list1@test.example, x@test.example}}
  repeat_use = false
r:
  driver = accept
  local_parts = s : x : list1 : list2
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
begin retry
* * F,1h,10m
"""


@pytest.fixture
def d(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the owner checks need files owned by root and by someone else")
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    fwd = tmp_path / "fwd"
    fwd.mkdir()
    files = {"u1": "x@test.example\n", "u2": "x@test.example\n",
             "u3": ":fail: 550 5.1.1 gone away\n", "u5": "x@test.example\n",
             "u4": "x@test.example, bad address here, @@@, nosuch@test.example\n"}
    for name, text in files.items():
        (fwd / name).write_text(text)
        (fwd / name).chmod(0o644)
    (fwd / "u1").chmod(0o666)
    os.chown(fwd / "u2", 65534, 0)          # owned by nobody
    os.chown(fwd / "u5", 0, 65534)          # group nogroup
    return d


def _send(d: PymtaDaemon, rcpt: str) -> list[str]:
    d.submit_and_deliver("s@test.example", rcpt, b"Subject: x\n\nb\n")
    msgid = re.findall(r"(\w{6}-\w{6}-\w{2}) <= s@test\.example", d.log())[-1]
    return [ln.split(f"{msgid} ", 1)[1] for ln in d.log().splitlines()
            if f" {msgid} " in ln and " <= " not in ln]


def test_file_checks(d, tmp_path):
    fwd = tmp_path / "fwd"
    assert _send(d, "u1@test.example") == [
        f"== u1@test.example R=fwd defer (-1): bad mode (0100666) for {fwd}/u1: 022 bit(s) "
        "unexpected"]
    assert _send(d, "u2@test.example") == [
        f"== u2@test.example R=fwd defer (-1): bad owner for {fwd}/u2"]
    assert _send(d, "u5@test.example") == [
        f"== u5@test.example R=fwd defer (-1): bad group for {fwd}/u5"]
    # no file: declined (and so unrouteable here); no directory either: deferred
    assert _send(d, "u6@test.example")[0] == "** u6@test.example: Unrouteable address"
    (fwd / "u6").mkdir()
    d2 = PymtaDaemon(CONFIG.replace("${local_part_data}", "${local_part_data}/x/y"),
                     tmp_path / "other")
    d2.prepare()
    lines = _send(d2, "u1@test.example")
    assert lines[0].startswith("== u1@test.example R=fwd defer (-1): directory for ")


def test_smtp_code_and_syntax_errors(d, tmp_path):
    assert _send(d, "u3@test.example")[0] == "** u3@test.example R=fwd: gone away"
    lines = _send(d, "u4@test.example")
    assert lines[:2] == [
        'fwd router: skipped error: missing or malformed local part (expected word or '
        '"<") in "bad address here"',
        'fwd router: skipped error: domain missing or malformed in "@@@"']
    assert "=> x <u4@test.example> R=r T=local" in lines
    mbox = (tmp_path / "mbox-s").read_text()
    report = mbox.split("Subject: error(s) in forwarding or filtering\n", 1)[1]
    assert report.startswith(
        "Message-Id: ") or "Your forward file has errors:\n" in report
    assert ("Your forward file has errors:\n\nThe fwd router encountered the following "
            "error(s):\n\n  missing or malformed local part") in report
    # hide_child_in_errmsg: the bounce for nosuch@ does not name it, nor says why, and
    # it is left out of X-Failed-Recipients (exim4 4.96 writes the same)
    assert ("\n  an undisclosed address\n    (generated from u4@test.example)\n\n"
            in mbox)
    assert "nosuch" not in mbox.split("Subject: Mail delivery failed", 1)[0]


def test_repeat_use(d, tmp_path):
    # list1 -> list2; list2 descends from an address the lists router handled, so with
    # repeat_use false that router is skipped for it (it would give list1 and x)
    assert _send(d, "list1@test.example") == ["=> list2 <list1@test.example> R=r T=local",
                                              "Completed"]


def test_file_is_read_as_the_routers_user(tmp_path):
    # A delivery runs as exim_user (nobody here); a forward file in a home directory
    # closed to others (mode 0700, Debian's default for new users) is read as the user
    # that check_local_user or the user option names, as Exim reads it.
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    import pwd
    owner = pwd.getpwnam("daemon")
    conf = CONFIG.replace("begin routers\n", """begin routers
private:
  driver = redirect
  local_parts = u7
  user = daemon
  file = DIR/home/.forward
""")
    d = PymtaDaemon(conf, tmp_path)
    d.prepare()
    tmp_path.chmod(0o711)                   # as /home is: the user can reach its home
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / ".forward").write_text("x@test.example\n")
    (home / ".forward").chmod(0o600)
    for path in (home, home / ".forward"):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    assert _send(d, "u7@test.example") == ["=> x <u7@test.example> R=r T=local",
                                           "Completed"]
