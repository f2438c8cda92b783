"""The SMTP server's resource limits (Exim 4.96's options, plus one of pymta's own).

- at the connection, in the receiver before the session (Exim's daemon does these
  before it forks): smtp_accept_max_per_host (:func:`daemon_refusal`);
- at the start of the session, before the connect ACL: host_reject_connection,
  smtp_accept_reserve with smtp_reserve_hosts, smtp_load_reserve
  (:func:`connection_refusal`); smtp_accept_queue (:func:`queue_all_messages`);
- per command: smtp_accept_max_per_connection and the smtp_ratelimit_* delays of MAIL
  and RCPT (:class:`CommandLimits`);
- after DATA: header_maxsize and header_line_maxsize (:func:`header_refusal`).

The replies and log lines are Exim's.  The overall deadline for DATA
(``smtp_data_deadline``, a pymta extension) is applied by the socket loop.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from pymta.config.options import parse_time
from pymta.config.ratelimit import RateLimit
from pymta.config.values import main_opt, main_option
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.log import log_selected
from pymta.message.body import FileBody
from pymta.osutil import load_average
from pymta.smtp.server import Reply


@dataclass(frozen=True)
class LimitEvent:
    """A log line about a limit (a :class:`pymta.logevents.SessionEvent`)."""

    message: str
    log: str = "main"
    selector: str | None = None

    def text(self) -> str:
        return self.message


class LimitedSession(Protocol):
    """What the checks need of an SMTP session."""

    config: Any
    log: Any
    ctx: ExpandContext
    hostname: str
    peer_ip: str

    def host_ident(self, with_h: bool = True) -> str: ...


HostMatch = Callable[[str, "str | None"], bool]    # (option, default) -> does the client match


def _fixed(value: int) -> str:
    """Thousandths as Exim prints a load average: "%.2f"."""
    return f"{value / 1000:.2f}"


# ---------------------------------------------------------------------------------------
# At the connection
# ---------------------------------------------------------------------------------------
def counted_limits(config: Any) -> bool:
    """Is any limit set that needs the daemon's count of connections?"""
    return bool(main_option(config, "smtp_accept_max_per_host")
                or int(main_opt(config, "smtp_accept_queue") or 0)
                or (int(main_opt(config, "smtp_accept_reserve") or 0)
                    and int(main_opt(config, "smtp_accept_max") or 0)))


def daemon_refusal(config: Any, log: Any, address: str, port: int, from_host: int
                   ) -> bytes | None:
    """smtp_accept_max_per_host, checked as soon as a connection is accepted: the reply
    to send before closing when ``from_host`` (connections from ``address``, this one
    included) is over the limit; the refusal is logged here."""
    option = main_option(config, "smtp_accept_max_per_host")
    if not option:
        return None
    ctx = ExpandContext(config=config)
    ctx.variables.update(sender_host_address=address, sender_host_port=str(port))
    try:
        text = expand_string(str(option), ctx).strip()
        limit = int(text or 0)
    except Exception as exc:
        log.panic(f"expansion of smtp_accept_max_per_host failed: {exc}")
        return None
    if limit <= 0 or from_host <= limit:
        return None
    who = f"[{address}]" + (f":{port}" if log_selected(config, "incoming_port") else "")
    if log_selected(config, "connection_reject"):
        log.main(f"Connection from {who} refused: too many connections from that IP "
                 "address")
    return (b"421 Too many concurrent SMTP connections from this IP address; "
            b"please try again later.\r\n")


