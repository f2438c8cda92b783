"""Admin users (admin_groups, the Exim group) and the options that keep queue listing
(queue_list_requires_admin) and prodding deliveries (prod_requires_admin) to them.

pymta's command line runs as ``nobody``, who is neither root nor the Exim user; the
refusals must read as Exim 4.96's do (tests/data/admin_users/exim4-nobody.txt, recorded
from Debian's setuid exim4 run as nobody, "exim:" there being "pymta:" here).
"""
from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from tests.support.asuser import run_pymta_as
from tests.support.daemon import PYMTA, REPO, pymta_env

DATA = Path(__file__).resolve().parent.parent / "data" / "admin_users"
MSGID = "1abcde-000000-00"

# exim_user is "daemon" (any existing user other than nobody and root will do).
BASE = """\
exim_user = daemon
primary_hostname = mx.test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
{extra}
begin routers
r:
  driver = redirect
  data = :blackhole:
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")


def _exim_cases() -> list[tuple[str, list[str], int, str]]:
    cases = []
    for line in (DATA / "exim4-nobody.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        case, args, rc, err = line.split("\t")
        cases.append((case, args.split(), int(rc), err.replace("exim:", "pymta:")))
    return cases


def _setup(tmp_path: Path, extra: str) -> Path:
    """A configuration and spool nobody can read (but not write) under tmp_path."""
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    (spool / "input").mkdir()
    conf = tmp_path / "pymta.conf"
    conf.write_text(BASE.format(spool=spool, extra=extra))
    for path in (conf, spool, spool / "log", spool / "input", *tmp_path.parents, tmp_path):
        mode = path.stat().st_mode & 0o7777
        os.chmod(path, mode | (0o005 if path.is_dir() else 0o004))
    return conf


def _run_as_nobody(conf: Path, args: list[str]) -> subprocess.CompletedProcess:
    pw = pwd.getpwnam("nobody")
    return run_pymta_as(pw.pw_uid, pw.pw_gid, conf, args)


@pytest.mark.parametrize("case,args,rc,err", [c for c in _exim_cases() if c[0] == "default"])
def test_non_admin_refused_by_default_as_exim(tmp_path, case, args, rc, err):
    # queue_list_requires_admin and prod_requires_admin are true unless set
    out = _run_as_nobody(_setup(tmp_path, ""), args)
    assert (out.returncode, out.stderr) == (rc, err + "\n")
    assert out.stdout == ""


@pytest.mark.parametrize("args", [["-bpc"], ["-bp"], ["-q"], ["-M", MSGID]])
def test_relaxed_options_let_non_admin_list_and_prod(tmp_path, args):
    conf = _setup(tmp_path, "no_queue_list_requires_admin\nno_prod_requires_admin")
    os.chmod(tmp_path / "spool" / "log", 0o777)    # the queue run logs its start and end
    out = _run_as_nobody(conf, args)
    assert out.stderr.lower().count("permission denied") == 0, out.stderr
    if args == ["-bpc"]:
        assert (out.returncode, out.stdout) == (0, "0\n")
    if args == ["-q"]:
        assert "Start queue run" in (tmp_path / "spool" / "log" / "mainlog").read_text()


def test_give_up_stays_admin_only_when_relaxed(tmp_path):
    expected = [c for c in _exim_cases() if c[0] == "relaxed" and c[1][0] == "-Mg"]
    assert expected and expected[0][2:] == (1, "pymta: permission denied")
    conf = _setup(tmp_path, "no_queue_list_requires_admin\nno_prod_requires_admin")
    out = _run_as_nobody(conf, ["-Mg", MSGID])
    assert (out.returncode, out.stderr) == (1, "pymta: permission denied\n")


@pytest.mark.parametrize("extra", ["admin_groups = nogroup",
                                   "admin_groups = users : nogroup",
                                   f"admin_groups = {pwd.getpwnam('nobody').pw_gid}",
                                   "exim_group = nogroup"])
def test_admin_by_group(tmp_path, extra):
    out = _run_as_nobody(_setup(tmp_path, extra), ["-bpc"])
    assert (out.returncode, out.stdout, out.stderr) == (0, "0\n", "")


def test_other_admin_group_is_not_enough(tmp_path):
    out = _run_as_nobody(_setup(tmp_path, "admin_groups = users"), ["-bpc"])
    assert (out.returncode, out.stderr) == (1, "pymta: permission denied\n")


def test_unknown_admin_group_is_a_configuration_error(tmp_path):
    conf = _setup(tmp_path, "admin_groups = nosuchgroup")
    out = _run_as_nobody(conf, ["-bpc"])
    assert out.returncode == 1
    assert out.stderr == (f"pymta: error in configuration file {conf}: admin_groups: "
                          "group nosuchgroup was not found\n")


def test_owner_of_the_spool_is_admin(tmp_path):
    # An ordinary user who runs pymta (etc/dev.conf as README.md shows it) receives and
    # delivers as itself whatever exim_user says, so the spool is its own: it may list it.
    conf = _setup(tmp_path, "")
    nobody = pwd.getpwnam("nobody")
    for path in (tmp_path / "spool", tmp_path / "spool" / "input"):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    out = _run_as_nobody(conf, ["-bpc"])
    assert (out.returncode, out.stdout, out.stderr) == (0, "0\n", "")


def test_root_is_admin(tmp_path):
    conf = _setup(tmp_path, "")
    out = subprocess.run(PYMTA + ["-C", str(conf), "-bpc"], capture_output=True, text=True,
                         env=pymta_env(), cwd=str(REPO), timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (0, "0\n", "")


@pytest.mark.parametrize("case,args,rc,err", [c for c in _exim_cases() if c[0] == "checks"])
def test_testing_flags_need_admin_with_commandline_checks_require_admin(
        tmp_path, case, args, rc, err):
    out = _run_as_nobody(_setup(tmp_path, "commandline_checks_require_admin"), args)
    assert (out.returncode, out.stderr) == (rc, err + "\n")
    assert out.stdout == ""


def test_testing_flags_open_to_all_by_default(tmp_path):
    out = _run_as_nobody(_setup(tmp_path, ""), ["-be", "x$primary_hostname"])
    assert (out.returncode, out.stdout) == (0, "xmx.test.example\n"), out.stderr
