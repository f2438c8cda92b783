"""Running a delivery command: shared by the pipe transport and transport filters.

Both split a configured command into arguments, expand each on its own (no shell), treat
``$pipe_addresses`` as one argument per address, refuse tainted arguments, and run the
command in a process group of its own as the delivery user, writing the message to its
standard input from a thread while its output is read.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any, Callable

from pymta.expand.command import command_argv
from pymta.osutil import become_user_in_child, kill_process_group

#: The status of a child that could not execute its command (Exim's convention).
EXEC_FAILED = 127


def pipe_addresses(job: Any) -> Callable[[str], list[str] | None]:
    """The ``special`` word hook for :func:`command_argv`: ``$pipe_addresses`` stands
    for the job's addresses, one argument each (exempt from the taint rule, as in
    Exim)."""
    def special(word: str) -> list[str] | None:
        if word == "$pipe_addresses":
            return [str(a.address) for a in job.addresses]
        return None
    return special


def build_argv(text: str, ctx: Any, owner: str, job: Any) -> list[str]:
    """``text`` split and expanded word by word (raises CommandExpansionFailed or
    CommandTainted from :mod:`pymta.expand.command`)."""
    return command_argv(text, ctx, owner, pipe_addresses(job))


def which(name: str, env: dict[str, str]) -> str | None:
    """The executable for a command name without a slash, sought in $PATH, as execvp
    would; None lets exec report it missing."""
    if "/" in name:
        return name
    for d in env.get("PATH", "").split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole process group (it may have started others)."""
    kill_process_group(proc.pid)


def feed_stdin(write: Callable[[Any], Any], stdin: Any) -> str | None:
    """Run ``write(stdin)`` and close it; the error text when writing failed for a
    reason other than the command no longer reading (whose exit status then decides,
    as in Exim)."""
    error = None
    try:
        write(stdin)
    except BrokenPipeError:
        pass
    except (OSError, ValueError) as e:
        error = str(getattr(e, "strerror", None) or e)
    try:
        stdin.close()
    except (BrokenPipeError, OSError):
        pass
    return error


def start(argv: list[str], env: dict[str, str], ids: tuple[int, int] | None,
          groups: list[int] | None, extra_setup: Callable[[], None] | None = None
          ) -> subprocess.Popen:
    """Start ``argv`` with pipes on stdin and stdout (stderr joined to stdout), in a
    session of its own, as the delivery user (raises OSError/SubprocessError when it
    cannot be started)."""
    def child_setup() -> None:
        become_user_in_child(ids, groups)
        if extra_setup is not None:
            extra_setup()
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, close_fds=True,
                            preexec_fn=child_setup, executable=which(argv[0], env))
