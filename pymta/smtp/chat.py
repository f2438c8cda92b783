"""What the SMTP dialogue logs (Postfix's smtpd_chat.c): protocol incidents reported by
the sans-IO server as :class:`~pymta.smtp.server.SmtpEvent` become Exim's mainlog and
rejectlog lines, under the log_selector items they belong to.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from pymta.config.options import format_time
from pymta.log import duration, log_selected
from pymta.logevents import (
    CallDropped,
    CommandError,
    CommandRefused,
    ConnectionLost,
    ExcessRecipients,
    InvalidHelo,
    LostConnection,
    SessionEvent,
    SizeRejection,
    SyncError,
    write_event,
)
from pymta.smtp.connection_log import transaction_abandoned
from pymta.smtp.limits import LimitEvent
from pymta.smtp.option_trace import checked_host_option
from pymta.smtp.server import SmtpEvent, SmtpServer
from pymta.spool.ids import new_message_id


class DialogueLog:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: ``on_event`` logging."""

    config: Any
    log: Any
    server: SmtpServer | None
    started: float
    notquit_reason: str | None
    connection_nolog: bool
    _excess_logged: bool
    peer_ip: str                             # PeerFacts

    host_ident: Callable[..., str]           # PeerFacts

    _NOTQUIT = {"sync_error": "synchronization-error", "too_many_synprot": "bad-commands",
                "too_many_unknown": "bad-commands", "too_many_nonmail": "bad-commands",
                "command_timeout": "command-timeout",
                "data_timeout": "data-timeout", "data_deadline": "data-timeout",
                "lost": "connection-lost"}

    def on_event(self, event: SmtpEvent) -> None:
        info = event.info
        if event.name in self._NOTQUIT:
            self.notquit_reason = self._NOTQUIT[event.name]
        if event.name == "lost" and info.get("where") != "reading message data" \
                and self.server is not None:
            transaction_abandoned(self, self.server, "connection lost")
        if event.name == "lost" and info.get("first_line_read") and self.peer_ip:
            # Exim had asked this at the end of the message's first line (a "From "
            # line from such a host is taken off); -bh shows the question
            checked_host_option(self, "ignore_fromline_hosts")
        incident = self._incident(event.name, info)
        if incident is not None:
            write_event(self.log, self.config, incident,
                        new_message_id() if event.name == "too_big" else None)

    def _incident(self, name: str, info: dict[str, Any]) -> SessionEvent | None:
        """The log line for a protocol incident, or None for those Exim does not log."""
        who = self.host_ident(with_h=False)
        sender = (self.server.sender if self.server else None) or ""
        if name == "sync_error":
            return SyncError(info["reason"], self.host_ident(), info.get("input", b""),
                             info.get("command", ""))
        if name == "mail_no_helo":
            return CommandRefused(who)
        if name == "xclient_refused":
            return CommandRefused(who, "XCLIENT", info["reason"])
        if name == "helo_invalid":
            return InvalidHelo(info["verb"], who, info.get("arg") or "")
        if name in ("too_many_synprot", "too_many_nonmail", "too_many_unknown"):
            history = tuple(self.server.history) if self.server else ()
            return CallDropped(who, name.rsplit("_", 1)[1], info.get("command", ""), history)
        if name == "synprot_error":
            return CommandError(info.get("command", ""), self.host_ident(),
                                info.get("error", info.get("text", "")),
                                protocol=info.get("code") == 503)
        if name in ("too_big", "mail_too_big"):
            return SizeRejection(self.host_ident(),
                                 info.get("address", "") if name == "mail_too_big" else sender,
                                 info.get("size", 0), info.get("max", 0),
                                 at_mail=name == "mail_too_big")
        if name == "too_many_recipients" and not self._excess_logged:
            self._excess_logged = True           # Exim logs the excess once per message
            return ExcessRecipients(self.host_ident(), sender,
                                    bool(self.server and self.server.recipients_max_reject))
        if name == "data_deadline":
            return LimitEvent(
                f"SMTP data deadline (smtp_data_deadline = {format_time(int(info['seconds']))})"
                f" passed (message abandoned) on connection from {who} F=<{sender}> "
                f"D={format_time(int(time.monotonic() - self.started))}")
        if name == "lost" and info.get("where") != "reading message data" \
                and (self.server is None or self.server.sender is None):
            # Exim: an EOF between transactions is no unexpected disconnection
            if self.connection_nolog:
                return None
            return ConnectionLost(who, duration(time.monotonic() - self.started,
                                                log_selected(self.config, "millisec")))
        if name in ("command_timeout", "data_timeout", "lost"):
            how = "lost_data" if info.get("where") == "reading message data" and name == "lost" \
                else name
            return LostConnection(how, who, int(time.monotonic() - self.started), sender,
                                  stage=info.get("stage", ""))
        return None

