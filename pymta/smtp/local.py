"""SMTP over standard input/output: ``pymta -bh`` (host checking) and ``pymta -bs``.

Both reuse :class:`~pymta.smtp.session.SmtpSession` and the sans-IO server.  Input is read
one line at a time (or the exact byte count a ReadBytes action asks for) and each
line's replies are written at once, as for a client that waits for every reply, so
pipelining synchronisation is not checked (Exim does not check it for non-socket input
either).

The ``-oM`` options (:class:`HostOverrides`) describe the client further: its host name
(``-oMs``, no lookup then), ident (``-oMt``), our interface (``-oMi``) and an
authentication that already happened (``-oMaa``, ``-oMai``, ``-oMas``).  Any caller may
use them with ``-bh``; with ``-bs`` they count only for a trusted caller, for whom
``-oMa`` turns the session into one from that host (protocol ``esmtp``, not
``local-esmtp``, as in Exim).  ``-oMr`` does not apply to either.

``-bh IP[.port]`` runs the real ACLs as if the client were at ``IP`` but never spools:
log lines are printed to standard error prefixed with ``LOG:``, and an accepted message
gets ``250 OK id=...`` followed by a warning that the id is not real.  ``-bs`` is a local
submission: the caller is the sender (unless trusted), the protocol is ``local-smtp`` /
``local-esmtp`` and accepted messages are spooled and handed to ``notify``.
"""
from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from pymta.acl.callout_hold import HoldDeliverer
from pymta.caller import caller_is_trusted, qualify, qualify_domains, untrusted_may_set_sender
from pymta.debuglog import SELECTOR_BITS, debug
from pymta.log import one_line
from pymta.originator import caller_originator
from pymta.smtp.actions import Close, ReadBytes, SendReply, StartTls
from pymta.smtp.cutthrough_api import CutthroughOpener
from pymta.smtp.session import SmtpSession, finish_session, prepare_session, start_session
from pymta.spool.hostaddr import parse_address_port
from pymta.taint import taint

HOST_CHECK_BANNER = ("\n**** SMTP testing session as if from host {ip}\n"
                     "**** but without any ident (RFC 1413) callback.\n"
                     "**** This is not for real!\n\n")
# The most read from standard input at once for a fixed-size read: a BDAT chunk is
# passed on as it comes, never held whole, so a size the client made up (BDAT
# 99999999999) cannot make one read ask for that much memory.
_READ_BLOCK = 65536

NOT_REAL_ID = "\n**** SMTP testing: that is not a real message id!\n\n"


class HostCheckLog:
    """A Logger stand-in for -bh: every line goes to ``out`` as ``LOG: [id ]text``."""

    def __init__(self, out: Any):
        self.out = out

    def _write(self, text: str, msgid: str | None) -> None:
        self.out.write(f"LOG: {msgid + ' ' if msgid else ''}{one_line(text)}\n")
        self.out.flush()

    def main(self, text: str, msgid: str | None = None, **_: Any) -> None:
        self._write(text, msgid)

    def reject(self, text: str, msgid: str | None = None, **_: Any) -> None:
        self._write(text, msgid)

    def panic(self, text: str, msgid: str | None = None, **_: Any) -> None:
        self._write(text, msgid)

    def msglog(self, *args: Any, **kw: Any) -> None:
        """Nothing is spooled, so there is no message log."""

    def close(self) -> None:
        """Nothing to close."""


def parse_host_argument(text: str) -> tuple[str, int]:
    """``-bh`` argument: an IP address optionally with a port (``ip.port`` or ``[ip]:port``,
    the forms of a -H file's host address)."""
    try:
        addr, port = parse_address_port(text.strip())
    except ValueError:
        raise ValueError(f"\"{text.strip()}\" is not a valid IP address") from None
    return str(ipaddress.ip_address(addr)), port or 0


