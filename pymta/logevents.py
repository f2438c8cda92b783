"""Typed events for the main log's message lines, rendered in Exim 4.96's format.

The code that receives or delivers a message describes what happened with one of these
dataclasses and asks it for its line; what each field looks like, and which fields
log_selector turns on or off, is decided here (with :mod:`pymta.logfields` for the TLS
and AUTH fields), not where the event happens.

- :class:`Arrival`: the ``<=`` line (after the message id and the flag): sender,
  ``R=`` of a bounce, ``H=`` (``:port`` with incoming_port), ``I=`` (incoming_interface),
  ``U=``, ``P=``, TLS and AUTH fields, ``PRX=`` (proxy), ``S=``, ``id=`` (msg_id).
- :class:`Delivery`: the ``=>`` / ``->`` line: the address as Exim names it, ``R=``,
  ``T=``, ``H=``, TLS and AUTH fields, ``C="..."`` (the remote server's confirmation).
- :class:`Deferral` and :class:`Failure`: the ``==`` and ``**`` lines of an address.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymta import rfc2047
from pymta.config.options import format_time
from pymta.log import duration, log_duration, log_selected
from pymta.logarrival import subject_field
from pymta.logfields import SessionLogFacts, session_fields
from pymta.printing import string_printing


def host_field(host_address: str | None, host_name: str | None, helo_name: str | None,
               port: int | None = None, log_port: bool = False) -> str:
    """The value of ``H=`` for a client: "name (helo) [ip]" with the parts Exim leaves
    out left out (the HELO name when it is the host name)."""
    parts = []
    if host_name:
        parts.append(host_name)
    if helo_name and helo_name != host_name:
        parts.append(f"({helo_name})")
    if host_address:
        parts.append(f"[{host_address}]" + (f":{port}" if log_port and port else ""))
    return " ".join(parts)


def _address_parts(name: str, router: str, transport: str) -> list[str]:
    """The start of a delivery, deferral or failure line: the address, R=, T=."""
    return [name] + ([f"R={router}"] if router else []) + \
        ([f"T={transport}"] if transport else [])


@dataclass(frozen=True)
class Arrival:
    """A message was accepted (the ``<=`` line)."""

    sender: str                                   # "" for the null sender
    protocol: str
    size: int
    bounce_reference: str = ""                    # R=: the message a bounce is about
    host_address: str = ""                        # empty for local submissions
    host_name: str = ""
    host_dnssec: bool = False                     # DS (dnssec): the name came by DNSSEC
    helo_name: str = ""
    host_port: int | None = None
    interface: tuple[str, int] | None = None      # the address and port it came in on
    ident: str = ""                               # U= for a remote sender (RFC 1413)
    local_user: str = ""                          # U= for a local submission
    session: SessionLogFacts = field(default_factory=SessionLogFacts)
    message_id: str | None = None                 # the Message-ID header's value
    queue: str = ""                               # a named queue: Q=
    prdr: bool = False                            # PRDR was used
    proxy: str = ""                               # PRX=: the proxy's own address
    chunking: bool = False                        # K: the data came by BDAT
    dkim: str = ""                                # a domain whose DKIM signature passed
    pipelining: str = ""                          # L, L-, L., L*, L.- (logarrival)
    body_type: str | None = None                  # MAIL BODY=: M8S=
    receive_seconds: float | None = None          # RT=
    message_id_created: str = ""                  # a Message-ID pymta added: id*=
    subject: str | None = None                    # the Subject: header's full text: T=
    original_sender: str | None = None            # "from <...>" (received_sender)
    recipients: tuple[str, ...] = ()              # "for ..." (received_recipients)

    def fields(self, config: Any) -> str:
        """What follows ``<=`` on the line."""
        parts = [self.sender or "<>"]
        if not self.sender and self.bounce_reference:
            parts.append(f"R={self.bounce_reference}")
        if self.host_address and self.host_dnssec and log_selected(config, "dnssec"):
            parts.append("DS")
        if self.host_address:
            parts.append("H=" + host_field(self.host_address, self.host_name, self.helo_name,
                                           self.host_port,
                                           log_selected(config, "incoming_port")))
            if self.interface and log_selected(config, "incoming_interface"):
                parts.append(f"I=[{self.interface[0]}]:{self.interface[1]}")
            if self.ident:
                parts.append(f"U={self.ident}")
        elif self.local_user:
            parts.append(f"U={self.local_user}")
        parts.append(f"P={self.protocol}")
        if self.pipelining and log_selected(config, "pipelining"):
            parts.append(self.pipelining)
        parts.extend(session_fields(config, self.session))
        if self.prdr:
            parts.append("PRDR")
        if self.proxy and log_selected(config, "proxy"):
            parts.append(f"PRX={self.proxy}")
        if self.chunking:
            parts.append("K")           # after X=/CV=/A=, whatever log_selector says
        parts.append(f"S={self.size}")
        if log_selected(config, "8bitmime"):
            body = (self.body_type or "").upper()
            parts.append("M8S=" + ("8" if body == "8BITMIME" else "7" if body == "7BIT"
                                   else "0"))
        if self.dkim and log_selected(config, "dkim"):
            parts.append(f"DKIM={self.dkim}")
        if self.queue:
            parts.append(f"Q={self.queue}")
        if self.receive_seconds is not None and log_selected(config, "receive_time"):
            parts.append("RT=" + duration(self.receive_seconds,
                                          log_selected(config, "millisec")))
        if self.message_id is not None and log_selected(config, "msg_id"):
            parts.append(f"id={self.message_id}")
        elif self.message_id_created and log_selected(config, "msg_id_created"):
            parts.append(f"id*={self.message_id_created}")
        if self.subject is not None and log_selected(config, "subject"):
            parts.append(subject_field(self.subject, rfc2047.check_length_of(config)))
        if self.original_sender is not None and log_selected(config, "received_sender"):
            parts.append(f"from <{self.original_sender}>")
        if self.recipients and log_selected(config, "received_recipients"):
            parts.append("for " + " ".join(self.recipients))
        return " ".join(parts)


@dataclass(frozen=True)
class Delivery:
    """An address was delivered (the ``=>`` line; ``->`` for a further address of the
    same delivery).

    Fields in Exim 4.96's order: the address (``(parent, ...)`` before the original
    ``<top>`` with all_parents), ``F=`` (sender_on_delivery), ``P=``
    (return_path_on_delivery), ``Q=``, ``R=``, ``T=``, ``S=`` (delivery_size), the host
    with ``:port`` (outgoing_port), ``PRX=`` (proxy: the SOCKS proxy, with its port under
    outgoing_port), ``I=`` (incoming_interface and outgoing_interface),
    TLS and AUTH, ``K``, ``C=`` (smtp_confirmation), ``ST=``, ``QT=`` (queue_time) and
    ``DT=`` (deliver_time)."""

    name: str                                     # the address as the line names it
    router: str
    transport: str
    first: bool = True
    host: str = ""                                # "H=name [ip]" of a remote delivery
    host_dnssec: bool = False                     # DS (dnssec): found by secure lookups
    session: SessionLogFacts = field(default_factory=SessionLogFacts)
    confirmation: str = ""                        # the server's reply to the data
    queue: str = ""                               # the named queue of the message
    shadow: str = ""                              # "ST=name" (and its error) at the end
    cutthrough: bool = False                      # ">>": delivered while being received
    chunking: bool = False                        # K: sent with BDAT
    original: str = ""                            # the top address, shown in <>
    parents: tuple[str, ...] = ()                 # between the two, nearest first
    sender: str = ""                              # the message's sender (F=)
    return_path: str | None = None                # the envelope sender sent (P=)
    size: int | None = None                       # bytes the transport wrote (S=)
    host_port: int | None = None
    interface: tuple[str, int] | None = None      # the local end of the connection
    proxy: tuple[str, int] | None = None          # the SOCKS proxy used (PRX=)
    queue_time: float | None = None               # seconds (QT=)
    deliver_time: float | None = None             # seconds (DT=)

    def line(self, config: Any) -> str:
        # a system filter's file or pipe delivery has no router
        flag = ">> " if self.cutthrough else "=> " if self.first else "-> "
        head = flag + self.name
        if self.parents:        # the caller chose them (all_parents, or a pipe/file)
            head += " (" + ", ".join(self.parents) + ")"
        if self.original:
            head += f" <{self.original}>"
        parts = [head]
        if log_selected(config, "sender_on_delivery"):
            parts.append(f"F=<{self.sender}>")
        if self.return_path is not None and log_selected(config, "return_path_on_delivery"):
            parts.append(f"P=<{self.return_path}>")
        parts += ([f"Q={self.queue}"] if self.queue else []) + \
            ([f"R={self.router}"] if self.router else []) + [f"T={self.transport}"]
        if self.size is not None and log_selected(config, "delivery_size"):
            parts.append(f"S={self.size}")
        if self.host:
            parts.append(self._host(config))
            if self.proxy and log_selected(config, "proxy"):
                parts.append(f"PRX=[{self.proxy[0]}]" + (
                    f":{self.proxy[1]}" if log_selected(config, "outgoing_port") else ""))
            if self.interface and log_selected(config, "incoming_interface") and \
                    log_selected(config, "outgoing_interface"):
                parts.append(f"I=[{self.interface[0]}]" + (
                    f":{self.interface[1]}" if log_selected(config, "outgoing_port")
                    else ""))
            parts.extend(session_fields(config, self.session))
            if self.chunking:
                parts.append("K")
        # smtp, and lmtp's per-recipient reply
        if self.confirmation and log_selected(config, "smtp_confirmation"):
            escaped = self.confirmation.replace('"', '\\"')
            parts.append(f'C="{escaped}"')
        if self.shadow:
            parts.append(self.shadow)
        if self.queue_time is not None and log_selected(config, "queue_time"):
            parts.append("QT=" + log_duration(config, self.queue_time))
        if self.deliver_time is not None and log_selected(config, "deliver_time"):
            parts.append("DT=" + log_duration(config, self.deliver_time))
        return " ".join(parts)

    def _host(self, config: Any) -> str:
        """``H=name [ip]``, with ``:port`` after the bracket (outgoing_port) and before
        the ``*`` of a connection kept open from an earlier message; `` DS`` between the
        name and the bracket when the host was found by DNSSEC-authenticated lookups."""
        host = self.host
        if self.host_dnssec and log_selected(config, "dnssec") and " [" in host:
            host = host.replace(" [", " DS [", 1)
        if self.host_port and log_selected(config, "outgoing_port"):
            star = "*" if host.endswith("]*") else ""
            bare = host[:-1] if star else host
            if bare.endswith("]"):
                host = f"{bare}:{self.host_port}{star}"
        return host


@dataclass(frozen=True)
class Deferral:
    """An address was deferred (the ``==`` line, after the flag): the address, ``R=``,
    ``T=``, ``defer (errno)`` and the detail (``: reason`` or the host and reason)."""

    name: str
    errno: int
    detail: str = ""
    router: str = ""
    transport: str = ""

    def text(self) -> str:
        return " ".join(_address_parts(self.name, self.router, self.transport)) + \
            f" defer ({self.errno})" + self.detail


@dataclass(frozen=True)
class Failure:
    """An address failed for good (the ``**`` line, after the flag).

    With ``config`` the log_selector fields are added in Exim 4.96's order: ``F=``
    (sender_on_delivery), ``P=`` (return_path_on_delivery, when a transport ran), R=,
    T=, the host with ``:port`` (outgoing_port) and ``I=``, the message, then ``DT=``
    (deliver_time, also for an address that failed in routing)."""

    name: str
    message: str
    router: str = ""
    transport: str = ""
    host: str = ""                                # "H=name [ip]" when a host said no
    sender: str = ""
    return_path: str | None = None
    host_port: int | None = None
    interface: tuple[str, int] | None = None
    deliver_time: float = 0.0

    def text(self, config: Any = None) -> str:
        parts = [self.name]
        if config is not None and log_selected(config, "sender_on_delivery"):
            parts.append(f"F=<{self.sender}>")
        if self.return_path is not None and config is not None and \
                log_selected(config, "return_path_on_delivery"):
            parts.append(f"P=<{self.return_path}>")
        parts += _address_parts("", self.router, self.transport)[1:]
        if self.host:
            parts.append(self.host)
            if config is not None:
                if self.host_port and log_selected(config, "outgoing_port") and \
                        parts[-1].endswith("]"):
                    parts[-1] += f":{self.host_port}"
                if self.interface and log_selected(config, "incoming_interface") and \
                        log_selected(config, "outgoing_interface"):
                    parts.append(f"I=[{self.interface[0]}]" + (
                        f":{self.interface[1]}" if log_selected(config, "outgoing_port")
                        else ""))
        text = f"{' '.join(parts)}: {self.message}"
        if config is not None and log_selected(config, "deliver_time"):
            text += " DT=" + log_duration(config, self.deliver_time)
        return text


# --- SMTP session lines ---------------------------------------------------------------
#
# Each event names the log it goes to (``log``: "main" or "reject", the latter writing
# mainlog and rejectlog) and the log_selector item that turns it on (``selector``; None
# for lines Exim always writes).  :func:`write_event` applies both.


class LogWriter(Protocol):
    """The two writers a session event needs (:class:`pymta.log.EximLog`)."""

    def main(self, text: str, msgid: str | None = None) -> None: ...

    def reject(self, text: str, msgid: str | None = None) -> None: ...


class SessionEvent(Protocol):
    """What :func:`write_event` needs of an event."""

    @property
    def log(self) -> str: ...

    @property
    def selector(self) -> str | None: ...

    def text(self) -> str: ...


def write_event(log: LogWriter, config: Any, event: SessionEvent,
                msgid: str | None = None) -> None:
    """Write ``event`` to its log, if log_selector has its item on."""
    if event.selector is not None and not log_selected(config, event.selector):
        return
    writer = log.reject if event.log == "reject" else log.main
    if msgid:
        writer(event.text(), msgid)
    else:
        writer(event.text())


@dataclass(frozen=True)
class Rejection:
    """An ACL refused a command or a message:
    ``H=... F=<sender> rejected RCPT <addr>: message`` (``temporarily rejected`` for a
    defer).  ``sender`` is None where Exim leaves F= out (connect, HELO, MAIL, DATA)."""

    host: str                                     # host_and_ident: "H=name (helo) [ip]"
    what: str                                     # "RCPT <x@y>", "after DATA", ...
    message: str | None = None
    sender: str | None = None
    temporary: bool = False
    log: str = "reject"
    selector: str | None = None

    def text(self) -> str:
        prefix = self.host + (f" F=<{self.sender}>" if self.sender is not None else "")
        verb = "temporarily rejected" if self.temporary else "rejected"
        # a message of several lines is logged by its first, as Exim logs it
        message = self.message.split("\n", 1)[0] if self.message else ""
        return f"{prefix} {verb} {self.what}" + (f": {message}" if message else "")


@dataclass(frozen=True)
class CommandRefused:
    """A command refused by the protocol rules, not by an ACL: MAIL before HELO/EHLO
    (``rejected MAIL from [ip]: no HELO/EHLO given``), XCLIENT out of place."""

    host: str                                     # host_and_ident without "H="
    command: str = "MAIL"
    reason: str = "no HELO/EHLO given"
    log: str = "reject"
    selector: str | None = None

    def text(self) -> str:
        return f"rejected {self.command} from {self.host}: {self.reason}"


def _visible(data: bytes) -> str:
    """Input bytes as Exim shows them in a synchronization error: printable ASCII as is,
    CR and LF as \\r and \\n, anything else as \\xNN."""
    out = []
    for c in data.decode("latin-1"):
        if c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif 32 <= ord(c) < 127:
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}")
    return "".join(out)


def client_text(text: str) -> str:
    """What a client sent, as Exim writes it into a log line (see pymta.printing)."""
    return string_printing(text)


@dataclass(frozen=True)
class SyncError:
    """The client sent before it was asked to (pipelining not offered or broken)."""

    reason: str
    host: str
    input: bytes
    command: str = ""
    log: str = "reject"
    selector: str | None = None

    def text(self) -> str:
        head = f"SMTP protocol synchronization error ({self.reason}): "
        if "greeting" in self.reason:             # input before the banner
            return head + f"rejected connection from {self.host} input=\"{_visible(self.input)}\""
        return head + (f"rejected \"{self.command}\" {self.host} "
                       f"next input=\"{_visible(self.input)}\"")


@dataclass(frozen=True)
class InvalidHelo:
    """HELO/EHLO with a syntactically invalid argument."""

    verb: str
    who: str                                       # host_and_ident without "H="
    argument: str
    log: str = "reject"
    selector: str | None = None

    def text(self) -> str:
        return (f"rejected {self.verb} from {self.who}: syntactically invalid argument(s): "
                + (client_text(self.argument) or "(no argument given)"))


@dataclass(frozen=True)
class CallDropped:
    """The server closed a session that misbehaved too often (``why``: "synprot",
    "unknown" or "nonmail")."""

    who: str
    why: str
    last_command: str
    history: tuple[str, ...] = ()                  # C=: the last commands, for "synprot"

    # all three go to the main and reject logs (Exim's LOG_MAIN|LOG_REJECT)
    log: str = "reject"

    selector: str | None = None

    def text(self) -> str:
        head = f"SMTP call from {self.who} dropped: "
        if self.why == "synprot":
            return head + (f"too many syntax or protocol errors (last command was "
                           f"\"{client_text(self.last_command)}\",  "
                           f"C={','.join(self.history)})")
        if self.why == "nonmail":
            # only the command's verb: Exim stops at the first white space
            verb = re.match(r"[^ \t\n\r\v\f]*", self.last_command)
            return head + ("too many nonmail commands (last was "
                           f"\"{client_text(verb.group() if verb else '')}\")")
        return head + ("too many unrecognized commands (last was "
                       f"\"{client_text(self.last_command)}\")")


@dataclass(frozen=True)
class CommandError:
    """A command refused for its syntax (5xx) or its place in the dialogue (503)."""

    command: str
    host: str
    reply: str
    protocol: bool                                 # True: 503, out of sequence
    log: str = "main"

    @property
    def selector(self) -> str:
        return "smtp_protocol_error" if self.protocol else "smtp_syntax_error"

    def text(self) -> str:
        kind = "protocol" if self.protocol else "syntax"
        return f"SMTP {kind} error in \"{client_text(self.command)}\" {self.host} {self.reply}"


@dataclass(frozen=True)
class SizeRejection:
    """A message over message_size_limit: at MAIL (SIZE=) or while reading the data."""

    host: str
    sender: str
    size: int
    limit: int
    at_mail: bool
    log: str = "reject"
    selector: str | None = "size_reject"

    def text(self) -> str:
        if self.at_mail:
            # (Exim's ">=": a SIZE= it could not hold was cut to its largest int)
            at_least = ">" if self.size >= 2**31 - 1 else ""
            return (f"rejected MAIL FROM:<{self.sender}> {self.host}: message too big: "
                    f"size{at_least}={self.size} max={self.limit}")
        return (f"rejected from <{self.sender}> {self.host}: message too big: "
                f"read={self.size} max={self.limit}")


@dataclass(frozen=True)
class ExcessRecipients:
    """RCPTs beyond recipients_max (logged once per message)."""

    host: str
    sender: str
    refused: bool                                  # recipients_max_reject: 5xx, else 4xx
    log: str = "main"
    selector: str | None = None

    def text(self) -> str:
        how = "message rejected" if self.refused else "excess temporarily rejected"
        return f"too many recipients: {how}: sender=<{self.sender}> {self.host}"


@dataclass(frozen=True)
class LostConnection:
    """The client went away or timed out (``how``: "command_timeout", "data_timeout",
    "lost_data" or "lost")."""

    how: str
    who: str
    duration: int                                  # seconds since the connection began
    sender: str = ""
    stage: str = ""              # lost_data: " (header)", " (after header)" or ""
    log: str = "main"
    selector: str | None = "lost_incoming_connection"

    def text(self) -> str:
        d = format_time(self.duration)
        if self.how == "command_timeout":
            return f"SMTP command timeout on connection from {self.who} D={d}"
        if self.how == "data_timeout":
            return (f"SMTP data timeout (message abandoned) on connection from {self.who} "
                    f"F=<{self.sender}> D={d}")
        if self.how == "lost_data":
            return f"SMTP connection from {self.who} lost while reading message data{self.stage}"
        return f"unexpected disconnection while reading SMTP command from {self.who} D={d}"


# --- Daemon and queue-runner lines -----------------------------------------------------


@dataclass(frozen=True)
class DaemonStarted:
    """The daemon's first line: its pid, queue-run interval and listening sockets."""

    version: str
    pid: int
    queue_flags: str = ""
    queue_interval: int = 0                       # seconds; 0: no queue runs
    listeners: tuple[str, ...] = ()               # "[127.0.0.1]:25", ...
    log: str = "main"
    selector: str | None = None
    inetd_wait: bool = False                      # -bw: started with inetd's socket
    inetd_wait_timeout: int = 0                   # -bw<time>, seconds

    def text(self) -> str:
        if self.inetd_wait:
            return (f"pymta {self.version} daemon started: pid={self.pid}, launched with "
                    "listening socket" + (f", terminating after {self.inetd_wait_timeout} "
                                          "seconds" if self.inetd_wait_timeout else ""))
        q = (f"-q{self.queue_flags}{format_time(self.queue_interval)}"
             if self.queue_interval else "no queue runs")
        where = ("listening for SMTP on " + " ".join(self.listeners) if self.listeners
                 else "not listening for SMTP")
        return f"pymta {self.version} daemon started: pid={self.pid}, {q}, {where}"


