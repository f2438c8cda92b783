"""Running the real pymta daemon and command line from tests.

:class:`PymtaDaemon` writes a configuration into a temporary directory, starts
``pymta -C conf -bdf -oX <port>`` as a separate process on a free loopback
port, waits for its SMTP banner and stops it (SIGTERM, then SIGKILL) at the
end.  The configuration text may use these macros, passed with ``-D``:

``SPOOL``       the spool directory (``<dir>/spool``)
``DIR``         the temporary directory itself
``SMTP_PORT``   the first listening port (``PORT2``... for more, see ``ports``)

plus any given in ``macros``.  :func:`run_pymta` runs one pymta command
line (``-bp``, ``-bt``, ``-q``, message submission ...) with the same
configuration.

Run as root, the daemon refuses to start without an unprivileged ``exim_user``, and its
receivers and deliveries run as that user: a configuration that does not set
``exim_user`` gets ``exim_user = nobody`` put in front, and the temporary directory is
given to that user (with its parent directories made searchable).  Run as another user,
nothing changes: the daemon runs as the caller.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional, Sequence

import psutil

from tests.support.ports import free_port
from tests.support.smtp import SmtpTestClient
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
#: argv prefix that runs pymta's main() from this checkout, installed or not
PYMTA = [sys.executable, "-c", "import sys; from pymta.cli.main import main; sys.exit(main())"]


def pymta_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment for a pymta subprocess: this checkout first on PYTHONPATH,
    and no PYMTA_CONFIG from the caller's environment; ``extra`` variables are added
    (for example ``PYMTA_DNS_SERVER``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env.pop("PYMTA_CONFIG", None)
    env.update(extra or {})
    return env


_env = pymta_env  # older name, used by some tests

#: the unprivileged user a daemon started as root runs as when the test names none
DEFAULT_EXIM_USER = "nobody"
_EXIM_USER_RE = re.compile(r"^[ \t]*exim_user[ \t]*=[ \t]*(\S+)", re.M)


def configured_exim_user(config_text: str) -> Optional[str]:
    """The ``exim_user`` a configuration text sets, or None."""
    m = _EXIM_USER_RE.search(config_text)
    return m.group(1) if m else None


def give_to_user(directory: str | os.PathLike, user: str | int) -> None:
    """As root: make ``directory`` belong to ``user`` and every parent directory
    searchable by others (pytest's temporary directories are 0700 root), so that a
    daemon running as ``user`` can use it.  Does nothing for other callers or for a
    user that does not exist."""
    if os.geteuid() != 0:
        return
    try:
        pw = (pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(str(user)))
    except KeyError:
        return
    path = Path(directory).resolve()
    os.chown(path, pw.pw_uid, pw.pw_gid)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, (mode & 0o7777) | 0o001)


def macro_args(macros: dict[str, str]) -> list[str]:
    """``-DNAME=value`` arguments for ``macros``."""
    return [f"-D{k}={v}" for k, v in macros.items()]


def run_pymta(args: Sequence[str], config: str | os.PathLike, *,
              macros: Optional[dict[str, str]] = None, input: bytes | str | None = None,
              timeout: float = 30.0, check: bool = False,
              env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``pymta -C config [-Dmacros] args`` and return the completed process.

    stdout and stderr are captured as text; ``input`` is fed on stdin; ``env`` adds
    environment variables.
    """
    if isinstance(input, str):
        input = input.encode()
    cmd = PYMTA + ["-C", str(config)] + macro_args(macros or {}) + list(args)
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                          env=pymta_env(env), cwd=str(REPO))
    out = subprocess.CompletedProcess(cmd, proc.returncode,
                                      proc.stdout.decode("utf-8", "replace"),
                                      proc.stderr.decode("utf-8", "replace"))
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out


#: Daemons started and not stopped yet (tests/conftest.py stops them after each test).
RUNNING: "set[PymtaDaemon]" = set()


