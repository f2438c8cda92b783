"""One incoming SMTP connection: the command dialogue and its policy (the handler glue).

:class:`SmtpSession` is the :class:`~pymta.smtp.server.SmtpHandler` of one connection. Its
concerns live in their own modules and are mixed in:

- :mod:`pymta.smtp.peer`: who the client is (addresses, host name lookup, HELO check);
- :mod:`pymta.smtp.checks`: running the ACL of each stage and logging rejections;
- :mod:`pymta.smtp.assemble`: the message after DATA, DATA ACL, envelope, spooling;
- :mod:`pymta.smtp.chat`: logging the protocol incidents the server reports;
- :mod:`pymta.smtp.tls_glue`: STARTTLS and the TLS facts of the connection;
- :mod:`pymta.smtp.auth_glue`: SMTP AUTH (advertising, the exchange, AUTH= on MAIL);
- :mod:`pymta.smtp.dkim_glue`: DKIM verification and the DKIM ACL after the data;
- :mod:`pymta.smtp.socket_loop`: the socket, timeouts and the server's actions.

:func:`run_session` puts them together for one accepted socket; its pieces
(:func:`prepare_session`, :func:`start_session`, :func:`finish_session`) are shared with
``-bh``/``-bs`` (:mod:`pymta.smtp.local`).
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from typing import Any, Callable

from pymta import proctitle
from pymta.acl import acl_smtp_reply, split_code
from pymta.acl.callout_hold import HoldDeliverer
from pymta.acl.dnslists import DnsListCache
from pymta.acl.ratelimit import RatelimitCache
from pymta.address import Address, dequote_local_part
from pymta.arc.verify import clear_variables as arc_clear_variables
from pymta.caller import qualify_domains
from pymta.config.values import expanded_int, main_option
from pymta.debuglog import debug
from pymta.dscp import set_dscp
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.log import log_selected
from pymta.logevents import Rejection, write_event
from pymta.match import forget_host_answers
from pymta.message.body import FileBody
from pymta.message.envelope import Envelope
from pymta.message.queue_policy import LoadQueueing
from pymta.metrics import counters as metrics
from pymta.rewrite.engine import rewrite_command_path
from pymta.rewrite.setup import main_rewriter
from pymta.routing import route_address
from pymta.routing.percent import percent_hack
from pymta.routing.route import expand_once
from pymta.smtp import connection_log
from pymta.smtp.assemble import MessageAssembly
from pymta.smtp.auth_glue import AuthGlue
from pymta.smtp.bdat import BdatReceiver
from pymta.smtp.chat import DialogueLog
from pymta.smtp.checks import AclChecks
from pymta.smtp.cutthrough_api import CutthroughOpener
from pymta.smtp.cutthrough_glue import CutthroughGlue
from pymta.smtp.dkim_glue import DkimVerification
from pymta.smtp.etrn import EtrnSetupFailed, command_job, etrn_command, queue_run_job, start_etrn
from pymta.smtp.hold_glue import CalloutHoldGlue
from pymta.smtp.limits import (
    CommandLimits,
    connection_refusal,
    data_deadline,
    receive_timeout,
)
from pymta.smtp.mailauth_glue import MailAuthGlue
from pymta.smtp.option_trace import (
    AFTER_CONNECT,
    AFTER_LOOKUP,
    AT_EHLO,
    BEFORE_LOOKUP,
    checked_host_option,
    trace_host_options,
)
from pymta.smtp.peer import PROXY_FAILED, PeerFacts
from pymta.smtp.peer import endpoints as _endpoints
from pymta.smtp.peer import host_in as _host_in
from pymta.smtp.server import (
    Reply,
    SmtpHandler,
    SmtpServer,
    parse_command_address,
    size_param,
    size_value,
)
from pymta.smtp.socket_loop import Connection, TlsWrap, perform, run_dialogue
from pymta.smtp.tls_glue import TlsGlue
from pymta.smtp.xclient import EHLO_KEYWORD as XCLIENT_KEYWORD
from pymta.smtp.xclient import XclientSyntaxError, parse_xclient
from pymta.spool.files import configured_spool
from pymta.spool.space import SPACE_SHORTAGE, check_fs
from pymta.taint import taint

__all__ = ["SmtpSession", "run_session", "prepare_session", "start_session",
           "finish_session", "build_server"]


#: MAIL parameters that keep a message from being delivered by cutthrough.
_CUTTHROUGH_EXCLUDED = frozenset(("PRDR", "SMTPUTF8", "RET", "ENVID"))


class SmtpSession(PeerFacts, AclChecks, MessageAssembly, CutthroughGlue, CalloutHoldGlue,
                   DialogueLog, TlsGlue, AuthGlue, MailAuthGlue, DkimVerification,
                   SmtpHandler):
    """The policy side of one connection (ACLs, spooling, logging)."""

    def __init__(self, config: Any, log: Any, peer: tuple[str, int], local: tuple[str, int],
                 notify: Callable[[str], Any] | None = None, stop_event: Any = None,
                 sleep: Callable[[float], Any] | None = None) -> None:
        forget_host_answers()           # named host lists are remembered per connection
        self.config = config
        self.log = log
        self.notify = notify
        self.stop_event = stop_event
        self.sleep = sleep or time.sleep
        self.started = time.monotonic()
        self.peer_ip, self.peer_port = peer
        self.acl_vars: dict[str, str] = {}
        self.ctx = ExpandContext(config=config, acl_vars=self.acl_vars)
        hostname = main_option(config, "primary_hostname", "localhost")
        active = main_option(config, "smtp_active_hostname")
        if active:
            try:
                hostname = expand_string(str(active), self.ctx) or hostname
            except Exception as exc:
                log.panic(f"failed to expand smtp_active_hostname: {exc}")
        self.hostname = str(hostname)
        self.ctx.acl_runner = self._acl_runner
        v = self.ctx.variables
        v.update(sender_host_address=self.peer_ip, sender_host_port=str(self.peer_port),
                 sender_host_name="", sender_helo_name="", sender_address="",
                 local_part="", domain="", recipients="", recipients_count="0",
                 rcpt_count="0", received_protocol="smtp", interface_address=local[0],
                 interface_port=str(local[1]), received_port=str(local[1]),
                 smtp_command="", authenticated_id="", message_size="-1",
                 smtp_active_hostname=self.hostname,
                 sender_rcvhost=f"[{self.peer_ip}]", host_address=self.peer_ip)
        self.controls: set[str] = set()
        # ratelimit results already computed in this connection/message/command
        self.ratelimit_cache = RatelimitCache()
        self.connection_queue = ""              # a named queue set before MAIL
        self.message_controls: set[str] = set()
        self.rcpt_local_part: str | None = None     # as the client wrote it (RCPT ACL)
        # sends the replies gathered so far (before an ACL delay); None under -bh/-bs
        self.flush_output: Callable[[], None] | None = None
        self.mail_discard = False
        # The message being received: created at MAIL, recipients added at RCPT.
        self.envelope: Envelope | None = None
        self.messages = 0
        self.load_queueing = LoadQueueing(config)   # queue_only_load, latched per connection
        self.server: SmtpServer | None = None
        self.msgid: str | None = None
        self.quit_seen = False
        self.notquit_reason: str | None = None
        self._helo_checked: str | None = None
        # -bh: run the ACLs but never spool (see pymta.smtp.local).
        self.host_checking = False
        self.xclient_done = False              # an XCLIENT succeeded (a proxied session)
        self.client_socket: socket.socket | None = None     # (control = dscp)
        self.host_checking_callouts = False    # -bhc: callouts are made under -bh
        # dnslists answers kept for the session (pymta.acl.dnslists).
        self.dnslist_cache = DnsListCache()
        # -bs: the local caller (pymta.smtp.local.LocalCaller); None for TCP sessions.
        self.local_caller: Any = None
        # Server-side TLS for StartTls actions (pymta.tls sets it; None: no TLS).
        self.tls_wrap: TlsWrap | None = None
        # the daemon's connections in progress, this one included (0: not the daemon)
        self.accept_count = 0
        self.in_daemon = False
        # hosts_connection_nolog: no "SMTP connection from" lines for this client
        self.connection_nolog = False
        self.limits: CommandLimits | None = None          # set by prepare_session
        self.auth_init()

    def set_local_caller(self, caller: Any) -> None:
        """Make this a local (-bs) session: no client host, protocol local-smtp."""
        self.local_caller = caller
        v = self.ctx.variables
        v.update(sender_host_address="", sender_host_port="", host_address="",
                 received_protocol="local-smtp", sender_rcvhost="", interface_address="",
                 interface_port="", received_port="", sender_ident=caller.login)



    # ------------------------------------------------------------------ SmtpHandler
    def should_stop(self) -> bool:
        return bool(self.stop_event is not None and self.stop_event.is_set())

    def on_helo(self, verb: str, name: str) -> Reply | None:
        v = self.ctx.variables
        old = v.get("sender_helo_name", "")
        v["sender_helo_name"] = taint(name)
        self.helo_lookup(name)
        if verb == "EHLO":
            trace_host_options(self, AT_EHLO)
        if _host_in(self.config, "helo_verify_hosts", self, None) and not self.verify_helo():
            # Exim names the refused HELO in the line: "from (name) [ip]".
            self.log.reject(f"rejected \"{verb} {name}\" from {self.host_ident(with_h=False)}")
            v["sender_helo_name"] = old
            return Reply(550, f"{verb} argument does not match calling host")
        if _host_in(self.config, "helo_try_verify_hosts", self, None):
            self.verify_helo()
        res = self._run("acl_smtp_helo", "helo")
        if res.verdict not in ("accept", "discard"):
            v["sender_helo_name"] = old
            self._log_reject(f"EHLO or HELO {name}", res, with_sender=False)
            return self._reply(res, "helo")
        v["received_protocol"] = ("local-" if self.local_caller is not None else "") + \
            ("esmtp" if verb == "EHLO" else "smtp") + ("s" if self.tls_facts else "")
        if self.local_caller is None:
            v["sender_rcvhost"] = self._rcvhost()
        self.auth_after_helo(verb)
        self._reset_message()
        if self.in_daemon:
            proctitle.handling_connection(self.host_ident(with_h=False), bool(self.tls_facts))
        if self.local_caller is not None:
            # -bs: no client address to show; Exim names the calling user instead.
            return Reply(250, f"{self.hostname} Hello {self.local_caller.login} at {name}")
        host_name, ident = v.get("sender_host_name") or "", v.get("sender_ident") or ""
        if host_name or ident:
            # Exim greets the looked-up (or -oMs) name, and the -oMt ident.
            who = (f"{ident} at " if ident else "") + (host_name or name)
            return Reply(250, f"{self.hostname} Hello {who} [{self.peer_ip}]")
        return None


    def _reset_message(self) -> None:
        self.cutthrough_cancel()
        self.hold_release()
        for k in [k for k in self.acl_vars if k.startswith("acl_m")]:
            del self.acl_vars[k]
        self.message_controls = set()
        self.message_utf8_downconvert = None
        self.fake_reply = None
        self.logged_warnings: set[str] = set()   # warn log_messages, each logged once
        self.ratelimit_cache.new_message()
        self.message_queue = None
        self.submission_control = "submission"
        self.envelope = None
        self.rewritten_sender: str | None = None
        self.mail_discard = False
        self._excess_logged = False
        self.data_headers_add: list[str] = []
        self.data_headers_remove: list[str] = []
        # verify = sender: each sender is verified once per message (Exim's
        # sender_verified_list), and a failure's details go to the client and the log
        # only the first time
        self.sender_verify_cache: dict[tuple[str, str], Any] = {}
        self.sender_verify_reported = False
        self.dmarc_reset()
        v = self.ctx.variables
        v.update(sender_address="", authenticated_sender="", local_part="", domain="",
                 recipients="", recipients_count="0", rcpt_count="0", message_size="-1")
        arc_clear_variables(v)
        self.ctx.headers = None
        # Exim tidies its lookups after each message: file contents may have changed.
        self.ctx.lookup_cache.clear()

    def on_mail_command(self, count: int) -> Reply | None:
        return self.limits.on_mail(count) if self.limits is not None else None

    def on_mail(self, address: str, params: dict[str, str | None]) -> Reply | None:
        self._reset_message()
        if not check_fs(self.config, self.log, _size_param(self.config, params)):
            return Reply(452, SPACE_SHORTAGE)     # Exim checks before the MAIL ACL
        v = self.ctx.variables
        if self.local_caller is not None:
            address = self.local_caller.envelope_sender(address)
        # AUTH= first, as Exim: acl_smtp_mailauth runs before $sender_address is set.
        v["sender_address"] = ""
        bad_auth = self.auth_mail_param(_auth_param(params))
        if bad_auth is not None:
            return bad_auth
        v["sender_address"] = taint(address)
        lp, at, dom = address.rpartition("@")
        v["sender_address_local_part"] = taint(lp if at else address)
        v["sender_address_domain"] = taint(dom if at else "")
        size = size_value(params.get("SIZE") or "")
        if size is not None:
            v["message_size"] = str(size)
        self._set_smtputf8("SMTPUTF8" in params)
        v["prdr_requested"] = "yes" if "PRDR" in params else "no"
        res = self._run("acl_smtp_mail", "mail")
        if res.verdict == "discard":
            self.mail_discard = True
            if self.server is not None:
                self.server.discard_message = True
        elif res.verdict != "accept":
            self._log_reject(f"MAIL <{address}>", res, with_sender=False)
            v["sender_address"] = ""
            return self._reply(res, "mail")
        self._add_headers(res)
        self.envelope = self._new_envelope(address, params)
        self.envelope.smtputf8 = "SMTPUTF8" in params
        if self.rewritten_sender is not None:      # verify = sender rewrote it
            self.keep_rewritten_sender(self.rewritten_sender)
        if res.message:
            return self._reply(res, "mail")
        return Reply(250, "OK, PRDR Requested") if "PRDR" in params else None

    def _set_smtputf8(self, on: bool) -> None:
        """$message_smtputf8, and the "utf8" prefix of $received_protocol (RFC 6531
        section 3.7.3; Exim writes utf8esmtp, utf8esmtps, utf8local-esmtp ...)."""
        v = self.ctx.variables
        v["message_smtputf8"] = "yes" if on else "no"
        proto = str(v.get("received_protocol", ""))
        proto = proto[4:] if proto.startswith("utf8") else proto
        v["received_protocol"] = ("utf8" if on else "") + proto

    @property
    def accepted_rcpts(self) -> list[str]:
        """The recipients accepted so far for the current message."""
        return self.envelope.recipients if self.envelope is not None else []

    def keep_rewritten_sender(self, sender: str) -> None:
        """Sender verification rewrote the sender: the message keeps the rewritten
        address, and reception does not rewrite it again (as Exim)."""
        self.rewritten_sender = sender
        if self.envelope is not None:
            self.envelope.sender = sender
            self.envelope.sender_rewritten = True

    def _new_envelope(self, sender: str, params: dict[str, str | None]) -> Envelope:
        """The envelope of a message whose MAIL was just accepted: sender, MAIL
        parameters and the peer facts (completed at DATA by ``_envelope``)."""
        env = Envelope(sender=taint(sender), recipients=[], mail_params=dict(params),
                       body_type=params.get("BODY"), host_address=self.peer_ip,
                       host_port=self.peer_port, acl_vars=self.acl_vars)
        if self.local_caller is not None:
            for name, value in self.local_caller.envelope_fields().items():
                setattr(env, name, value)
            env.host_address = env.host_port = None
        return env


    def on_rcpt(self, address: str, params: dict[str, str | None]) -> Reply | None:
        v = self.ctx.variables
        lp, _, dom = address.rpartition("@")
        # percent_hack_domains: the ACL sees the address the local part stands for
        hacked = percent_hack(lp, dom, self.config, self.ctx)
        if hacked is not None:
            lp, _, dom = hacked.rpartition("@")
        lp = dequote_local_part(lp)
        # $local_part is lower-cased for the ACL (control = caseful_local_part restores it)
        self.rcpt_local_part = taint(lp)
        v["local_part"] = taint(lp.lower())
        v["_cc_local_part"] = self.rcpt_local_part      # for local_parts (+caseful)
        v["domain"] = taint(dom.lower())
        v["rcpt_count"] = str(self.server.rcpt_count if self.server else 0)
        if self.limits is not None:
            self.limits.on_rcpt(self.server.rcpt_count if self.server else 0)
        v["address_data"] = ""          # each recipient's verification sets its own
        res = self._run("acl_smtp_rcpt", "rcpt")
        self.rcpt_local_part = None
        v["local_part"] = v["domain"] = ""
        v.pop("_cc_local_part", None)
        if res.verdict not in ("accept", "discard"):
            self._log_reject(f"RCPT <{address}>", res)
            return self._reply(res, "rcpt")
        if res.verdict == "accept":
            # Only the first RCPT of a message may start a cutthrough, never with PRDR
            # (each recipient's verdict is then given after the data), as in Exim.  A
            # message with SMTPUTF8 or DSN requests takes the normal way: the
            # cutthrough connection's MAIL and RCPT carry no parameters.
            mail_params = self.envelope.mail_params if self.envelope else {}
            first = self.server is not None and self.server.rcpt_count == 1 and \
                not _CUTTHROUGH_EXCLUDED.intersection(mail_params) and \
                not ({"NOTIFY", "ORCPT"} & set(params))
            refused = self._cutthrough_rcpt(self.envelope.sender if self.envelope else "",
                                            address, res.controls, first)
            if refused is not None:
                return refused
        self._add_headers(res)
        if res.verdict != "discard":   # a discarded recipient gets 250 but is dropped
            assert self.envelope is not None
            self.envelope.add_recipient(taint(address), params)
            v["recipients"] = taint(", ".join(self.accepted_rcpts))
            v["recipients_count"] = str(len(self.accepted_rcpts))
        return self._reply(res, "rcpt") if res.message else None

    def on_predata(self) -> Reply | None:
        res = self._run("acl_smtp_predata", "predata")
        if res.verdict != "accept":
            self._log_reject("DATA", res, with_sender=False)
            return self._reply(res, "predata")
        self._add_headers(res)
        return None


    def on_rset(self) -> None:
        if self.server is not None:
            connection_log.transaction_abandoned(self, self.server, "RSET")
        self._reset_message()

    def bdat_store(self) -> FileBody:
        """Where a BDAT message streams to: an unnamed file in the spool directory
        (anywhere temporary for -bh, which may have no spool)."""
        if not self.host_checking:
            spool = configured_spool(self.config)
            if os.path.isdir(spool):
                try:
                    return FileBody(spool)
                except OSError:
                    pass            # -bs by a user who cannot write there
        return FileBody()

    def on_quit(self) -> Reply | None:
        self.quit_seen = True
        if self.server is not None:
            connection_log.closed_by_quit(self, self.server)
        res = self._run("acl_smtp_quit", "quit")
        if res.verdict == "accept" and res.message:
            return Reply(221, split_code(res.message, 221)[1])
        return None

    def _verify_address(self, address: str) -> tuple[str, str | None]:
        """Route ``address`` in verify mode: (status, message)."""
        try:
            rr = route_address(self.config, Address(address), self.ctx, verify=True)
        except Exception:
            return "defer", None
        if rr.status == "defer":
            # only a text meant for the sender (":defer: text") is given
            deferred = next(iter(rr.deferred), None)
            return "defer", deferred.user_message if deferred is not None else None
        return rr.status, getattr(rr, "message", None)

    def _command_address(self, arg: str) -> tuple[str | None, Reply | None]:
        """The address argument of VRFY, or the 501 reply for a bad one."""
        server = self.server
        options: dict[str, Any] = {} if server is None else {
            "allow_domain_literals": server.allow_domain_literals,
            "qualify_domain": server.qualify_domain,        # postmaster, as for RCPT
            "qualify_bare": server.unqualified_recipient,
            "allow_utf8_domains": server.allow_utf8_domains,
            "strip_excess_angle_brackets": server.strip_excess_angle_brackets,
            "strip_trailing_dot": server.strip_trailing_dot}
        address, error = parse_command_address(arg, **options)
        return address, (Reply(501, error) if error is not None else None)

    def on_vrfy(self, arg: str) -> Reply:
        v = self.ctx.variables
        v["smtp_command_argument"] = taint(arg)
        # As Exim: the address is read first; the ACL sees its parts, as for RCPT.
        addr, bad = self._command_address(arg)
        if bad is not None:
            return bad
        lp, at, dom = (addr or "").rpartition("@")
        v["local_part"] = taint(dequote_local_part(lp) if at else "")
        v["domain"] = taint(dom.lower())
        res = self._run("acl_smtp_vrfy", "vrfy")
        if res.verdict != "accept":
            self._log_reject(f"VRFY {arg}", res, with_sender=False)
            code, text = acl_smtp_reply(res, "vrfy")
            # Exim answers a refused VRFY with 252 (RFC 5321: cannot VRFY, but will
            # take the message), with the ACL's message if it has one.
            return Reply(252 if code // 100 == 5 else code, text)
        return self._routed_reply("VRFY", arg, " is deliverable")

    def on_expn(self, arg: str) -> Reply:
        self.ctx.variables["smtp_command_argument"] = taint(arg)
        res = self._run("acl_smtp_expn", "expn")
        if res.verdict != "accept":
            self._log_reject(f"EXPN {arg}", res, with_sender=False)
            return Reply(*acl_smtp_reply(res, "expn"))
        return self._expansion_reply(arg)

    def _expansion_reply(self, arg: str) -> Reply:
        """EXPN after its ACL accepted: the argument as it is (qualified when it has no
        domain) routed one level, as Exim answers it; a failure's text is not given."""
        address = arg if "@" in arg else f"{arg}@{qualify_domains(self.config)[1]}"
        try:
            reply = expand_once(self.config, Address(taint(address)), self.ctx)
        except Exception as exc:        # an address that cannot even be looked at
            self.log.main(f"EXPN {arg}: {exc}")
            return Reply(553, f"{address} cannot be resolved at this time")
        if reply.status in ("fail", "decline"):
            return Reply(553, f"{address} is undeliverable")
        if reply.status not in ("accept", "discard"):
            return Reply(553, f"{address} cannot be resolved at this time")
        shown = [f"<{c.address}>" if c.kind == "address" else c.address
                 for c in reply.children] or [f"<{address}>"]
        return Reply(250, "\n".join(shown))

    def _routed_reply(self, verb: str, arg: str, ok_suffix: str) -> Reply:
        """VRFY/EXPN after their ACL accepted: route the address and say what happened."""
        addr, bad = self._command_address(arg)
        if bad is not None or addr is None:
            return bad or Reply(501, "empty address")
        status, message = self._verify_address(addr)
        if status == "accept":
            return Reply(250, f"<{addr}>{ok_suffix}")
        if status == "defer":
            return Reply(451, f"<{addr}> {message}" if message
                         else f"Cannot resolve <{addr}> at this time")
        if verb == "VRFY":      # failed VRFYs are logged; EXPN failures are not
            self.log.main(f"VRFY failed for {arg} {self.host_ident()}")
        return Reply(550, f"<{addr}> {message or 'Unrouteable address'}")

    def set_dscp(self, byte: int) -> None:
        """control = dscp: mark the packets of the client's connection."""
        if self.client_socket is not None:
            set_dscp(self.client_socket, byte)

    def on_wellknown(self, arg: str) -> Reply:
        """WELLKNOWN <key>: offered to wellknown_advertise_hosts when acl_smtp_wellknown
        is set; the ACL's ``control = wellknown/<file>`` gives the reply (Exim 4.98)."""
        if not (main_option(self.config, "acl_smtp_wellknown", None)
                and _host_in(self.config, "wellknown_advertise_hosts", self, None)):
            self.log.reject(f'rejected "WELLKNOWN {arg}" from {self.host_ident(with_h=False)}')
            return Reply(554, "not permitted")
        self.ctx.variables["smtp_command_argument"] = taint(arg)
        res = self._run("acl_smtp_wellknown", "wellknown")
        if res.verdict == "accept" and res.wellknown is None:
            # accepted without saying what to send: an ACL error, as in Exim
            res = replace(res, verdict="defer", error=True, message=None,
                          log_message="no control = wellknown in an accepting ACL")
        if res.verdict != "accept":
            self._log_reject(f"WELLKNOWN {arg}", res, with_sender=False)
            return Reply(*acl_smtp_reply(res, "wellknown"))
        return Reply(250, res.wellknown or "")

    def on_xclient(self, arg: str) -> Reply | None:
        """XCLIENT from a hosts_xclient proxy (see :mod:`pymta.smtp.xclient`)."""
        assert self.server is not None
        try:
            command = parse_xclient(arg, first=not self.xclient_done)
        except XclientSyntaxError as exc:
            self.server.synprot_error(501, str(exc))
            return None
        self.apply_xclient(command)
        self.xclient_done = True
        self.server.host_address = self.peer_ip
        return Reply(220, "XCLIENT success")

    @staticmethod
    def _etrn_skipped(command: str) -> None:
        """What -bh (and -d) says of the ETRN command it does not run, as Exim does."""
        if debug.any:
            debug.printf(f"ETRN command is: {command}")
            debug.printf("ETRN command execution skipped")

    def on_etrn(self, arg: str) -> Reply | None:
        self.ctx.variables["smtp_command_argument"] = taint(arg)
        if log_selected(self.config, "etrn"):      # logged before the ACL, as Exim
            self.log.main(f"ETRN {arg} received from {self.host_ident(with_h=False)}")
        res = self._run("acl_smtp_etrn", "etrn")
        if res.verdict != "accept":
            self._log_reject(f"ETRN {arg}", res, with_sender=False)
            if res.verdict == "defer":
                return Reply(*acl_smtp_reply(res, "etrn"))
            # A refused ETRN is 458 (RFC 1985), the ACL's message or not.
            return Reply(*split_code(res.message, 458)) if res.message else \
                Reply(458, "Administrative prohibition")
        command = bool(main_option(self.config, "smtp_etrn_command"))
        if not command and not arg.startswith("#"):
            assert self.server is not None
            self.server.synprot_error(501, "argument must begin with #")
            return None
        selection = arg if command else arg[1:]
        done = Reply(250, res.message or "OK")
        if self.host_checking and not command:
            # -bh: nothing is run, and Exim's "exim -R" cannot fail to be set up (a
            # -bh process has no queue runner to hand the run to)
            self._etrn_skipped("exim -R")
            return done
        try:
            job = command_job(etrn_command(self.config, self.ctx, arg)) if command \
                else queue_run_job(self.config, self.log, selection, res.queue or "")
        except EtrnSetupFailed as exc:
            self.log.panic(f"failed to set up ETRN command: {exc}")
            return Reply(458, "Internal failure")
        if self.host_checking:
            self._etrn_skipped(str(main_option(self.config, "smtp_etrn_command")))
            return done                 # -bh: nothing is run
        key = f"etrn-{selection}" if main_option(self.config, "smtp_etrn_serialize", True) \
            else None
        try:
            started = start_etrn(self.config, job, key, close_sockets=command)
        except OSError as exc:
            self.log.panic(f"fork of process for ETRN failed: {exc}")
            return Reply(458, "Unable to fork process")
        return done if started else Reply(458, f"Already processing {selection}")





