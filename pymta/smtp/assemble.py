"""Message assembly of an SMTP session: after DATA, run the DATA ACL on the message,
build the envelope and hand it to the spool writer (or, for ``-bh``, only log what
would have been written); then ask for immediate delivery.
"""
from __future__ import annotations

import traceback
from typing import Any, Callable

from pymta.config.values import main_option
from pymta.message.receive import (Envelope, arrival_log_fields, prepare_message,
                                   receive_message, report_after_commit)
from pymta.smtp.server import Reply, SmtpServer
from pymta.spool.ids import new_message_id
from pymta.taint import taint


def _parse_headers(data: bytes) -> list[str]:
    """Header lines (unfolded texts with names) of a message for $h_ in the DATA ACL."""
    head, _, _ = data.partition(b"\n\n")
    if data.startswith(b"\n"):
        return []
    out: list[str] = []
    for raw in head.decode("utf-8", "surrogateescape").split("\n"):
        if raw[:1] in (" ", "\t") and out:
            out[-1] += "\n" + raw
        elif ":" in raw:
            out.append(raw)
        else:
            break
    return [taint(h + "\n") for h in out]


class MessageAssembly:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: DATA to spool."""

    config: Any
    log: Any
    ctx: Any
    server: SmtpServer | None
    notify: Callable[[str], Any] | None
    msgid: str | None
    messages: int
    host_checking: bool
    local_caller: Any
    accepted_rcpts: list[str]
    mail_discard: bool
    controls: set[str]
    message_controls: set[str]
    acl_vars: dict[str, str]
    data_headers_add: list[str]
    data_headers_remove: list[str]
    peer_ip: str
    peer_port: int
    host_ident: Callable[..., str]                   # PeerFacts
    _run: Callable[[str, str], Any]                  # AclChecks
    _reply: Callable[[Any, str], Reply]
    _log_reject: Callable[..., None]
    _add_headers: Callable[[Any], None]
    _reset_message: Callable[[], None]               # SmtpSession

    def on_message(self, data: bytes) -> Reply:
        try:
            return self._message(data)
        except Exception:
            # Never 250 after an unexpected failure: the client keeps the message.
            self.log.panic(f"{self.host_ident()} F=<{self.server.sender if self.server else ''}> "
                           "temporarily rejected after DATA: unexpected error: "
                           + traceback.format_exc().replace("\n", "\n  "))
            return Reply(451, "Temporary local problem - please try later")

    def _message(self, data: bytes) -> Reply:
        v = self.ctx.variables
        v["message_size"] = str(len(data))
        v["message_linecount"] = str(data.count(b"\n"))
        self.ctx.headers = _parse_headers(data)
        if not self.accepted_rcpts and not self.mail_discard:
            # Every recipient was discarded: Exim accepts without running the DATA ACL.
            self._reset_message()
            return Reply(250, "OK")
        self.msgid = new_message_id()
        v["message_exim_id"] = v["message_id"] = self.msgid or ""
        res = self._run("acl_smtp_data", "data")
        if res.verdict not in ("accept", "discard"):
            self._log_reject("after DATA", res, msgid=self.msgid)
            return self._reply(res, "data")
        self._add_headers(res)
        if res.verdict == "discard" or self.mail_discard:
            self._reset_message()
            return Reply(250, "OK")
        if self.host_checking:
            return self._host_check_accept(data)
        try:
            msgid = self._spool(data)
        except Exception as exc:
            if type(exc).__name__ != "MessageTooBig":
                raise
            self.log.reject(f"{self.host_ident()} F=<{self.server.sender}> rejected after "
                            f"DATA: message too big: {exc}")
            self._reset_message()
            return Reply(552, "Message size exceeds maximum permitted")
        # The message is on the spool: whatever fails now, the answer is 250 (a 4xx
        # would make the client send it again and create a duplicate).
        try:
            self._after_spool(msgid)
        except Exception as exc:
            report_after_commit(self.log, msgid, "the SMTP session's follow-up", exc)
        return Reply(250, f"OK id={msgid}")

    def _after_spool(self, msgid: str) -> None:
        """Count the message, ask for its immediate delivery, and reset for the next."""
        self.messages += 1
        queue = self._queue_only()
        if not queue and self.notify is not None:
            try:
                self.notify(msgid)
            except Exception:
                pass   # a lost notification only delays delivery to the next queue run
        self._reset_message()

    def _queue_only(self) -> bool:
        if main_option(self.config, "queue_only", False):
            return True
        if (self.message_controls | self.controls) & {"queue", "queue_only", "freeze"}:
            return True
        per_conn = main_option(self.config, "smtp_accept_queue_per_connection", 10)
        return bool(per_conn) and self.messages > per_conn

    def _host_check_accept(self, data: bytes) -> Reply:
        """-bh: log the arrival line that would be written, but keep nothing."""
        env = self._envelope()
        try:
            prepared = prepare_message(self.config, env, data)
            self.log.main("<= " + arrival_log_fields(self.config, env, prepared), self.msgid)
        except Exception as exc:
            if type(exc).__name__ != "MessageTooBig":
                raise
            self.log.reject(f"{self.host_ident()} F=<{env.sender}> rejected after "
                            f"DATA: message too big: {exc}", self.msgid)
            self._reset_message()
            return Reply(552, "Message size exceeds maximum permitted")
        msgid = self.msgid
        self._reset_message()
        return Reply(250, f"OK id={msgid}")

    def _spool(self, data: bytes) -> str:
        return receive_message(self.config, self._envelope(), data, self.log)

    def _envelope(self) -> Any:
        """The Envelope for the message just received in this session."""
        assert self.server is not None
        v = self.ctx.variables
        sender = self.server.sender or ""
        if self.local_caller is not None:
            sender = self.local_caller.envelope_sender(sender)
        values = {
            "sender": taint(sender),
            "recipients": [taint(r) for r in self.accepted_rcpts],
            "protocol": v.get("received_protocol", "smtp"),
            "host_address": self.peer_ip,
            "host_port": self.peer_port,
            "host_name": v.get("sender_host_name") or None,
            "helo_name": v.get("sender_helo_name") or None,
            "interface_address": v.get("interface_address"),
            "interface_port": int(v.get("interface_port") or 0),
            "acl_vars": dict(self.acl_vars),
            "extra_headers": list(self.data_headers_add),
            "remove_headers": list(self.data_headers_remove),
            "frozen": "freeze" in self.message_controls,
            "submission_mode": "submission" in self.message_controls,
            "suppress_local_fixups": "suppress_local_fixups" in self.message_controls,
            "msgid": self.msgid,
            "body_type": self.server.mail_params.get("BODY"),
            "authenticated_id": v.get("authenticated_id") or None,
        }
        if self.local_caller is not None:
            values.update(self.local_caller.envelope_fields())
            values.update(host_address=None, host_port=None, host_name=None,
                          interface_address=None, interface_port=None)
        return Envelope(**values)