@dataclass
class LocalCaller:
    """Who ran ``pymta -bs``: the sender of its messages unless ``trusted`` (or the
    address is one untrusted_set_sender allows, or the empty sender)."""

    login: str
    uid: int
    gid: int
    name: str
    qualify_domain: str
    trusted: bool = False               # root, exim_user, trusted_users/groups
    config: Any = None                  # for untrusted_set_sender
    sender_set: bool = False            # the last MAIL's address was taken

    @classmethod
    def current(cls, config: Any) -> "LocalCaller":
        """The calling user; trust follows the -f rules (root, exim_user, trusted_users)."""
        uid, gid = os.getuid(), os.getgid()
        originator = caller_originator(config, uid, gid)
        return cls(originator.login, uid, gid, originator.name, qualify_domains(config)[0],
                   caller_is_trusted(config, uid), config)

    def envelope_sender(self, given: str) -> str:
        """The envelope sender for MAIL ``given``: the address (qualified) when the
        caller may set it, else the caller's own."""
        qualified = qualify(given, self.qualify_domain)
        self.sender_set = self.trusted or untrusted_may_set_sender(self.config, qualified,
                                                                   self.login)
        return qualified if self.sender_set else f"{self.login}@{self.qualify_domain}"

    def envelope_fields(self) -> dict[str, Any]:
        """Envelope values that make the message a local submission."""
        return {"local_user": self.login, "originator_login": self.login,
                "originator_uid": self.uid, "originator_gid": self.gid,
                "originator_name": self.name, "is_local_submission": True,
                # as for -f: an untrusted caller's sender leaves the header rules alone
                "sender_set_by_caller": self.sender_set and self.trusted,
                "trusted_caller": self.trusted}


@dataclass
class HostOverrides:
    """The ``-oM`` options of an SMTP session on standard input (see the module text)."""

    host_address: tuple[str, int] | None = None      # -oMa (with -bs)
    host_name: str | None = None                     # -oMs
    ident: str | None = None                         # -oMt
    interface: tuple[str, int] | None = None         # -oMi
    authenticator: str | None = None                 # -oMaa
    authenticated_id: str | None = None              # -oMai
    authenticated_sender: str | None = None          # -oMas

    @classmethod
    def from_options(cls, options: dict[str, str],
                     host_address: str | None = None) -> "HostOverrides":
        """From the command line's -oM values (option name -> value).  ValueError for
        an -oMa/-oMi value that is not an IP address."""
        interface = options.get("-oMi")
        return cls(host_address=_tainted_host(host_address) if host_address else None,
                   host_name=options.get("-oMs"), ident=options.get("-oMt"),
                   interface=_tainted_host(interface) if interface else None,
                   authenticator=options.get("-oMaa"),
                   authenticated_id=options.get("-oMai"),
                   authenticated_sender=options.get("-oMas"))

    def apply(self, session: SmtpSession) -> None:
        """Set the session's variables before its host lookup and connect ACL."""
        v = session.ctx.variables
        if self.host_name is not None:
            v["sender_host_name"] = self.host_name       # no lookup then
            v["sender_rcvhost"] = session._rcvhost()
        if self.ident is not None:
            v["sender_ident"] = self.ident
        if self.interface is not None:
            addr, port = self.interface
            v.update(interface_address=addr, received_ip_address=addr,
                     interface_port=str(port or ""), received_port=str(port or ""))
        if self.authenticator is not None:
            v["sender_host_authenticated"] = self.authenticator    # "a" after EHLO
        if self.authenticated_id is not None:
            v["authenticated_id"] = self.authenticated_id
        if self.authenticated_sender is not None:
            v["authenticated_sender"] = self.authenticated_sender


def _tainted_host(text: str) -> tuple[str, int]:
    """An -oMa/-oMi address: the caller's word, so tainted (as Exim marks it in -H)."""
    addr, port = parse_host_argument(text)
    return taint(addr), port


