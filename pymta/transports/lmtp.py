"""The lmtp transport: LMTP (RFC 2033) over a unix socket or with a command's stdin and
stdout, one reply per recipient after the data (Exim 4.96 manual, "The lmtp transport").

A batch of addresses (batch_max) is one LMTP transaction: LHLO, MAIL, one RCPT per
address, DATA, then as many replies as there were accepted RCPTs, each deciding its own
address.  A 5xx fails the address it belongs to and a 4xx defers it; a failure of the
whole exchange (connection, LHLO, MAIL, DATA, a timeout, the server going away) decides
every address still without a reply, so a server that dies mid-batch defers exactly the
recipients it had not answered.
"""
from __future__ import annotations

import os
import selectors
import socket
import subprocess
import time
from typing import Any, Protocol

from pymta.config.model import ConfigError
from pymta.config.option_tables import driver_options
from pymta.config.values import main_option
from pymta.drivers import register
from pymta.errnos import EximErrno
from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.expand.command import CommandExpansionFailed, CommandTainted, command_argv
from pymta.osutil import become_user_in_child
from pymta.smtp.client import ReplyParser, SmtpReply
from pymta.taint import is_tainted
from pymta.transports.base import Transport, TransportError, check_never_users, set_results
from pymta.transports.content import write_message
from pymta.transports.filter import TransportFilter, TransportFilterFailed, transport_filter


class LmtpTimeout(Exception):
    """No complete reply within the transport's timeout."""


class LmtpGone(Exception):
    """The server closed the connection (or the command exited)."""


class Channel(Protocol):
    """Where LMTP bytes go and come from."""

    def send(self, data: bytes) -> None: ...

    def recv(self, deadline: float) -> bytes: ...

    def close(self) -> None: ...


class SocketChannel:
    """LMTP over a unix-domain socket."""

    def __init__(self, path: str, timeout: float):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.settimeout(None)
        self.sock.sendall(data)

    def recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LmtpTimeout()
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            raise LmtpTimeout() from None

    def close(self) -> None:
        self.sock.close()


class CommandChannel:
    """LMTP with a command: its standard input and output."""

    def __init__(self, argv: list[str], ids: tuple[int, int] | None,
                 groups: list[int] | None = None):
        def child_setup() -> None:
            become_user_in_child(ids, groups)
            os.chdir("/")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     close_fds=True, preexec_fn=child_setup,
                                     env={"PATH": "/bin:/usr/bin"})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout

    def send(self, data: bytes) -> None:
        self._in.write(data)
        self._in.flush()

    def recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LmtpTimeout()
        with selectors.DefaultSelector() as sel:
            sel.register(self._out, selectors.EVENT_READ)
            if not sel.select(remaining):
                raise LmtpTimeout()
        return os.read(self._out.fileno(), 65536)

    def close(self) -> None:
        for f in (self._in, self._out):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Writer:
    """A file-like ``write`` for :func:`write_message` onto a channel."""

    def __init__(self, channel: Channel):
        self.channel = channel

    def write(self, data: bytes) -> int:
        if data:
            self.channel.send(bytes(data))
        return len(data)