def _auth_param(params: dict[str, str | None]) -> str | None:
    """MAIL's AUTH= value as Exim takes it: a bare "AUTH" counts as "AUTH=AUTH"."""
    if "AUTH" not in params:
        return None
    value = params["AUTH"]
    return "AUTH" if value is None else value


def _size_param(config: Any, params: dict[str, str | None]) -> int:
    """MAIL's SIZE= in bytes for the spool space check (0 if absent or not checked)."""
    if not main_option(config, "smtp_check_spool_space", True):
        return 0
    return size_param(params)


def _size_limit(config: Any, ctx: ExpandContext) -> int:
    """message_size_limit is an expanded string with K/M/G suffixes (0 = no limit)."""
    return expanded_int(config, "message_size_limit", ctx)


def build_server(config: Any, session: SmtpSession) -> SmtpServer:
    """An SmtpServer configured from the main options, driving ``session``."""
    size = _size_limit(config, session.ctx)
    server = SmtpServer(
        session.hostname, session, host_address=session.peer_ip, size_limit=size,
        recipients_max=int(main_option(config, "recipients_max", 0) or 0),
        max_synprot_errors=int(main_option(config, "smtp_max_synprot_errors", 3) or 0),
        max_unknown_commands=int(main_option(config, "smtp_max_unknown_commands", 3) or 0),
        enforce_sync=bool(main_option(config, "smtp_enforce_sync", True)),
        pipelining=_host_in(config, "pipelining_advertise_hosts", session, "*"),
        max_nonmail=int(main_option(config, "smtp_accept_max_nonmail", 10) or 0))
    server.nonmail_hosts = lambda: checked_host_option(session, "smtp_accept_max_nonmail_hosts")
    server.pipe_connect = server.pipelining_allowed and \
        _host_in(config, "pipelining_connect_advertise_hosts", session, "*")
    server.helo_allow_chars = str(main_option(config, "helo_allow_chars", "") or "")
    server.helo_accept_junk = _host_in(config, "helo_accept_junk_hosts", session, None)
    # MAIL before HELO/EHLO is refused only for these hosts (Exim's default: all)
    server.helo_required = _host_in(config, "hosts_require_helo", session, "*")
    server.recipients_max_reject = bool(main_option(config, "recipients_max_reject", False))
    server.allow_domain_literals = bool(main_option(config, "allow_domain_literals", False))
    server.strip_excess_angle_brackets = bool(
        main_option(config, "strip_excess_angle_brackets", False))
    server.strip_trailing_dot = bool(main_option(config, "strip_trailing_dot", False))
    server.allow_utf8_domains = bool(main_option(config, "allow_utf8_domains", False))
    server.dsn_offered = _host_in(config, "dsn_advertise_hosts", session, None)
    server.accept_8bitmime = bool(main_option(config, "accept_8bitmime", True))
    server.tls_remember_esmtp = bool(main_option(config, "tls_remember_esmtp", False))
    server.qualify_domain = str(main_option(config, "qualify_recipient", None)
                                or main_option(config, "qualify_domain", None) or session.hostname)
    if _host_in(config, "sender_unqualified_hosts", session, None):
        server.unqualified_sender = str(main_option(config, "qualify_domain", None)
                                        or session.hostname)
    if _host_in(config, "recipient_unqualified_hosts", session, None):
        server.unqualified_recipient = server.qualify_domain
    rewriter = main_rewriter(config, session.log, session.ctx.variables)
    if rewriter is not None and rewriter.has_smtp_rules:
        server.smtp_rewrite = lambda arg, _mail: rewrite_command_path(rewriter, arg)
    return server




