"""Message assembly of an SMTP session: after DATA, the message goes to the spool in
one form.

The data (bytes) is parsed once into the spool image (:func:`prepare_message`: headers
with Received: and local fixups, body offset); the DATA ACL sees exactly those headers
(as Exim's does: ``$h_received:`` is our own Received: header); its header changes,
variables and controls go into the same image (:func:`apply_data_acl`); the spool writer
serialises it (:func:`receive_message`), or ``-bh`` only logs what would be written.
Then immediate delivery is requested.
"""
from __future__ import annotations

import traceback
from typing import Any, BinaryIO, Callable

from pymta import proctitle, rfc2047
from pymta.acl.content import ContentScan, run_mime_acl
from pymta.acl.spam import SCAN_VARIABLES, spool_spam_variables
from pymta.caller import qualify, qualify_domains, untrusted_may_set_sender
from pymta.config.values import main_option
from pymta.expand.message_vars import body_variables, body_visible
from pymta.log import log_selected
from pymta.logarrival import pipelining_field
from pymta.logevents import Rejection, write_event
from pymta.message.body import FileBody
from pymta.message.envelope import Envelope
from pymta.message.queue_policy import LoadQueueing, queue_only_file_exists
from pymta.message.receive import (
    MessageTooBig,
    PreparedMessage,
    apply_data_acl,
    arrival_log_fields,
    prepare_message,
    receive_message,
    report_after_commit,
)
from pymta.message.uucp_from import take_from_line
from pymta.smtp.limits import header_refusal, header_reply, no_immediate_delivery
from pymta.smtp.option_trace import checked_host_option
from pymta.smtp.reject_details import RejectDetails, reject_details
from pymta.smtp.server import Reply, SmtpServer
from pymta.spool.ids import new_message_id
from pymta.taint import taint
from pymta.tls.session import TLSFacts


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
    envelope: Envelope | None
    mail_discard: bool
    controls: set[str]
    message_controls: set[str]
    message_utf8_downconvert: int | None
    connection_queue: str
    message_queue: str | None
    load_queueing: LoadQueueing
    acl_vars: dict[str, str]
    data_headers_add: list[str]
    data_headers_remove: list[str]
    peer_ip: str
    peer_port: int
    accept_count: int
    in_daemon: bool
    hostname: str
    content_scan: ContentScan | None = None          # the message the ACLs may scan
    reject_details: RejectDetails | None = None      # AclChecks (the rejectlog)
    fake_reply: tuple[int, str] | None
    host_ident: Callable[..., str]                   # PeerFacts
    _run: Callable[[str, str], Any]                  # AclChecks
    _reply: Callable[[Any, str], Reply]
    _log_reject: Callable[..., None]
    _add_headers: Callable[[Any], None]
    _reset_message: Callable[[], None]               # SmtpSession
    cutthrough: Any                                  # CutthroughGlue
    cutthrough_after_spool: Callable[[str, str], tuple[str, Reply | None]]
    cutthrough_done: Callable[[str], None]
    dkim_verify: Callable[[Envelope, PreparedMessage], Reply | None]     # DkimVerification
    hold_deliver: Callable[[str], bool]


    @property
    def accepted_rcpts(self) -> list[str]:          # SmtpSession
        raise NotImplementedError
    def on_message(self, data: bytes | FileBody) -> Reply:
        try:
            return self._message(data)
        except Exception:
            # Never 250 after an unexpected failure: the client keeps the message.
            self.log.panic(f"{self.host_ident()} F=<{self.server.sender if self.server else ''}> "
                           "temporarily rejected after DATA: unexpected error: "
                           + traceback.format_exc().replace("\n", "\n  "))
            return Reply(451, "Temporary local problem - please try later")

    def _message(self, data: bytes | FileBody) -> Reply:
        v = self.ctx.variables
        v["message_size"] = str(len(data))
        v["message_linecount"] = str(data.count(b"\n") if isinstance(data, bytes)
                                     else data.newlines)
        too_long = header_refusal(self.config, data)
        if too_long is not None:
            self._reset_message()
            return header_reply(self, *too_long)
        if not self.accepted_rcpts and not self.mail_discard:
            # Every recipient was discarded: Exim accepts without running the DATA ACL.
            self._reset_message()
            return Reply(250, "OK")
        self.msgid = new_message_id()
        v["message_exim_id"] = v["message_id"] = self.msgid or ""
        data = self._ignore_from_line(data)
        env = self._envelope()
        try:
            prepared = prepare_message(self.config, env, data)
        except MessageTooBig as exc:
            write_event(self.log, self.config,
                        Rejection(self.host_ident(), "after DATA", f"message too big: {exc}",
                                  env.sender),
                        self.msgid if self.host_checking else None)
            self._reset_message()
            return Reply(552, "Message size exceeds maximum permitted")
        # What rewriting logged belongs before the DATA ACL's lines (as Exim logs it)
        for kind, text in prepared.rewrite_log:
            (self.log.panic if kind == "panic" else self.log.main)(text, self.msgid)
        prepared.rewrite_log = []
        parsed = prepared.parsed
        if parsed is not None and (parsed.dropped or parsed.blank_line_missing):
            # as Exim counts: not the dropped white-space lines' bytes, but a blank line
            # that the body's start implies
            v["message_size"] = str(int(v["message_size"]) - parsed.dropped)
            v["message_linecount"] = str(int(v["message_linecount"])
                                         + parsed.blank_line_missing)
        # The one header list: what the DATA ACL sees is what the spool gets.
        self.ctx.headers = [taint(h) for h in prepared.visible_headers()]
        v.update(_body_variables(self.config, prepared))
        if env.sender != v.get("sender_address"):
            # the rewrite section changed the sender: the DATA ACL sees the new one
            lp, at, dom = env.sender.rpartition("@")
            v["sender_address"] = taint(env.sender)
            v["sender_address_local_part"] = taint(lp if at else env.sender)
            v["sender_address_domain"] = taint(dom if at else "")
        v["recipients"] = taint(", ".join(env.recipients))     # rewritten ones too
        self.content_scan = self._content_scan(prepared)
        self.reject_details = reject_details(env, prepared)
        try:
            return self._after_data(env, prepared)
        finally:
            self.reject_details = None
            self._content_scan_done()       # (PRDR refused every recipient)

    def _ignore_from_line(self, data: bytes | FileBody) -> bytes | FileBody:
        """The message without a UUCP "From " line that a client in ignore_fromline_hosts
        (a local -bs caller with ignore_fromline_local) sent before the headers; the
        sender uucp_from_sender makes of the line replaces the envelope sender as a
        trusted caller's -f would (an untrusted -bs caller's only where
        untrusted_set_sender allows it).  Other data is left as it is: a "From " line
        then starts the body, as in Exim."""
        if self.peer_ip:
            allowed = checked_host_option(self, "ignore_fromline_hosts")
        else:
            allowed = bool(main_option(self.config, "ignore_fromline_local", False))
        start = data[:5] if isinstance(data, bytes) else data.ends(0, 5)[0]
        if not allowed or start != b"From ":
            return data
        size = len(data)
        data, given = take_from_line(self.config, data, self.log)
        if len(data) == size:
            return data                     # the line did not match uucp_from_pattern
        # $message_size and $message_linecount still count the line, as in Exim
        if self.peer_ip:
            checked_host_option(self, "ignore_fromline_hosts")   # again, as Exim does
        if given is None:
            return data
        sender = qualify(given.strip().strip("<>"), qualify_domains(self.config)[0])
        caller = self.local_caller
        trusted = caller is None or caller.trusted
        if not trusted and not untrusted_may_set_sender(self.config, sender, caller.login):
            return data
        assert self.envelope is not None
        env = self.envelope
        env.sender = sender
        if self.server is not None:
            self.server.sender = sender
        lp, at, dom = sender.rpartition("@")
        v = self.ctx.variables
        v["sender_address"] = taint(sender)
        v["sender_address_local_part"] = taint(lp if at else sender)
        v["sender_address_domain"] = taint(dom if at else "")
        if trusted:
            # as for a trusted caller's -f: no authenticated sender, no Sender: header
            v.pop("authenticated_sender", None)
            env.authenticated_sender = None
            env.originator_name = ""
            env.sender_set_by_caller = True
        return data

    def _content_scan_done(self) -> None:
        """Remove the scan directory (unless control = no_mbox_unspool): after the DATA
        ACL, before the message is spooled and the message's controls are reset."""
        scan, self.content_scan = self.content_scan, None
        if scan is not None and "no_mbox_unspool" not in self.message_controls:
            scan.cleanup()

    def _content_scan(self, prepared: PreparedMessage) -> ContentScan:
        """What regex, mime_regex, decode, spam and malware scan (in the PRDR, MIME and
        DATA ACLs); its files go when the DATA ACL is over.  The scanners' .eml file is
        copied from the received data, a block at a time when it is in a file."""
        for name in SCAN_VARIABLES:
            self.ctx.variables.pop(name, None)      # a new message: nothing scanned yet
        data, start = prepared.data, prepared.body_start

        def source() -> bytes:
            # the body is copied out only if regex or the MIME ACL asks for it
            return data[start:] if isinstance(data, bytes) else data.read_from(start)

        def write_body(out: BinaryIO) -> None:
            if isinstance(data, bytes):
                out.write(memoryview(data)[start:])
            else:
                data.write_to(out, start)
        return ContentScan(list(self.ctx.headers or []), source, self.msgid or "",
                           str(main_option(self.config, "spool_directory", "")),
                           write_body=write_body,
                           check_rfc2047_length=rfc2047.check_length_of(self.config))

    def _after_data(self, env: Envelope, prepared: PreparedMessage) -> Reply:
        """The DKIM, PRDR and DATA ACLs, then the spool."""
        refused = self.dkim_verify(env, prepared)        # before the MIME ACL, as Exim
        if refused is not None:
            self._reset_message()
            return refused
        # The MIME ACL, then PRDR's per-recipient ACL, then the DATA ACL (Exim's order)
        assert self.content_scan is not None
        mark = (len(self.data_headers_add), len(self.data_headers_remove))
        mime = self._run_mime_acl(self.content_scan)
        if mime is not None and mime.verdict != "discard":
            self._content_scan_done()
            self._log_reject("during MIME ACL checks", mime, msgid=self.msgid)
            return self._reply(mime, "data")
        leading = self._prdr(env, prepared)
        if leading is None:
            return self._data_acl_and_spool(env, prepared, mime, mark)
        if not env.recipients:
            # Exim 4.96 answers 250 here and keeps nothing; the PRDR draft asks for a
            # failure when every recipient was refused, and a 250 would be a lie.
            self._reset_message()
            return Reply(550, "PRDR - all recipients rejected", leading=tuple(leading))
        some = len(env.recipients) < len(leading) - 1     # leading starts with the 353
        reply = self._data_acl_and_spool(env, prepared, mime, mark)
        if reply.code == 250 and reply.text.startswith("OK id="):
            reply = Reply(250, f"id={reply.text[6:]} message accepted"
                          + (" for some recipients" if some else ""))
        return Reply(reply.code, reply.text, reply.close, leading=tuple(leading))

    def _prdr(self, env: Envelope, prepared: PreparedMessage) -> list[Reply] | None:
        """PRDR: acl_smtp_data_prdr for each recipient of a message whose MAIL asked for
        PRDR and that has more than one recipient; the per-recipient replies (after a
        353), or None.  Refused and deferred recipients leave the envelope."""
        if "PRDR" not in env.mail_params or len(env.recipients) < 2:
            return None
        v = self.ctx.variables
        replies = [Reply(353, "PRDR content analysis beginning")]
        keep = []
        for address in env.recipients:
            lp, _, dom = address.rpartition("@")
            v["local_part"], v["domain"] = taint(lp), taint(dom.lower())
            res = self._run("acl_smtp_data_prdr", "prdr")
            if res.verdict in ("accept", "discard"):
                self.log.main(f"PRDR R=<{address}> acceptance", self.msgid)
                replies.append(Reply(250, f"PRDR R=<{address}> acceptance"))
                keep.append(True)
                continue
            reply = self._reply(res, "data")
            # a deferred recipient gets 450 (as Exim), not the DATA ACL's 451
            code = 450 if res.verdict == "defer" else reply.code
            self.log.main(f"PRDR {address} {reply.text}", self.msgid)
            replies.append(Reply(code, reply.text))
            keep.append(False)
        v["local_part"] = v["domain"] = ""
        env.received_recipients = list(env.recipients)    # Exim logs them all
        env.retain_recipients(keep)
        spool = prepared.spool        # built from the envelope's list, in its order
        spool.recipients = [r for r, k in zip(spool.recipients, keep) if k]
        v["recipients"] = ", ".join(env.recipients)
        v["recipients_count"] = str(len(env.recipients))
        env.prdr = True
        return replies

    def _data_acl_and_spool(self, env: Envelope, prepared: PreparedMessage,
                            mime: Any, mark: tuple[int, int]) -> Reply:
        """The DATA ACL (unless the MIME ACL discarded the message: ``mime``), then the
        spool (or -bh's pretence): the final reply.  ``mark``: how many header changes
        there were before the MIME ACL (the later ones go into the message here)."""
        pre_add, pre_remove = mark
        try:
            res = mime or self._run("acl_smtp_data", "data")
        finally:
            self._content_scan_done()
        if res.verdict not in ("accept", "discard"):
            self._log_reject("after DATA", res, msgid=self.msgid)
            return self._reply(res, "data")
        self._add_headers(res)
        if res.verdict == "discard" or self.mail_discard:
            self._reset_message()
            return Reply(250, "OK")
        env.frozen = "freeze" in self.message_controls
        env.acl_vars = dict(self.acl_vars)
        fake = self.fake_reply
        if fake is not None and fake[0] == 550:
            env.arrival_mark = "(="          # Exim's mark for a fakereject arrival
        apply_data_acl(prepared, env, self.data_headers_add[pre_add:],
                       self.data_headers_remove[pre_remove:])
        spool_spam_variables(self.ctx.variables, prepared.spool.variables)
        if self.host_checking:
            reply = self._host_check_accept(env, prepared)
            return Reply(*fake) if fake is not None else reply
        if self.cutthrough is not None:
            return self._spool_cutthrough(env, prepared)
        msgid = self._spool(env, prepared)
        # The message is on the spool: whatever fails now, the answer is 250 (a 4xx
        # would make the client send it again and create a duplicate).
        try:
            self._after_spool(msgid)
        except Exception as exc:
            report_after_commit(self.log, msgid, "the SMTP session's follow-up", exc)
        if fake is not None:
            return Reply(*fake)       # kept and delivered all the same (fakereject)
        return Reply(250, f"OK id={msgid}")

    def _spool_cutthrough(self, env: Envelope, prepared: PreparedMessage) -> Reply:
        """Spool the message, then let the cutthrough connection decide its fate."""
        outcome: list[tuple[str, Reply | None]] = []

        def send(msgid: str) -> bool:
            outcome.append(self.cutthrough_after_spool(msgid, env.sender))
            return outcome[-1][0] != "gone"

        msgid = receive_message(self.config, env, prepared.data, self.log,
                                prepared=prepared, after_spool=send)
        what, reply = outcome[0] if outcome else ("queued", None)
        if what == "gone":
            self._reset_message()
            return reply or Reply(451, "Temporary local problem - please try later")
        try:
            if what == "delivered":
                self.messages += 1
                self.cutthrough_done(msgid)
                self._reset_message()
            else:
                self._after_spool(msgid)
        except Exception as exc:
            report_after_commit(self.log, msgid, "the SMTP session's follow-up", exc)
        return Reply(250, f"OK id={msgid}")

    def _run_mime_acl(self, scan: ContentScan) -> Any:
        """acl_smtp_mime once per MIME part; the first result that is not "accept"
        (None when there is no MIME ACL or every part was accepted)."""
        if not main_option(self.config, "acl_smtp_mime"):
            self.ctx.variables["mime_part_count"] = "-1"
            return None

        def run_part() -> Any:
            res = self._run("acl_smtp_mime", "mime")
            if res.verdict == "accept":
                self._add_headers(res)
            return res
        return run_mime_acl(scan, self.ctx.variables, run_part)

    def _after_spool(self, msgid: str) -> None:
        """Count the message, ask for its immediate delivery, and reset for the next."""
        self.messages += 1
        if self.in_daemon:
            proctitle.message_received(msgid, self.host_ident(with_h=False))
        queue = self._queue_only(msgid)
        if not queue and self.hold_deliver(msgid):
            self._reset_message()         # delivered on the callout=hold connection
            return
        if not queue and self.notify is not None:
            named = self.message_queue if self.message_queue is not None \
                else self.connection_queue
            try:
                # a message in a named queue travels as "queue/id" to the worker
                self.notify(f"{named}/{msgid}" if named else msgid)
            except Exception:
                pass   # a lost notification only delays delivery to the next queue run
        self._reset_message()

    def _queue_only(self, msgid: str) -> bool:
        if main_option(self.config, "queue_only", False):
            return True
        if (self.message_controls | self.controls) & {"queue", "queue_only", "freeze"}:
            return True
        if queue_only_file_exists(self.config):
            return True
        why = self.load_queueing.reason() or \
            no_immediate_delivery(self.config, self.accept_count, self.messages)
        if why is not None and log_selected(self.config, "delay_delivery"):
            self.log.main(f"no immediate delivery: {why}", msgid)
        return why is not None

    def _host_check_accept(self, env: Envelope, prepared: PreparedMessage) -> Reply:
        """-bh: log the arrival line that would be written, but keep nothing."""
        self.log.main(f"{env.arrival_mark} " + arrival_log_fields(self.config, env, prepared),
                      self.msgid)
        msgid = self.msgid
        self._reset_message()
        return Reply(250, f"OK id={msgid}")

    def _spool(self, env: Envelope, prepared: PreparedMessage) -> str:
        """Write the prepared message durably; its id."""
        return receive_message(self.config, env, prepared.data, self.log, prepared=prepared)

    def _envelope(self) -> Envelope:
        """The envelope of the message just received, completed with what is known at
        DATA: HELO and host name, protocol, ACL results so far, the message id."""
        assert self.server is not None and self.envelope is not None
        v = self.ctx.variables
        env = self.envelope
        env.protocol = v.get("received_protocol", "smtp")
        env.queue_name = self.message_queue if self.message_queue is not None \
            else self.connection_queue
        env.acl_vars = dict(self.acl_vars)
        env.extra_headers = list(self.data_headers_add)
        env.remove_headers = list(self.data_headers_remove)
        env.frozen = "freeze" in self.message_controls
        env.submission_mode = "submission" in self.message_controls
        env.submission_control = getattr(self, "submission_control", "submission")
        env.suppress_local_fixups = "suppress_local_fixups" in self.message_controls
        env.utf8_downconvert = self.message_utf8_downconvert
        env.msgid = self.msgid
        env.allow_unqualified_sender = self.server.unqualified_sender is not None
        env.allow_unqualified_recipient = self.server.unqualified_recipient is not None
        env.chunking = self.server.message_chunked
        env.reception_started = self.server.data_started
        env.pipelining_field = pipelining_field(
            self.server.pipelining_advertised, self.server.pipelining_used,
            self.server.pipe_connect, self.server.pipe_connect_used)
        if self.local_caller is None:
            env.host_name = v.get("sender_host_name") or None
            env.host_dnssec = v.get("sender_host_dnssec") == "yes"
            env.helo_name = v.get("sender_helo_name") or None
            env.interface_address = v.get("interface_address")
            env.interface_port = int(v.get("interface_port") or 0)
            env.proxy_local_address = v.get("proxy_local_address") or None
            env.ident = v.get("sender_ident") or None     # -oMt, or -bs with -oMa
            env.authenticated_id = v.get("authenticated_id") or None
            env.authenticator = v.get("sender_host_authenticated") or None
            env.authenticated_sender = v.get("authenticated_sender") or None
            facts = getattr(self, "tls_facts", None)
            if facts is not None:
                _envelope_tls(env, facts, v)
        else:
            env.helo_name = v.get("sender_helo_name") or None
            env.authenticated_id = v.get("authenticated_id") or None
            env.authenticator = v.get("sender_host_authenticated") or None     # -oMaa
        return env