def connection_refusal(session: LimitedSession, host_in: HostMatch, accept_count: int,
                       in_daemon: bool) -> tuple[Reply, LimitEvent] | None:
    """host_reject_connection, then the reserve of connection slots, then the load
    reserve: the reply and log line that refuse the connection, or None.

    ``accept_count`` counts the daemon's connections in progress, this one included
    (0 outside the daemon: -bh and -bs have no such count)."""
    config = session.config
    who = session.host_ident(with_h=False)
    if host_in("host_reject_connection", None):
        return (Reply(554, "SMTP service not available", close=True),
                LimitEvent(f"refused connection from {who} (host_reject_connection)",
                           "reject"))
    reserved = False
    accept_max = int(main_opt(config, "smtp_accept_max") or 0)
    reserve = int(main_opt(config, "smtp_accept_reserve") or 0)
    if accept_max > 0 and accept_count > accept_max - reserve:
        if not host_in("smtp_reserve_hosts", None):
            return (Reply(421, f"{session.hostname}: Too many concurrent SMTP connections; "
                          "please try again later", close=True),
                    LimitEvent(f"temporarily refused connection from {who}: not in reserve "
                               f"list: connected={accept_count - 1} max={accept_max} "
                               f"reserve={reserve}"))
        reserved = True
    load_reserve = main_option(config, "smtp_load_reserve")
    if load_reserve is None or reserved or not in_daemon:
        return None                 # -bh and -bs: Exim does not look at the load either
    load = load_average()
    if load is None or load <= int(load_reserve):
        return None
    if not main_option(config, "smtp_reserve_hosts"):
        # Exim's daemon refuses these itself, before a session starts
        return (Reply(421, "Too much load; please try again later.", close=True),
                LimitEvent(f"Connection from {who} refused: load average = {_fixed(load)}"))
    if host_in("smtp_reserve_hosts", None):
        return None
    return (Reply(421, f"{session.hostname}: Too much load; please try again later",
                  close=True),
            LimitEvent(f"temporarily refused connection from {who}: not in reserve list "
                       f"and load average = {_fixed(load)}"))


def queue_all_messages(config: Any, accept_count: int) -> bool:
    """smtp_accept_queue: more connections than this at the start of a session, and its
    messages are only queued."""
    limit = int(main_opt(config, "smtp_accept_queue") or 0)
    return limit > 0 and accept_count > limit


def no_immediate_delivery(config: Any, accept_count: int, messages: int) -> str | None:
    """Why a message just received is left on the queue for the daemon's load
    limits (smtp_accept_queue, smtp_accept_queue_per_connection), in the words of
    Exim's "no immediate delivery: ..." line (log_selector delay_delivery); None when
    it may be delivered at once.  ``messages`` counts this one."""
    if queue_all_messages(config, accept_count):
        limit = int(main_opt(config, "smtp_accept_queue") or 0)
        return f"too many connections ({accept_count}, max {limit})"
    per_conn = int(main_option(config, "smtp_accept_queue_per_connection", 10) or 0)
    if per_conn and messages > per_conn:
        return f"more than {per_conn} messages received in one connection"
    return None


# ---------------------------------------------------------------------------------------
# Per command
# ---------------------------------------------------------------------------------------
class CommandLimits:
    """The per-session command limits: smtp_accept_max_per_connection and, for hosts in
    smtp_ratelimit_hosts, the delays of smtp_ratelimit_mail and smtp_ratelimit_rcpt."""

    def __init__(self, session: LimitedSession, host_in: HostMatch,
                 sleep: Callable[[float], Any]) -> None:
        self.session = session
        self.sleep = sleep
        self.mail_rate: RateLimit | None = None
        self.rcpt_rate: RateLimit | None = None
        config = session.config
        if host_in("smtp_ratelimit_hosts", None):
            mail = main_option(config, "smtp_ratelimit_mail")
            rcpt = main_option(config, "smtp_ratelimit_rcpt")
            self.mail_rate = RateLimit.parse(str(mail), "smtp_ratelimit_mail") if mail else None
            self.rcpt_rate = RateLimit.parse(str(rcpt), "smtp_ratelimit_rcpt") if rcpt else None

    def _max_per_connection(self) -> int:
        raw = main_opt(self.session.config, "smtp_accept_max_per_connection")
        text = str(raw if raw is not None else "")
        try:
            if "$" in text or "\\" in text:
                text = expand_string(text, self.session.ctx)
            return int(text.strip() or 0)
        except Exception as exc:
            self.session.log.panic(f"failed to expand smtp_accept_max_per_connection: {exc}")
            return 0

    def on_mail(self, count: int) -> Reply | None:
        """The ``count``-th MAIL command of the connection (refused ones included, as
        Exim counts them): its delay, then the refusal when the connection has had its
        share of messages (Exim's 421, with the connection kept open)."""
        if self.mail_rate is not None:
            pause = self.mail_rate.pause(count)
            if pause:
                self.sleep(pause)
        limit = self._max_per_connection()
        if limit > 0 and count > limit:
            s = self.session
            s.log.main(f"rejected MAIL command {s.host_ident()}: too many messages in one "
                       "connection")
            return Reply(421, "too many messages in this connection")
        return None

    def on_rcpt(self, rcpt_count: int) -> None:
        """A RCPT command, the ``rcpt_count``-th of this message: its delay."""
        if self.rcpt_rate is not None:
            pause = self.rcpt_rate.pause(rcpt_count)
            if pause:
                self.sleep(pause)