def run_session(sock: socket.socket, config: Any, listener_port: Any, log: Any,
                notify: Callable[[str], Any] | None = None, stop_event: Any = None,
                *, peer: tuple[str, int] | None = None,
                local: tuple[str, int] | None = None, accept_count: int = 0,
                cutthrough_opener: CutthroughOpener | None = None,
                hold_deliverer: HoldDeliverer | None = None) -> None:
    """Handle one SMTP connection until QUIT, a drop, a timeout or disconnection.

    ``listener_port`` is the listening port (or the (address, port) of the listener);
    ``notify(msgid)`` is called after each accepted message that should be delivered at
    once; ``stop_event.is_set()`` makes the next command get a 421.  ``peer``/``local``
    override the socket's addresses (for Unix socketpairs in tests).  ``accept_count``
    is the number of the daemon's connections in progress, this one included.
    """
    found_peer, found_local = _endpoints(sock)
    peer = peer or found_peer
    local = local or found_local
    if isinstance(listener_port, tuple):
        local = (local[0] if local[0] not in ("0.0.0.0", "::") else listener_port[0],
                 local[1] or listener_port[1])
    elif isinstance(listener_port, int) and not local[1]:
        local = (local[0], listener_port)
    session = SmtpSession(config, log, peer, local, notify, stop_event)
    session.client_socket = sock
    session.cutthrough_opener = cutthrough_opener
    session.hold_deliverer = hold_deliverer
    session.accept_count, session.in_daemon = accept_count, True
    proxied = session.read_proxy(sock)      # hosts_proxy: before any TLS or SMTP
    server = prepare_session(session)
    if not proxied:
        server.refuse_until_quit(PROXY_FAILED, code=503)
    timeout = receive_timeout(config, session.ctx, log) or None
    conn = Connection(sock, session.tls_wrap)

    def flush_output() -> None:
        pending = server.take_output()
        if pending:
            conn.send(pending)
    session.flush_output = flush_output

    try:
        if session.tls_on_connect(local[1]) and \
                not session.start_tls_on_connect(server, conn.start_tls):
            return
        # Input already waiting before the greeting is a synchronisation error, or
        # with PIPECONNECT the client's early commands, answered after the banner.
        def early() -> None:
            if server.enforce_sync and conn.readable(0):
                data = conn.recv()
                if data:
                    server.receive(data)
        if not start_session(session, server, conn.send, before_greeting=early):
            return
        if server.input_waiting and not perform(conn, server, server.receive(b"")):
            return
        run_dialogue(conn, server, timeout, stop_event, data_deadline(config))
    finally:
        finish_session(session, server, stop_event)
        debug.end_control()        # control = debug lasts for this connection only
        # The caller closes the socket; shutting it down now lets the client see EOF at
        # once even if the caller keeps the descriptor a little longer.
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)     # under TLS: close_notify first
        except OSError:
            pass


