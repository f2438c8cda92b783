"""exim_user handling: resolving it, switching to it, and files root leaves behind."""
from __future__ import annotations

import os
import pwd
from types import SimpleNamespace

import pytest

from pymta.config import load_config
from pymta.daemon.util import PrivilegeError, drop_privileges, exim_ids, root_exim_ids
from pymta.hints.db import HintsDB
from pymta.log import Logger
from pymta.osutil import switched_ids
from tests.support.daemon import give_to_user

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _config(tmp_path, text: str):
    path = tmp_path / "c.conf"
    path.write_text(text)
    return load_config(str(path)), str(path)


def test_unknown_exim_user_is_reported_with_file_and_line(tmp_path):
    config, path = _config(tmp_path, "qualify_domain = x.example\nexim_user = no_such_user_x\n")
    with pytest.raises(PrivilegeError) as e:
        exim_ids(config)
    assert str(e.value) == f'exim_user: user "no_such_user_x" was not found (set in {path} line 2)'


def test_unknown_exim_group_and_root_are_refused(tmp_path):
    config, path = _config(tmp_path, "exim_user = nobody\nexim_group = no_such_group_x\n")
    with pytest.raises(PrivilegeError, match=r'exim_group: group "no_such_group_x" was not '
                                             rf"found \(set in {path} line 2\)"):
        exim_ids(config)
    config, _ = _config(tmp_path, "exim_user = 0\n")
    with pytest.raises(PrivilegeError, match="exim_user must not be root"):
        exim_ids(config)


def test_exim_ids_resolve_user_and_group(tmp_path):
    pw = pwd.getpwnam("nobody")
    config, _ = _config(tmp_path, "exim_user = nobody\n")
    ids = exim_ids(config)
    assert (ids.uid, ids.gid, ids.name) == (pw.pw_uid, pw.pw_gid, "nobody")
    config, _ = _config(tmp_path, "exim_user = nobody\nexim_group = 0\n")
    assert exim_ids(config).gid == 0
    config, _ = _config(tmp_path, "qualify_domain = x.example\n")
    assert exim_ids(config) is None


@root_only
def test_root_needs_exim_user(tmp_path):
    config, path = _config(tmp_path, "qualify_domain = x.example\n")
    with pytest.raises(PrivilegeError, match=f"exim_user is not set in {path}"):
        root_exim_ids(config)


def _in_child(body) -> str:
    """Run ``body`` in a forked child (ids changed there stay there); its result text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, str(body()).encode())
        except BaseException as exc:
            os.write(w, f"error {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 4000).decode()
    os.close(r)
    return out


@root_only
def test_worker_that_kept_saved_root_delivers_as_another_user_and_back(tmp_path):
    """A delivery worker runs as exim_user with a saved root uid: it can switch to a local
    user for a delivery and returns to exim_user afterwards."""
    nobody, daemon = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
    give_to_user(tmp_path, "nobody")          # parents searchable
    os.chmod(tmp_path, 0o1777)
    cfg = SimpleNamespace(main=SimpleNamespace(exim_user="nobody", exim_group=None))

    def body():
        drop_privileges(cfg, keep_root=True)
        with switched_ids(daemon.pw_uid, daemon.pw_gid):
            open(tmp_path / "delivered", "w").close()
            inside = os.geteuid()
        return f"{inside} {os.getresuid()}"
    assert _in_child(body) == f"{daemon.pw_uid} {(nobody.pw_uid,) * 2 + (0,)}"
    assert (tmp_path / "delivered").stat().st_uid == daemon.pw_uid


@root_only
def test_files_root_creates_in_exim_users_directories_belong_to_exim_user(tmp_path):
    """Log files and hints databases a root process creates in directories that belong
    to exim_user are given to exim_user (the daemon's receivers must write them)."""
    nobody = pwd.getpwnam("nobody")
    spool = tmp_path / "spool"
    for d in (spool, spool / "log", spool / "db"):
        d.mkdir()
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    config = SimpleNamespace(main=SimpleNamespace(spool_directory=str(spool),
                                                  log_file_path=None))
    log = Logger(config)
    log.main("written by root")
    log.close()
    with HintsDB(str(spool), "retry") as db:
        db.put("k", b"v")
    created = [spool / "log" / "mainlog", spool / "db" / "retry", spool / "db" / "retry-lock"]
    assert {p.stat().st_uid for p in created} == {nobody.pw_uid}
