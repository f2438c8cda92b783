"""What the SMTP dialogue logs (Postfix's smtpd_chat.c): protocol incidents reported by
the sans-IO server as :class:`~pymta.smtp.server.SmtpEvent` become Exim's mainlog and
rejectlog lines, under the log_selector items they belong to.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from pymta.log import log_selected
from pymta.smtp.server import SmtpEvent, SmtpServer
from pymta.spool.ids import new_message_id


def _duration(seconds: float) -> str:
    """Exim's D= format: 0s, 1m2s, 1h2m3s."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if (h or m) else "") + f"{sec}s"


class DialogueLog:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: ``on_event`` logging."""

    config: Any
    log: Any
    server: SmtpServer | None
    started: float
    notquit_reason: str | None
    _excess_logged: bool

    host_ident: Callable[..., str]           # PeerFacts

    _NOTQUIT = {"sync_error": "synchronization-error", "too_many_synprot": "bad-commands",
                "too_many_unknown": "bad-commands", "too_many_nonmail": "bad-commands",
                "command_timeout": "command-timeout",
                "data_timeout": "data-timeout", "lost": "connection-lost"}

    def on_event(self, event: SmtpEvent) -> None:
        info = event.info
        if event.name in self._NOTQUIT:
            self.notquit_reason = self._NOTQUIT[event.name]
        who = self.host_ident(with_h=False)
        if event.name == "sync_error":
            inp = info.get("input", b"").decode("latin-1")
            inp = "".join(c if 32 <= ord(c) < 127 else f"\\x{ord(c):02x}" if c not in "\r\n"
                          else ("\\r" if c == "\r" else "\\n") for c in inp)
            if "greeting" in info.get("reason", ""):
                self.log.reject(f"SMTP protocol synchronization error ({info['reason']}): "
                                f"rejected connection from {self.host_ident()} input=\"{inp}\"")
            else:
                self.log.reject(f"SMTP protocol synchronization error ({info['reason']}): "
                                f"rejected \"{info.get('command', '')}\" {self.host_ident()} "
                                f"next input=\"{inp}\"")
        elif event.name == "helo_invalid":
            self.log.reject(f"rejected {info['verb']} from {self.host_ident(with_h=False)}: "
                            "syntactically invalid argument(s): "
                            + (info.get("arg") or "(no argument given)"))
        elif event.name == "too_many_synprot":
            self.log.reject(f"SMTP call from {who} dropped: too many syntax or protocol errors "
                            f"(last command was \"{info.get('command', '')}\",  "
                            f"C={','.join(self.server.history if self.server else [])})")
        elif event.name == "too_many_nonmail":
            self.log.main(f"SMTP call from {who} dropped: too many nonmail commands "
                          f"(last was \"{info.get('command', '')}\")")
        elif event.name == "too_many_unknown":
            self.log.reject(f"SMTP call from {who} dropped: too many unrecognized commands "
                            f"(last was \"{info.get('command', '')}\")")
        elif event.name == "synprot_error":
            kind = "protocol" if info.get("code") == 503 else "syntax"
            if log_selected(self.config, f"smtp_{kind}_error"):
                self.log.main(f"SMTP {kind} error in \"{info.get('command', '')}\" "
                              f"{self.host_ident()} {info.get('text', '')}")
        elif event.name == "too_big" and not log_selected(self.config, "size_reject"):
            pass
        elif event.name == "too_big":
            line = (f"rejected from <{self.server.sender if self.server else ''}> "
                    f"{self.host_ident()}: message too big: read={info.get('size')} "
                    f"max={info.get('max')}")
            msgid = new_message_id()
            self.log.reject(line, msgid) if msgid else self.log.reject(line)
        elif event.name == "mail_too_big" and log_selected(self.config, "size_reject"):
            self.log.reject(f"rejected MAIL FROM:<{info.get('address')}> {self.host_ident()}: "
                            f"message too big: size={info.get('size')} max={info.get('max')}")
        elif event.name == "too_many_recipients":
            if not self._excess_logged:    # Exim logs the excess once per message
                self._excess_logged = True
                how = "rejected" if self.server and self.server.recipients_max_reject \
                    else "temporarily rejected"
                self.log.main(f"too many recipients: excess {how}: sender="
                              f"<{self.server.sender if self.server else ''}> {self.host_ident()}")
        elif event.name in ("command_timeout", "data_timeout", "lost") and \
                not log_selected(self.config, "lost_incoming_connection"):
            pass
        elif event.name == "command_timeout":
            self.log.main(f"SMTP command timeout on connection from {who} D={self._d()}")
        elif event.name == "data_timeout":
            self.log.main(f"SMTP data timeout (message abandoned) on connection from {who} "
                          f"F=<{self.server.sender if self.server else ''}> D={self._d()}")
        elif event.name == "lost":
            if info.get("where") == "reading message data":
                self.log.main(f"SMTP connection from {who} lost while reading message data")
            else:
                self.log.main(f"unexpected disconnection while reading SMTP command from "
                              f"{who} D={self._d()}")

    def _d(self) -> str:
        return _duration(time.monotonic() - self.started)