def prepare_session(session: SmtpSession) -> SmtpServer:
    """Host lookup (host_lookup option) and the SmtpServer for ``session``."""
    config = session.config
    trace_host_options(session, BEFORE_LOOKUP)
    if session.peer_ip and _host_in(config, "host_lookup", session, None):
        session.lookup_sender_host_name()
    trace_host_options(session, AFTER_LOOKUP)
    server = build_server(config, session)
    session.server = server
    session.install_tls(server, lambda option, default: _host_in(config, option, session, default))
    if server.extra_commands.get("STARTTLS"):
        session.tls_wrap = session.tls_wrap_socket
    # Exim offers VRFY, EXPN and ETRN in the EHLO reply when their ACLs are set.
    for verb in ("ETRN", "VRFY", "EXPN"):
        if main_option(config, f"acl_smtp_{verb.lower()}", None):
            server.extensions.append(verb)
    if main_option(config, "prdr_enable", False):
        server.extensions.append("PRDR")
    # SMTPUTF8 needs 8BITMIME (RFC 6531): Exim does not offer it without
    if server.accept_8bitmime and _host_in(config, "smtputf8_advertise_hosts", session, "*"):
        server.extensions.append("SMTPUTF8")
    if main_option(config, "acl_smtp_wellknown", None) and \
            _host_in(config, "wellknown_advertise_hosts", session, None):
        server.extensions.append("WELLKNOWN")
    if _host_in(config, "hosts_xclient", session, None):
        server.extensions.append(XCLIENT_KEYWORD)
    session.auth_install(server)
    session.limits = CommandLimits(
        session, lambda option, default: _host_in(config, option, session, default),
        session.sleep)
    # BDAT is always recognised (Exim answers it with 503 when not advertised).
    chunking = BdatReceiver(server, session.bdat_store)
    if _host_in(config, "chunking_advertise_hosts", session, "*"):
        chunking.advertise()
    session._reset_message()
    return server