@register("transport", "lmtp")
class LmtpTransport(Transport):
    """Local delivery to an LMTP server (Dovecot, Cyrus) by socket or command."""

    options = driver_options("transport", "lmtp")
    is_local = True

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        if bool(self.opt("socket")) == bool(self.opt("command")):
            raise ConfigError(f"exactly one of socket or command must be set for the "
                              f"{self.name} transport")

    def deliver(self, job: Any) -> None:
        pending = list(job.addresses)
        channel: Channel | None = None
        mid_data = False
        try:
            ctx = self.context(job, job.addresses[0])
            rp = self.return_path(job)
            ids = self.delivery_ids(ctx, job.addresses[0])
            if ids is not None:
                check_never_users(self.config, ids[0], self.name)
            tf = transport_filter(self, job, ctx, ids,
                                  self.delivery_groups(ids, job.addresses[0]))
            channel = self._open(job, ctx)
            self._transaction(job, channel, rp, ctx, pending, tf)
        except TransportFilterFailed as e:
            # Dropped in the middle of the data (no final dot): the server discards it.
            mid_data = True
            message = ("LMTP timeout after sending data block" if e.timed_out
                       else e.text())
            set_results(pending, "defer", message,
                        EximErrno.UNKNOWNERROR if e.timed_out else e.errno)
        except TransportError as e:
            set_results(pending, e.result, e.message, e.errno)
        finally:
            if channel is not None:
                if not mid_data:
                    try:
                        channel.send(b"QUIT\r\n")
                    except OSError:
                        pass
                channel.close()

    # -- connection -------------------------------------------------------------
    def _expand(self, name: str, ctx: Any) -> str:
        text = str(self.opt(name))
        try:
            value = expand_string(text, ctx)
        except (ExpandError, ExpandFail) as e:
            raise TransportError(f'Expansion of "{text}" ({name} for {self.name} '
                                 f"transport) failed: {e}", errno=EximErrno.EXPANDFAIL)
        if is_tainted(value):
            raise TransportError(f"Tainted '{value}' ({name} for {self.name} transport) "
                                 "not permitted")
        return value

    def _open(self, job: Any, ctx: Any) -> Channel:
        timeout = float(self.opt("timeout") or 300)
        if self.opt("socket"):
            path = self._expand("socket", ctx)
            try:
                return SocketChannel(path, timeout)
            except OSError as e:
                raise TransportError(f"Failed to connect to socket {path} for {self.name} "
                                     f"transport: {e.strerror or e}",
                                     errno=e.errno or EximErrno.UNKNOWNERROR) from None
        try:
            argv = command_argv(str(self.opt("command")), ctx, f"{self.name} transport")
        except CommandExpansionFailed as e:
            raise TransportError(str(e), errno=0) from None
        except CommandTainted as e:
            raise TransportError(str(e), "fail") from None
        ids = self.delivery_ids(ctx, job.addresses[0])
        if ids is not None:
            check_never_users(self.config, ids[0], self.name)
        try:
            return CommandChannel(argv, ids, self.delivery_groups(ids, job.addresses[0]))
        except (OSError, subprocess.SubprocessError) as e:
            raise TransportError(f"Failed to create child process for {self.name} "
                                 f"transport: {getattr(e, 'strerror', None) or e}") from None

    # -- the exchange -------------------------------------------------------------
    def _transaction(self, job: Any, channel: Channel, rp: str, ctx: Any,
                     pending: list[Any], tf: TransportFilter | None = None) -> None:
        timeout = float(self.opt("timeout") or 300)
        parser = ReplyParser()
        queued: list[SmtpReply] = []

        def reply(after: str) -> SmtpReply:
            deadline = time.monotonic() + timeout
            while not queued:
                try:
                    data = channel.recv(deadline)
                except LmtpTimeout:
                    raise TransportError(f"LMTP timeout after {after}",
                                         errno=EximErrno.UNKNOWNERROR) from None
                except OSError as e:
                    raise TransportError(f"LMTP error after {after}: {e.strerror or e}",
                                         errno=e.errno or EximErrno.UNKNOWNERROR) from None
                if not data:
                    raise TransportError(f"LMTP connection closed after {after}",
                                         errno=EximErrno.UNKNOWNERROR)
                queued.extend(parser.feed(data))
            return queued.pop(0)

        def command(line: str) -> SmtpReply:
            try:
                channel.send(line.encode("utf-8", "surrogateescape") + b"\r\n")
            except OSError as e:
                raise TransportError(f"LMTP error after {line}: {e.strerror or e}",
                                     errno=e.errno or EximErrno.UNKNOWNERROR) from None
            return reply(line)

        def refused(r: SmtpReply, after: str) -> TransportError:
            return TransportError(f"LMTP error after {after}: {r.text}",
                                  "fail" if r.code >= 500 else "defer", 0)

        greeting = reply("initial connection")
        if greeting.code // 100 != 2:
            raise refused(greeting, "initial connection")
        hostname = str(main_option(self.config, "primary_hostname", "localhost"))
        lhlo = command(f"LHLO {hostname}")
        if lhlo.code // 100 != 2:
            raise refused(lhlo, f"LHLO {hostname}")
        extensions = {ln[4:].split()[0].upper() for ln in lhlo.lines[1:] if len(ln) > 4}
        ignore_quota = " IGNOREQUOTA" if self.opt("ignore_quota") and \
            "IGNOREQUOTA" in extensions else ""
        affixes = bool(self.opt("rcpt_include_affixes"))
        mail = command(f"MAIL FROM:<{rp}>")
        if mail.code // 100 != 2:
            raise refused(mail, f"MAIL FROM:<{rp}>")
        accepted = []
        for a in list(pending):
            line = f"RCPT TO:<{a.rcpt_address(affixes)}>{ignore_quota}"
            r = command(line)
            if r.code // 100 == 2:
                accepted.append(a)
            else:
                err = refused(r, line)
                set_results([a], err.result, err.message, err.errno)
                a.more_errno = r.code
                pending.remove(a)
        if not accepted:
            return
        data = command("DATA")
        if data.code != 354:
            raise refused(data, "DATA")
        header = self.header_block(job, ctx, rp)
        try:
            with open(job.data_path, "rb") as body:
                written = write_message(_Writer(channel), header, body, use_crlf=True,
                                        dot_stuff=True, end_dot=True, transport_filter=tf)
        except OSError as e:
            raise TransportError(f"LMTP error while sending the message: {e.strerror or e}",
                                 errno=e.errno or EximErrno.UNKNOWNERROR) from None
        for a in accepted:
            r = reply("end of data")
            if r.code // 100 == 2:
                set_results([a], "ok")
                a.smtp_confirmation = r.text
                a.delivered_size = written
            else:
                err = refused(r, "end of data")
                set_results([a], err.result, err.message, err.errno)
                a.more_errno = r.code
            pending.remove(a)