def run_stdio_session(config: Any, log: Any, stdin: BinaryIO, stdout: BinaryIO, *,
                      host: tuple[str, int] | None = None,
                      local_caller: LocalCaller | None = None,
                      notify: Callable[[str], Any] | None = None,
                      overrides: HostOverrides | None = None,
                      callouts: bool = False,
                      cutthrough_opener: CutthroughOpener | None = None,
                      hold_deliverer: HoldDeliverer | None = None) -> None:
    """One SMTP session on ``stdin``/``stdout`` (binary streams).

    ``host`` = (ip, port) makes it a -bh host-checking session (nothing is spooled);
    otherwise ``local_caller`` describes the -bs caller and accepted messages are
    spooled and passed to ``notify(msgid)``.  ``overrides`` are the -oM options (for
    -bs, only pass them for a trusted caller); with -bs an ``overrides.host_address``
    makes the session one from that host.
    A -bh session skips verification callouts unless ``callouts`` (-bhc).
    ``cutthrough_opener`` and ``hold_deliverer`` let a -bs session deliver by cutthrough
    and deliver down a held callout connection, as the daemon's sessions do (and Exim's
    -bs).
    """
    checking = host is not None
    caller = None if checking else (local_caller or LocalCaller.current(config))
    remote = host if checking else overrides.host_address if overrides else None
    peer = remote if remote is not None else ("", 0)
    interface = overrides.interface if overrides and overrides.interface else ("", 0)
    session = SmtpSession(config, log, peer, interface, None if checking else notify)
    session.host_checking = checking
    session.host_checking_callouts = callouts
    if not checking:
        session.cutthrough_opener = cutthrough_opener
        session.hold_deliverer = hold_deliverer
    if caller is not None and remote is None:
        session.set_local_caller(caller)
    elif caller is not None:
        # -bs from a trusted caller as if from a host: its ident is the caller's login.
        session.ctx.variables["sender_ident"] = caller.login
    if overrides is not None:
        overrides.apply(session)
    server = prepare_session(session)
    server.enforce_sync = False

    def send(data: bytes) -> bool:
        if not data:
            return True
        try:
            stdout.write(data)
            stdout.flush()
        except OSError:
            return False
        return True

    def reply(data: bytes) -> bool:
        ok = send(data)
        if checking and b" OK id=" in data:
            ok = send(NOT_REAL_ID.encode()) and ok
        return ok

    if checking:
        send(HOST_CHECK_BANNER.format(ip=peer[0]).encode())
    try:
        if not start_session(session, server, send):
            return
        actions = server.receive(b"")
        while True:
            want = 0            # 0: a line, n: exactly n bytes
            for action in actions:
                if isinstance(action, SendReply):
                    if not reply(action.data):
                        return
                elif isinstance(action, (Close, StartTls)):
                    return      # no TLS on standard input/output
                elif isinstance(action, ReadBytes):
                    want = min(action.count, _READ_BLOCK)
            if server.closed:
                return
            data = stdin.read(want) if want else stdin.readline()
            if not data:
                break
            actions = server.receive(data)
        if not server.closed:
            if server.receiving_message:
                send(b"421 Lost incoming connection\r\n")
            else:
                send(f"421 {server.hostname} lost input connection\r\n".encode())
            server.connection_lost()
    finally:
        finish_session(session, server)


#: What -bh comments on when no -d is given: the ACLs, the lists they match, and the
#: routing done to verify addresses.
HOST_CHECK_SELECTOR = (SELECTOR_BITS["acl"] | SELECTOR_BITS["lists"] | SELECTOR_BITS["route"]
                       | SELECTOR_BITS["verify"] | SELECTOR_BITS["host_lookup"]
                       | SELECTOR_BITS["dnsbl"])


def host_check_main(config: Any, argument: str, stdin: BinaryIO | None = None,
                    stdout: BinaryIO | None = None, err: Any = None,
                    options: dict[str, str] | None = None, callouts: bool = False) -> int:
    """``pymta -bh IP[.port]``, with the -oM ``options`` (``-bhc``: with ``callouts``):
    returns the exit status."""
    err = err if err is not None else sys.stderr
    try:
        host = parse_host_argument(argument)
        overrides = HostOverrides.from_options(options or {})
    except ValueError as exc:
        err.write(f"pymta: {exc}\n")
        return 1
    # Like Exim, say what the ACLs do (">>> " lines on standard error), unless -d
    # already chose what to trace.
    comments = not debug.any
    if comments:
        debug.start_stderr(HOST_CHECK_SELECTOR, err, prefix=">>> ")
        debug.host_checking = True
    try:
        run_stdio_session(config, HostCheckLog(err), stdin or sys.stdin.buffer,
                          stdout or sys.stdout.buffer, host=host, overrides=overrides,
                          callouts=callouts)
    finally:
        if comments:
            debug.stop()
    return 0