def start_session(session: SmtpSession, server: SmtpServer, send: Callable[[bytes], bool],
                  before_greeting: Callable[[], Any] | None = None) -> bool:
    """Connect ACL and banner.  False when the session is already over."""
    config, log = session.config, session.log
    session.connection_nolog = _host_in(config, "hosts_connection_nolog", session, None)
    connection_log.connection_opened(session)
    refusal = connection_refusal(
        session, lambda option, default: _host_in(config, option, session, default),
        session.accept_count, session.in_daemon)
    if refusal is not None:
        reply, event = refusal
        if log_selected(config, "connection_reject"):
            write_event(log, config, event)
        elif event.log == "reject":
            # as Exim: without connection_reject the rejectlog copy is still written
            log.to_logs(["reject"], event.text())
        send(server.reject_connection(reply))
        metrics.connection("refused")
        return False
    metrics.connection("accepted")
    if session.client_socket is not None:
        session.ident_call()            # before the connect ACL: $sender_ident is known
    res = session._run("acl_smtp_connect", "connect")
    if res.verdict != "accept":
        code, text = acl_smtp_reply(res, "connect",
                                    "no_multiline_responses" not in session.controls)
        refused = Rejection(session.host_ident(), 'connection in "connect" ACL',
                            res.log_message or res.message)
        if log_selected(config, "connection_reject"):
            write_event(session.reject_log(res), config, refused)
        else:
            log.main(refused.text())     # as Exim: the mainlog line only
        send(server.reject_connection(Reply(code, text)))
        return False
    trace_host_options(session, AFTER_CONNECT)
    try:
        banner = expand_string(str(main_option(config, "smtp_banner", "") or session.hostname),
                         session.ctx)
    except Exception as exc:
        banner = main_option(config, "smtp_banner")
        log.panic(f'Expansion of "{banner}" (smtp_banner) failed: {exc}')
        send(b"451 Temporary local problem - please try later\r\n")
        return False
    if before_greeting is not None:
        before_greeting()
    return send(server.greet(banner)) and not server.closed


def finish_session(session: SmtpSession, server: SmtpServer, stop_event: Any = None) -> None:
    """End of a session: mark the server closed and run the notquit ACL if needed."""
    server.closed = True
    session.cutthrough_cancel()
    session.hold_release()
    if stop_event is not None and stop_event.is_set() and not session.notquit_reason:
        session.notquit_reason = "signal-exit"
    session.run_notquit()
    connection_log.no_mail(session, server)