@dataclass(frozen=True)
class QueueRun:
    """``Start queue run`` / ``End queue run`` (log_selector +queue_run)."""

    pid: int
    flags: str = ""                               # "-qf", "-qff" or ""
    end: bool = False
    log: str = "main"
    selector: str | None = "queue_run"
    queue: str = ""                               # a named queue (-qG<name>)

    def text(self) -> str:
        named = f"'{self.queue}' " if self.queue else ""
        return (f"{'End' if self.end else 'Start'} {named}queue run: pid={self.pid}"
                + (f" {self.flags}" if self.flags else ""))


# --- Connection lines (log_selector smtp_connection, smtp_no_mail,
# smtp_incomplete_transaction) --------------------------------------------------------


@dataclass(frozen=True)
class ConnectionOpened:
    """An SMTP connection began: the daemon's count of connections in progress, this one
    included (None for -bs, whose line names the calling user)."""

    who: str                                       # host_and_ident without "H=", or login
    count: int | None = None
    log: str = "main"
    selector: str | None = "smtp_connection"

    def text(self) -> str:
        count = f" (TCP/IP connection count = {self.count})" if self.count is not None else ""
        return f"SMTP connection from {self.who}{count}"


@dataclass(frozen=True)
class ConnectionClosed:
    """The client ended the session with QUIT."""

    who: str
    log: str = "main"
    selector: str | None = "smtp_connection"

    def text(self) -> str:
        return f"SMTP connection from {self.who} closed by QUIT"