def _envelope_tls(env: Envelope, facts: TLSFacts, variables: dict[str, Any]) -> None:
    """The inbound TLS facts the spool, the "<=" line and the Received header keep (the
    certificates as the PEM text the session already made for $tls_in_peercert and
    $tls_in_ourcert)."""
    env.tls_cipher = facts.cipher_exim
    env.tls_ver = facts.version
    env.tls_cipher_std = facts.cipher_std
    env.tls_certificate_verified = facts.certificate_verified
    env.tls_peerdn = taint(facts.peerdn) if facts.peerdn else None
    env.tls_sni = taint(facts.sni) if facts.sni else None
    env.tls_peercert = variables.get("tls_in_peercert") or None
    env.tls_ourcert = variables.get("tls_in_ourcert") or None
    env.tls_resumption = 1 | (16 if facts.resumed else 0)


def _body_variables(config: Any, prepared: PreparedMessage) -> dict[str, str]:
    """$message_body, $message_body_end and $message_body_size for the DATA ACL (as
    Exim sets them there from the data file)."""
    visible, newlines = body_visible(config)
    data, start = prepared.data, prepared.body_start
    if isinstance(data, FileBody):
        head, tail = data.ends(start, visible)
    else:
        head, tail = data[start:start + visible], data[max(start, len(data) - visible):]
    return body_variables(head, tail, max(0, len(data) - start), visible, newlines)
