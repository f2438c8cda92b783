"""The pipe transport: the message on a command's standard input.

The command is split into arguments before expansion and each argument is expanded on
its own, so a value from the message can never add arguments or shell syntax; no part of
the expanded command may be tainted ($pipe_addresses, which inserts each address as an
argument of its own, is the one exception).  With ``use_shell`` the expanded command is
handed to ``/bin/sh -c`` instead.

The command runs in a new process group (a timeout kills the whole group) as the
transport's user, or the router's (check_local_user), with the environment of the
manual's "Environment variables" section.  Standard output and standard error are one
pipe, read while the message is written; at most ``max_output`` bytes are kept (the
command is killed beyond that).  How the exit status, a signal, a timeout and the output
turn into delivered, deferred, failed or frozen follows the Exim 4.96 manual (chapter
"The pipe transport"), with Exim's wording in the log.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from pymta.config.model import ConfigError
from pymta.config.option_tables import driver_options
from pymta.config.values import main_option
from pymta.drivers import register
from pymta.errnos import EximErrno
from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.expand.command import CommandExpansionFailed, CommandTainted, command_argv
from pymta.expand.evaluator import split_raw_command
from pymta.expand.lists import nonempty_items
from pymta.osutil import can_switch_ids
from pymta.taint import is_tainted
from pymta.transports import command
from pymta.transports.base import (
    Transport,
    TransportError,
    check_never_users,
    set_results,
)
from pymta.transports.command import EXEC_FAILED, pipe_addresses
from pymta.transports.content import body_size, write_message
from pymta.transports.filter import TransportFilter, TransportFilterFailed, transport_filter

#: What sysexits.h codes mean, for the log line of a failed command (64..78).
SYSEXITS = {64: "usage error", 65: "data format error", 66: "cannot open input",
            67: "addressee unknown", 68: "host name unknown", 69: "service unavailable",
            70: "internal software error", 71: "system error",
            72: "critical OS file missing", 73: "can't create output file",
            74: "input/output error", 75: "temporary error", 76: "remote protocol error",
            77: "permission denied", 78: "configuration error"}


@dataclass
class PipeRun:
    """How the command ended: exit status (or the signal that ended it), whether it
    timed out or could not be started, and what it wrote (at most max_output bytes)."""

    status: int | None = None
    signal: int | None = None
    timed_out: bool = False
    exec_error: str | None = None
    output: bytes = b""
    output_overflow: bool = False
    write_error: str | None = None          # writing the message failed (not EPIPE)
    filter_failure: TransportFilterFailed | None = None     # transport_filter failed


def _signal_name(signum: int) -> str:
    try:
        return signal.strsignal(signum) or f"signal {signum}"
    except ValueError:
        return f"signal {signum}"


@register("transport", "pipe")
class PipeTransport(Transport):
    """Deliver by running a command with the message on its standard input."""

    options = driver_options("transport", "pipe")
    is_local = True

    # -- configuration checks (Exim refuses these combinations at start) ----------
    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        if self.opt("return_output") and self.opt("return_fail_output"):
            raise ConfigError(f"both return_output and return_fail_output set for "
                              f"{self.name} transport")
        if self.opt("log_output") and self.opt("log_fail_output"):
            raise ConfigError(f"both log_output and log_fail_output set for "
                              f"{self.name} transport")
        if self.opt("use_shell") and (self.opt("allow_commands") or
                                      self.opt("restrict_to_path")):
            raise ConfigError(f"both use_shell and allow_commands or restrict_to_path "
                              f"set for {self.name} transport")

    def deliver(self, job: Any) -> None:
        try:
            self._deliver(job)
        except TransportError as e:
            set_results(job.addresses, e.result, e.message, e.errno)
            for a in job.addresses:
                a.panic = e.panic
                # a command that could not be set up: Exim's bounce gives no reason
                a.user_message = ""

    # -- the command ----------------------------------------------------------
    def _argv(self, job: Any, ctx: Any) -> list[str]:
        first = job.addresses[0]
        address_pipe = first.address[1:].lstrip() if first.kind == "pipe" else None
        if address_pipe is not None and first.expand_pipe and not self.opt("force_command"):
            # a filter's pipe command: split, then each argument expanded, as Exim does
            text: str = address_pipe
        elif address_pipe is not None and not self.opt("force_command"):
            # A "|command" from a redirection is split but not expanded (a traditional
            # .forward file); the transport's command is not used.
            argv = split_raw_command(address_pipe)
            if self.opt("use_shell"):
                argv = ["/bin/sh", "-c", address_pipe]
            self._check_untainted(argv)
            return self._resolve(argv)
        else:
            text = self.opt("command")
        if not text:
            raise TransportError(f"no command specified for {self.name} transport",
                                 errno=EximErrno.UNKNOWNERROR)
        if self.opt("use_shell"):
            value = self._expand(text, text, ctx)
            argv = ["/bin/sh", "-c", value]
            self._check_untainted(argv)
            return argv
        addresses = pipe_addresses(job)

        def special(word: str) -> list[str] | None:
            # the addresses, one argument each (exempt from the taint rule)
            if word == "$address_pipe" and self.opt("force_command") and address_pipe:
                return split_raw_command(address_pipe)
            return addresses(word)
        try:
            argv = command_argv(text, ctx, f"{self.name} transport", special)
        except CommandExpansionFailed as e:
            # Exim 4.96: the transport's own command failing to expand defers as the
            # configuration's fault (PANIC); a filter's "|command" fails.
            if address_pipe is not None and not self.opt("force_command"):
                raise TransportError(str(e), "fail", 0) from None
            raise TransportError(str(e), "defer", 0, panic=True) from None
        except CommandTainted as e:
            raise TransportError(str(e), "fail") from None
        if not argv or not argv[0]:
            raise TransportError(f"no command specified for {self.name} transport")
        return self._resolve(argv)

    def _expand(self, word: str, command: str, ctx: Any) -> str:
        try:
            return expand_string(word, ctx)
        except ExpandFail:
            raise TransportError(f'Expansion of "{word}" from command "{command}" in '
                                 f"{self.name} transport failed (forced)", "defer", 0)
        except ExpandError as e:
            raise TransportError(f'Expansion of "{word}" from command "{command}" in '
                                 f"{self.name} transport failed: {e}", "defer", 0,
                                 panic=True)

    def _check_untainted(self, argv: list[str]) -> None:
        for n, arg in enumerate(argv):
            if is_tainted(arg):
                raise TransportError(f"Tainted arg {n} for {self.name} transport command: "
                                     f"'{arg}'", "fail")

    def _resolve(self, argv: list[str]) -> list[str]:
        """Apply allow_commands and restrict_to_path (Exim's rules) to the command name."""
        name = argv[0]
        allowed = nonempty_items(self.opt("allow_commands") or "", ":")
        restrict = bool(self.opt("restrict_to_path"))
        if allowed or restrict:
            ok = name in allowed or (restrict and "/" not in name)
            if not ok:
                raise TransportError(f'"{name}" command not permitted by {self.name} '
                                     "transport", "fail")
        if restrict and "/" in name and name not in allowed:
            raise TransportError(f'"{name}" contains "/" (restrict_to_path is set for '
                                 f"{self.name} transport)", "fail")
        return argv

    # -- environment, identity ------------------------------------------------
    def _environment(self, job: Any, ctx: Any, path: str) -> dict[str, str]:
        first = job.addresses[0]
        v = ctx.variables if ctx is not None else {}
        top = first.parent if first.kind != "address" and first.parent is not None else first
        single = len(job.addresses) == 1
        local_part = str(v.get("local_part") or top.local_part) if single else ""
        home = self.working_directories(ctx, first)[0] or ""
        env = {
            "LOCAL_PART": local_part, "LOGNAME": local_part, "USER": local_part,
            "LOCAL_PART_PREFIX": (top.prefix or "") if single else "",
            "LOCAL_PART_SUFFIX": (top.suffix or "") if single else "",
            "DOMAIN": str(v.get("domain") or top.domain), "HOME": home,
            "MESSAGE_ID": job.message.id, "PATH": path, "SHELL": "/bin/sh",
            "QUALIFY_DOMAIN": str(main_option(self.config, "qualify_domain", "")
                                  or main_option(self.config, "primary_hostname", "")),
            "RECIPIENT": top.address if single else "", "SENDER": job.message.sender,
        }
        tz = main_option(self.config, "timezone")
        if tz:
            env["TZ"] = str(tz)
        if first.hosts:
            env["HOST"] = first.hosts[0].name
        extra = self.opt("environment")
        if extra:
            try:
                for item in nonempty_items(str(expand_string(extra, ctx)), ":"):
                    name, _, value = item.partition("=")
                    env[name.strip()] = value
            except (ExpandError, ExpandFail) as e:
                raise TransportError(f'Failed to expand environment "{extra}" for '
                                     f"{self.name} transport: {e}", errno=EximErrno.EXPANDFAIL)
        return env

    def _ids(self, job: Any, ctx: Any) -> tuple[int, int] | None:
        ids = self.delivery_ids(ctx, job.addresses[0])
        if ids is None and self.opt("pipe_as_creator") and can_switch_ids() \
                and not self.opt("user"):
            # The ids of whoever submitted the message (from the -H file).
            ids = (job.message.originator_uid, job.message.originator_gid)
        if ids is None and can_switch_ids():
            a = job.addresses[0]
            raise TransportError(f"Neither the {self.name} transport nor the {a.router} "
                                 f"router set a uid for local delivery of {a.address}")
        if ids is not None:
            check_never_users(self.config, ids[0], self.name)
        return ids

    # -- running it -------------------------------------------------------------
    def _deliver(self, job: Any) -> None:
        ctx = self.context(job, job.addresses[0])
        if len(job.addresses) > 1 and ctx is not None:
            # A batch (batch_max): no one local part; $pipe_addresses lists them all.
            for name in ("local_part", "local_part_prefix", "local_part_suffix",
                         "local_part_data"):
                ctx.variables[name] = ""
        rp = self.return_path(job)
        self.check_size_limit(job, ctx, body_size(job.data_path)
                              + sum(len(h.text) for h in job.message.headers))
        argv = self._argv(job, ctx)
        path = str(expand_string(self.opt("path") or "/bin:/usr/bin", ctx))
        env = self._environment(job, ctx, path)
        ids = self._ids(job, ctx)
        with open(job.data_path, "rb") as data:    # opened while still privileged
            run = self._run(argv, env, ids, job, ctx, rp, data)
        self._outcome(job, argv, run)
        for a in job.addresses:
            # Whatever went wrong once the command was started (a status, a signal, a
            # timeout...), Exim's bounce says only this; the details are in the log.
            if a.result != "ok" and a.user_message is None:
                a.user_message = "local delivery failed"

    def _message_bytes_writer(self, job: Any, ctx: Any, rp: str, data: Any,
                              tf: TransportFilter | None = None):
        bsmtp = bool(self.opt("use_bsmtp"))
        crlf = bool(self.opt("use_crlf"))
        prefix = suffix = b""
        if not bsmtp:
            for name in ("message_prefix", "message_suffix"):
                text = self.opt(name)
                if text:
                    try:
                        value = str(expand_string(text, ctx.child(return_path=rp)))
                    except ExpandFail:
                        value = ""
                    except ExpandError as e:
                        raise TransportError(f'Expansion of "{text}" ({name} for '
                                             f"{self.name} transport) failed: {e}",
                                             errno=EximErrno.EXPANDFAIL)
                    if name == "message_prefix":
                        prefix = value.encode("utf-8", "surrogateescape")
                    else:
                        suffix = value.encode("utf-8", "surrogateescape")
        else:
            nl = "\r\n" if crlf else "\n"
            prefix = self.bsmtp_envelope(job, rp, nl)
        check = None if bsmtp else (self.opt("check_string") or None)
        escape = self.opt("escape_string")
        header = self.header_block(job, ctx, rp)

        def write(out: Any) -> None:
            written = write_message(
                          out, header, data, prefix=prefix, suffix=suffix, use_crlf=crlf,
                          dot_stuff=bsmtp, end_dot=bsmtp,
                          check_string=check.encode() if check and escape is not None
                          else None,
                          escape_string=escape.encode() if check and escape is not None
                          else None,
                          body_only=self.opt("body_only"),
                          headers_only=self.opt("headers_only"), transport_filter=tf)
            for a in job.addresses:
                a.delivered_size = written       # S= on the delivery line
        return write

    def _run(self, argv: list[str], env: dict[str, str], ids: tuple[int, int] | None,
             job: Any, ctx: Any, rp: str, data: Any) -> PipeRun:
        groups = self.delivery_groups(ids, job.addresses[0])
        tf = transport_filter(self, job, ctx, ids, groups)
        write = self._message_bytes_writer(job, ctx, rp, data, tf)
        umask = int(self.opt("umask"))
        coredump = bool(self.opt("permit_coredump"))
        _home, cwd = self.working_directories(ctx, job.addresses[0])

        def child_setup() -> None:
            os.umask(umask)
            os.chdir(cwd)
            if not coredump:        # Exim inhibits core dumps during delivery
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        run = PipeRun()
        try:
            proc = command.start(argv, env, ids, groups, child_setup)
        except (OSError, subprocess.SubprocessError) as e:
            run.exec_error = str(getattr(e, "strerror", None) or e)
            run.status = EXEC_FAILED
            return run
        timeout = int(self.opt("timeout") or 0)
        deadline = time.monotonic() + timeout if timeout > 0 else None
        max_output = int(self.opt("max_output") or 0)
        assert proc.stdin is not None and proc.stdout is not None
        reader = threading.Thread(target=self._read_output,
                                  args=(proc, run, max_output), daemon=True)
        reader.start()
        stdin = proc.stdin
        writer = threading.Thread(target=self._feed, args=(write, stdin, run), daemon=True)
        writer.start()
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                run.timed_out = True
                command.kill_group(proc)
                break
            try:
                proc.wait(timeout=remaining if remaining is not None else None)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()
        writer.join(5)
        reader.join(5)
        if proc.returncode is not None and proc.returncode < 0:
            run.signal = -proc.returncode
        else:
            run.status = proc.returncode
        return run

    @staticmethod
    def _feed(write: Any, stdin: Any, run: PipeRun) -> None:
        def write_filtered(out: Any) -> None:
            try:
                write(out)
            except TransportFilterFailed as e:
                # the command's stdin is closed all the same; the outcome is the filter's
                run.filter_failure = e
        run.write_error = command.feed_stdin(write_filtered, stdin)

    def _read_output(self, proc: subprocess.Popen, run: PipeRun, limit: int) -> None:
        out = proc.stdout
        assert out is not None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                break
            if limit and size + len(chunk) > limit:
                chunks.append(chunk[:max(0, limit - size)])
                run.output_overflow = True
                command.kill_group(proc)
                break
            chunks.append(chunk)
            size += len(chunk)
        run.output = b"".join(chunks)

    # -- the outcome -------------------------------------------------------------
    def _outcome(self, job: Any, argv: list[str], run: PipeRun) -> None:
        addrs = job.addresses
        output = run.output.decode("utf-8", "replace")
        first_line = output.split("\n", 1)[0].rstrip("\r") if output else ""
        null_sender = not job.message.sender
        command = argv[0]
        temp = self._temp_errors()

        if run.timed_out:
            result = "defer" if self.opt("timeout_defer") else "fail"
            # what the command wrote before it was killed is returned, as by Exim 4.96
            returned = bool((self.opt("return_output") or self.opt("return_fail_output"))
                            and output and not null_sender)
            self._finish(job, result, "pipe delivery process timed out", output, first_line,
                         returned=returned)
            return
        if run.filter_failure is not None and not run.timed_out:
            failure = run.filter_failure
            if failure.timed_out:
                # as a timeout of the command itself (Exim 4.96's wording)
                set_results(addrs, "defer" if self.opt("timeout_defer") else "fail",
                            "transport filter timeout while writing to pipe", 0)
            else:
                text = failure.text()
                set_results(addrs, "defer", text[0].upper() + text[1:], failure.errno)
            return
        if run.write_error is not None and not run.timed_out:
            set_results(addrs, "defer", f"error writing the message to the {self.name} "
                        f"transport's command: {run.write_error}", EximErrno.UNKNOWNERROR)
            return
        if run.output_overflow:
            set_results(addrs, "fail", f"Command output exceeded {self.opt('max_output')} "
                        f"bytes in {self.name} transport", 0)
            return
        if run.signal is not None:
            message = (f"Child process of {self.name} transport (running command "
                       f"\"{command}\") was terminated by signal {run.signal} "
                       f"({_signal_name(run.signal)})")
            freeze = bool(self.opt("freeze_signal"))
            self._finish(job, "defer" if freeze else "fail", message, output,
                         first_line, freeze=freeze, failed=True)
            return
        status = run.status or 0
        if run.exec_error is not None and self.opt("freeze_exec_fail"):
            self._finish(job, "defer", f"Child process of {self.name} transport returned "
                         f"{EXEC_FAILED} (could mean unable to exec or command does not "
                         f"exist) from command: {command}", output, first_line, freeze=True,
                         failed=True)
            return
        if status != 0 and self.opt("ignore_status") and run.exec_error is None:
            status = 0
        if status == 0:
            if self.opt("return_output") and output and not null_sender:
                self._finish(job, "fail", "return message generated", output, first_line,
                             failed=True, returned=True, generated=True)
                return
            if self.opt("log_output") and first_line:
                self._log_output(job, first_line)
            set_results(addrs, "ok")
            return
        message = f"Child process of {self.name} transport returned {status}"
        if status == EXEC_FAILED:
            message += " (could mean unable to exec or command does not exist)"
        elif status in SYSEXITS:
            message += f" (could mean {SYSEXITS[status]})"
        elif status > 128:
            message += (f" (could mean shell command ended by signal {status - 128} "
                        f"({_signal_name(status - 128)}))")
        message += f" from command: {command}"
        if temp == "*" or status in temp:
            if (self.opt("log_defer_output") or self.opt("log_output")) and first_line:
                self._log_output(job, first_line)
            set_results(addrs, "defer", message, 0)
            return
        returned = bool((self.opt("return_output") or self.opt("return_fail_output"))
                        and output and not null_sender)
        self._finish(job, "fail", message, output, first_line, failed=True,
                     returned=returned)

    def _finish(self, job: Any, result: str, message: str, output: str, first_line: str,
                *, freeze: bool = False, failed: bool = False, returned: bool = False,
                generated: bool = False) -> None:
        if failed and first_line and (self.opt("log_output") or self.opt("log_fail_output")):
            self._log_output(job, first_line)
        set_results(job.addresses, result, message, 0)
        for a in job.addresses:
            # The bounce says only this; the details are in the log (as Exim), also
            # above returned output.  A command that succeeded but wrote output
            # (``generated``) is bounced with the output and no reason, as Exim does.
            a.user_message = "" if generated else "local delivery failed"
            a.returned_output = output if returned else None
            if freeze:
                a.freeze = True

    def _log_output(self, job: Any, line: str) -> None:
        for a in job.addresses:
            job.log.main(f"<{a.address}>: {self.name} transport output: {line}",
                         job.message.id)

    def _temp_errors(self) -> str | set[int]:
        text = str(self.opt("temp_errors") or "").strip()
        if text == "*":
            return "*"
        codes = set()
        for item in nonempty_items(text, ":"):
            try:
                codes.add(int(item))
            except ValueError:
                pass
        return codes