@dataclass(frozen=True)
class IncompleteTransaction:
    """A transaction with an accepted MAIL was abandoned (``why``: "QUIT", "RSET",
    "connection lost", ...): its sender and the recipients accepted so far."""

    host: str                                      # host_and_ident: "H=(helo) [ip]"
    why: str
    sender: str
    recipients: tuple[str, ...] = ()
    log: str = "main"
    selector: str | None = "smtp_incomplete_transaction"

    def text(self) -> str:
        rcpts = (" for " + " ".join(self.recipients)) if self.recipients else ""
        return f"{self.host} incomplete transaction ({self.why}) from <{self.sender}>{rcpts}"


@dataclass(frozen=True)
class NoMail:
    """An accepted session ended without a MAIL command: its length (D=), the TLS and
    AUTH fields of the session, and (C=) the commands, the last 20 at most."""

    who: str
    duration: str                                  # already formatted (log.duration)
    session_fields: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    log: str = "main"
    selector: str | None = "smtp_no_mail"

    def text(self) -> str:
        parts = [f"no MAIL in SMTP connection from {self.who} D={self.duration}"]
        parts.extend(self.session_fields)
        if self.commands:
            shown = ",".join(self.commands[-20:])
            parts.append("C=" + ("..." if len(self.commands) > 20 else "") + shown)
        return " ".join(parts)


@dataclass(frozen=True)
class ConnectionLost:
    """The client went away between transactions: not the unexpected disconnection of
    lost_incoming_connection (that needs a MAIL transaction in progress) but Exim's
    smtp_connection line."""

    who: str
    duration: str                                  # already formatted (log.duration)
    log: str = "main"
    selector: str | None = "smtp_connection"

    def text(self) -> str:
        return f"SMTP connection from {self.who} lost D={self.duration}"
