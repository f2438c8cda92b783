"""Run pymta's command line as another (unprivileged) uid, from a root test process.

The test interpreter may live where other users cannot reach it (a pyenv build under
/root), so a Python of the same version that they may run is chosen, with this checkout
and the installed dependencies on its PYTHONPATH.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests.support.daemon import REPO, pymta_env

_MAIN = "import sys; from pymta.cli.main import main; sys.exit(main())"


def _world_runnable(path: str) -> bool:
    real = Path(path).resolve()
    return (real.exists() and bool(real.stat().st_mode & 0o001)
            and all(p.stat().st_mode & 0o001 for p in real.parents))


def interpreter() -> tuple[str, str]:
    """(python, PYTHONPATH) usable by any user; skips the test when there is none."""
    path = os.pathsep.join([str(REPO), *site.getsitepackages()])
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, shutil.which(version) or "", f"/usr/bin/{version}"):
        if candidate and _world_runnable(candidate):
            return candidate, path
    pytest.skip(f"no {version} that other users may run")


def become(uid: int, gid: int) -> Callable[[], None]:
    """A preexec_fn that drops to ``uid``/``gid`` with no supplementary groups."""
    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


def run_pymta_as(uid: int, gid: int, config: str | os.PathLike, args: Sequence[str],
                 input: str | None = None) -> subprocess.CompletedProcess:
    """``pymta -C config args`` as ``uid``/``gid`` (the caller must be root)."""
    python, path = interpreter()
    return subprocess.run([python, "-c", _MAIN, "-C", str(config), *args],
                          capture_output=True, text=True, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          env=pymta_env({"PYTHONPATH": path}), cwd=str(REPO),
                          preexec_fn=become(uid, gid), timeout=30)


def open_to_all(*paths: Path) -> None:
    """Let other users read the files and search the directories (and their parents)."""
    for path in paths:
        for p in (*path.parents, path):
            mode = p.stat().st_mode & 0o7777
            os.chmod(p, mode | (0o005 if p.is_dir() else 0o004))
