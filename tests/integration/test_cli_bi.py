"""-bi: bi_command is run (no shell, no PATH search) with -oA's value as its argument;
unset, -bi does nothing.  Exim 4.96's behaviour and wording, recorded with exim4:
``bi_command = /bin/echo`` printed the -oA value (or an empty line), a command that
cannot be executed gave "exim: exec '<command>' failed: No such file or directory" and
status 1, and an unset bi_command status 0 without output."""
from __future__ import annotations

import pytest

from tests.support.daemon import run_pymta


def _conf(tmp_path, line: str):
    conf = tmp_path / "pymta.conf"
    conf.write_text(f"primary_hostname = test.example\n{line}\n")
    return conf


@pytest.mark.parametrize("args,out", [(["-bi"], "\n"),
                                      (["-bi", "-oA", "/etc/aliases"], "/etc/aliases\n"),
                                      (["-oA/etc/al2", "-bi"], "/etc/al2\n")])
def test_bi_runs_bi_command(tmp_path, args, out):
    r = run_pymta(args, _conf(tmp_path, "bi_command = /bin/echo"))
    assert (r.returncode, r.stdout, r.stderr) == (0, out, "")


@pytest.mark.parametrize("command", ["/nonexistent/cmd", "echo", "/bin/echo hello"])
def test_bi_command_that_cannot_run(tmp_path, command):
    r = run_pymta(["-bi"], _conf(tmp_path, f"bi_command = {command}"))
    assert (r.returncode, r.stderr) == \
        (1, f"pymta: exec '{command}' failed: No such file or directory\n")


def test_bi_without_bi_command_does_nothing(tmp_path):
    r = run_pymta(["-bi"], _conf(tmp_path, ""))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
