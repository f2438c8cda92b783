"""ACL checks of an SMTP session (Postfix's smtpd_check.c): run the ACL for a stage,
keep its controls and added headers, turn its verdict into the SMTP reply, and write
the reject lines Exim writes.
"""
from __future__ import annotations

from typing import Any, Callable

from pymta.acl import acl_smtp_reply, run_acl
from pymta.acl.controls import CONNECTION_CONTROLS, fake_reply
from pymta.acl.engine import acl_smtp_reply_parts
from pymta.acl.logtargets import TargetedLog
from pymta.acl.ratelimit import RatelimitCache
from pymta.config.model import ConfigError
from pymta.config.values import main_option
from pymta.log import log_selected
from pymta.logevents import Rejection, write_event
from pymta.metrics import counters as metrics
from pymta.smtp.reject_details import RejectDetails
from pymta.smtp.server import Reply, SmtpServer
from pymta.taint import taint


class AclChecks:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: ACL glue."""

    config: Any
    log: Any
    ctx: Any
    server: SmtpServer | None
    controls: set[str]
    message_controls: set[str]
    connection_queue: str = ""              # named queue from a connect/HELO ACL
    message_queue: str | None = None        # named queue from a MAIL/RCPT ACL
    submission_control: str = "submission"
    ratelimit_cache: RatelimitCache
    fake_reply: tuple[int, str] | None = None   # control = fakereject / fakedefer
    notquit_reason: str | None
    quit_seen: bool
    data_headers_add: list[str]
    data_headers_remove: list[str]
    host_checking: bool
    # the message being received, once its data is read (for the rejectlog)
    reject_details: RejectDetails | None = None

    host_ident: Callable[..., str]           # PeerFacts

    def _acl_runner(self, name: str, args: Any = (), ctx: Any = None) -> Any:
        """``${acl{name}{args}}`` from an expansion during this session."""
        return run_acl(self.config, name, "data", ctx or self.ctx, self)

    message_utf8_downconvert: int | None = None   # control = utf8_downconvert[/n]

    # ------------------------------------------------------------------ ACL glue
    def _run(self, option: str, where: str) -> Any:
        self.ratelimit_cache.new_command()      # one ACL run per SMTP command
        self.ctx.variables["smtp_command"] = taint(self.server.last_command) if self.server else ""
        res = run_acl(self.config, main_option(self.config, option), where, self.ctx, self)
        if res.error and res.paniclog and res.log_message:
            # Broken ACLs are configuration errors: Exim writes them to the paniclog.
            self.log.panic(f"{self.host_ident()} {res.log_message}")
        if metrics.enabled() and res.verdict in ("deny", "defer", "drop") \
                and where != "notquit":
            metrics.acl_rejection(option, acl_smtp_reply(res, where)[0])
        if res.queue is not None:               # the ACL "queue" modifier
            if where in ("mail", "rcpt", "predata"):
                self.message_queue = res.queue
            else:
                self.connection_queue = res.queue
        for c in res.controls:
            name = c.split("/")[0]
            (self.controls if name in CONNECTION_CONTROLS or where not in
             ("mail", "rcpt", "predata", "mime", "data", "dkim")
             else self.message_controls).add(name)
            if name == "submission":
                self.submission_control = c
            elif c.split("/")[0] == "utf8_downconvert":
                self.message_utf8_downconvert = _downconvert_value(c)
            elif name in ("enforce_sync", "no_enforce_sync") and self.server is not None:
                self.server.enforce_sync = name == "enforce_sync"      # the last one wins
            elif fake_reply(c) is not None:
                self.fake_reply = fake_reply(c)
        if "no_pipelining" in self.controls and self.server is not None:
            self.server.pipelining_allowed = False
        return res

    def _reply(self, res: Any, where: str) -> Reply:
        code, text, own = acl_smtp_reply_parts(
            res, where, multiline="no_multiline_responses" not in self.controls)
        if res.verify_failed == "sender" and res.verdict not in ("accept", "discard"):
            self.sender_verify_reported = True      # see _Runner._verify_address (acl)
        if res.verdict == "drop":
            self.notquit_reason = "acl-drop"
        return Reply(code, text, close=res.verdict == "drop", own_text=own)

    def _log_reject(self, what: str, res: Any, with_sender: bool = True,
                    msgid: str | None = None) -> None:
        """``H=... F=<s> rejected RCPT <r>: msg`` style lines (mainlog + rejectlog)."""
        deferred = res.verdict == "defer"
        if res.verify_failed == "sender" and res.verify_head != "" \
                and (deferred or log_selected(self.config, "sender_verify_fail")):
            # verify_log "" (a cached callout result): Exim names only the address.
            detail = res.verify_message if res.verify_log is None else res.verify_log
            # mainlog and rejectlog, as Exim writes it (fail2ban may read either)
            self.log.reject(f"{self.host_ident()} sender verify "
                            f"{'defer' if deferred else 'fail'} for "
                            f"<{res.verify_address}>" + (f": {detail}" if detail else ""))
        msg = res.log_message
        if msg is None and res.verify_failed == "sender":
            msg = res.message or "Sender verify failed"
        if msg is None and res.verify_failed == "recipient":
            msg = res.verify_message
        if msg is None and res.verdict == "defer" and res.message:
            msg = res.message
        sender = self.server.sender if with_sender and self.server is not None else None
        event = Rejection(self.host_ident(), what, msg, sender, res.verdict == "defer")
        details = self.reject_details
        if msgid and details is not None and not self.host_checking:
            # refused after the data: the rejectlog entry has the envelope and headers
            details = details.with_removed(list(getattr(res, "remove_headers", []) or []))
            self.reject_log(res).reject(event.text(), msgid, headers=details.headers,
                                        envelope=details.envelope)
            return
        write_event(self.reject_log(res), self.config, event, msgid)

    def reject_log(self, res: Any) -> Any:
        """The log for a rejection line: the logs log_reject_target named, if it did."""
        targets = getattr(res, "log_reject_target", None)
        return self.log if targets is None else TargetedLog(self.log, targets)

    def _add_headers(self, res: Any) -> None:
        self.data_headers_add.extend(res.add_headers)
        self.data_headers_remove.extend(res.remove_headers)

    def run_notquit(self) -> None:
        """acl_smtp_notquit, for its side effects, when the session ended without QUIT."""
        if self.quit_seen or not main_option(self.config, "acl_smtp_notquit"):
            return
        self.ctx.variables["smtp_notquit_reason"] = self.notquit_reason or "connection-lost"
        try:
            self._run("acl_smtp_notquit", "notquit")
        except Exception as exc:
            self.log.panic(f"{self.host_ident()} notquit ACL failed: {exc}")


def _downconvert_value(control: str) -> int:
    """``utf8_downconvert`` (1), ``utf8_downconvert/1``, ``/0`` or ``/-1``."""
    _, slash, value = control.partition("/")
    value = value.strip() if slash else "1"
    if value not in ("1", "0", "-1"):
        raise ConfigError(f'bad value "{value}" for control = utf8_downconvert '
                          "(1, 0 or -1)")
    return int(value)