# ---------------------------------------------------------------------------------------
# After DATA
# ---------------------------------------------------------------------------------------
_HEADER_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def header_section(data: bytes) -> bytes:
    """The header lines of a message (LF line endings): up to the blank line, or to the
    first line that is neither a header nor a continuation (the body starts there)."""
    end = data.find(b"\n\n")
    head = data if end < 0 else data[:end + 1]
    pos = 0
    while pos < len(head):
        nl = head.find(b"\n", pos)
        nl = len(head) if nl < 0 else nl
        line = head[pos:nl]
        if not (_HEADER_START.match(line) or (pos and line[:1] in (b" ", b"\t"))):
            return head[:pos]
        pos = nl + 1
    return head


def header_refusal(config: Any, data: bytes | FileBody) -> tuple[str, int] | None:
    """header_maxsize and header_line_maxsize: None, or the reason ("long" for the whole
    header section, "line" for one header) and the limit that was passed.  A message
    received with BDAT is in a file: only its header block is read."""
    total = int(main_opt(config, "header_maxsize") or 0)
    per_line = int(main_opt(config, "header_line_maxsize") or 0)
    if not total and not per_line:
        return None
    head = header_section(data if isinstance(data, bytes) else data.header_block()[0])
    if total and len(head) > total:
        return "long", total
    if per_line:
        # a header with its continuations, newlines included (as Exim counts it)
        length = 0
        for line in head.split(b"\n")[:-1]:
            if line[:1] in (b" ", b"\t"):
                length += len(line) + 1
            else:
                length = len(line) + 1
            if length > per_line:
                return "line", per_line
    return None


def header_reply(session: LimitedSession, why: str, limit: int) -> Reply:
    """Exim's 552 for an oversized header (and its log line, written here)."""
    who = session.host_ident(with_h=False)
    if why == "long":
        session.log.main(f"ridiculously long message header received from {who} "
                         f"(more than {limit} characters): message abandoned")
        return Reply(552, "Message header is ridiculously long")
    session.log.main(f"overlong message header line received from {who} "
                     f"(more than {limit} characters): message abandoned")
    return Reply(552, "A message header line is too long")


# ---------------------------------------------------------------------------------------
# Timeouts
# ---------------------------------------------------------------------------------------
def receive_timeout(config: Any, ctx: ExpandContext, log: Any) -> float:
    """smtp_receive_timeout in seconds (0: none), expanded first when it starts with
    "$" (it may depend on $sender_host_address and $sender_host_name)."""
    value = main_opt(config, "smtp_receive_timeout")
    if isinstance(value, str):
        try:
            return float(parse_time(expand_string(value, ctx)))
        except Exception as exc:
            log.panic(f"failed to expand smtp_receive_timeout value {value}: {exc}")
            return 300.0
    return float(value or 0)


# ---------------------------------------------------------------------------------------
# DATA deadline (pymta's own option)
# ---------------------------------------------------------------------------------------
def data_deadline(config: Any) -> float | None:
    """smtp_data_deadline in seconds (None: no deadline)."""
    value = main_opt(config, "smtp_data_deadline")
    return float(value) if value else None