class PymtaDaemon:
    """A pymta daemon in its own temporary directory, for integration tests.

    ``with PymtaDaemon(conf_text, tmp_path) as d: d.client() ...``; a daemon the test
    leaves running is stopped when the test ends.
    """

    def __init__(self, config_text: str, directory: str | os.PathLike, *,
                 ports: int | Sequence[int] = 1,
                 macros: Optional[dict[str, str]] = None, args: Iterable[str] = (),
                 start_timeout: float = 20.0, env: Optional[dict[str, str]] = None,
                 exim_user: Optional[str] = DEFAULT_EXIM_USER) -> None:
        """Prepare (but do not start) a daemon.

        ``ports`` free ports are chosen (or the given list used): ``SMTP_PORT``,
        ``PORT2``, ``PORT3`` ...; all of them are passed with ``-oX``.  ``args`` are extra
        command-line arguments (for example ``["-q1s"]`` or ``["-odq"]``); ``env`` adds
        environment variables for the daemon and for :meth:`run` (e.g.
        ``PYMTA_DNS_SERVER``).  As root, ``exim_user`` is set in a configuration that
        does not set it (None: leave the configuration as it is).
        """
        self.dir = Path(directory)
        self.spool = self.dir / "spool"
        self.config_path = self.dir / "pymta.conf"
        self.ports = (list(ports) if not isinstance(ports, int)
                      else [free_port() for _ in range(ports)])
        self.port = self.ports[0]
        self.macros = {"SPOOL": str(self.spool), "DIR": str(self.dir),
                       "SMTP_PORT": str(self.port)}
        for i, p in enumerate(self.ports[1:], start=2):
            self.macros[f"PORT{i}"] = str(p)
        self.macros.update(macros or {})
        self.exim_user = configured_exim_user(config_text)
        if self.exim_user is not None:
            self.exim_user = self.macros.get(self.exim_user, self.exim_user)
        if self.exim_user is None and exim_user is not None and os.geteuid() == 0:
            config_text = f"exim_user = {exim_user}\n" + config_text
            self.exim_user = exim_user
        self.config_text = config_text
        self.args = list(args)
        self.start_timeout = start_timeout
        self.env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self._out = None

    # -- lifecycle -------------------------------------------------------

    def prepare(self) -> None:
        """Write the configuration; as root, give the directory to the exim_user."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        if self.exim_user is not None:
            give_to_user(self.dir, self.exim_user)

    def start(self) -> "PymtaDaemon":
        """Write the configuration, start the daemon and wait for its banner."""
        self.prepare()
        (self.spool / "log").mkdir(parents=True, exist_ok=True)
        cmd = (PYMTA + ["-C", str(self.config_path)] + macro_args(self.macros)
               + ["-bdf", "-oX", ":".join(map(str, self.ports))] + self.args)
        self._out = open(self.dir / "daemon.out", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=pymta_env(self.env), cwd=str(REPO),
                                     start_new_session=True)
        RUNNING.add(self)
        try:
            wait_until(self._banner_ready, self.start_timeout, 0.05)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"pymta daemon did not start:\n{self.diagnostics()}") from None
        # The probe's session holds a connection slot until its receiver is idle again;
        # a test that counts connections (smtp_accept_queue, smtp_accept_max) must not
        # see it.
        try:
            wait_until(lambda: not self._sessions_open(), self.start_timeout, 0.02)
        except TimeoutError:
            pass
        return self

    def _sessions_open(self) -> bool:
        """Whether any of the daemon's processes is in an SMTP session (its title)."""
        assert self.proc is not None
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return False
        for child in children:
            try:
                if "handling incoming" in " ".join(child.cmdline()):
                    return True
            except psutil.Error:
                continue
        return False

    def _banner_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"pymta daemon exited with {self.proc.returncode}:\n"
                               f"{self.diagnostics()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                ok = s.recv(512).startswith(b"220")
                s.sendall(b"QUIT\r\n")
                while s.recv(512):          # until the receiver has closed
                    pass
                return ok
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM the daemon and wait; SIGKILL its process group if it hangs.

        Returns the exit status (None if it never started).
        """
        if self.proc is None:
            return None
        RUNNING.discard(self)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children that outlive the master would hold ports and spool locks.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        if self._out is not None:
            self._out.close()
            self._out = None
        return self.proc.returncode

    def signal(self, signum: int) -> None:
        """Send ``signum`` (e.g. SIGHUP) to the master process."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def __enter__(self) -> "PymtaDaemon":
        if self.proc is not None and self.proc.poll() is None:
            return self         # "with d.start():": not a second daemon (it would leak)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- using it --------------------------------------------------------

    def client(self, port: Optional[int] = None, timeout: float = 10.0) -> SmtpTestClient:
        """An SMTP client connected to the daemon (first port by default)."""
        return SmtpTestClient(port or self.port, timeout=timeout)

    def submit_and_deliver(self, sender: str, recipient: str, message: bytes) -> None:
        """Without starting the daemon: submit ``message`` on the command line and
        deliver it at once (``-odi -f sender recipient``), as a sending MTA would."""
        self.prepare()
        (self.spool / "log").mkdir(parents=True, exist_ok=True)
        proc = self.run("-odi", "-f", sender, recipient, input=message)
        assert proc.returncode == 0, proc.stderr + self.log() + self.log("panic")

    def run(self, *args: str, input: bytes | str | None = None,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a pymta command line with this daemon's configuration and macros."""
        return run_pymta(args, self.config_path, macros=self.macros, input=input,
                         timeout=timeout, env=self.env)

    def log(self, name: str = "main") -> str:
        """Contents of ``spool/log/<name>log`` ('' if it does not exist yet)."""
        path = self.spool / "log" / f"{name}log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 10.0, name: str = "main",
                     count: int = 1) -> list[str]:
        """Wait until ``count`` lines of a log match the regex; return the matching lines."""
        rx = re.compile(pattern)

        def matches() -> list[str]:
            found = [ln for ln in self.log(name).splitlines() if rx.search(ln)]
            return found if len(found) >= count else []

        try:
            return wait_until(matches, timeout)
        except TimeoutError:
            raise AssertionError(f"no {name}log line matching {pattern!r} within {timeout}s:\n"
                                 f"{self.diagnostics()}") from None

    def queue(self) -> list[str]:
        """Message ids whose -H file is in the spool (the queue), sorted."""
        ids = []
        for root, _dirs, files in os.walk(self.spool / "input"):
            ids += [f[:-2] for f in files if f.endswith("-H")]
        return sorted(ids)

    def diagnostics(self) -> str:
        """Daemon output and log tails, for assertion messages."""
        parts = []
        try:
            parts.append("daemon output:\n" + (self.dir / "daemon.out").read_text(
                errors="replace")[-2000:])
        except FileNotFoundError:
            pass
        for name in ("main", "panic"):
            text = self.log(name)
            if text:
                parts.append(f"{name}log:\n" + text[-2000:])
        return "\n".join(parts)
