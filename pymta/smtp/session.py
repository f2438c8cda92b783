"""One incoming SMTP connection on a blocking socket: ACLs, banner, dialogue, spooling.

:func:`run_session` wraps the sans-IO :class:`~pymta.smtp.server.SmtpServer` with the
socket, timeouts, ACLs (:func:`pymta.acl.run_acl`), message reception
(:func:`pymta.message.receive.receive_message`) and Exim-format logging.  Input is read in
large chunks into the server's buffer and all replies produced by one chunk (a pipelined
group) are written with one ``sendall``.
"""
from __future__ import annotations

import socket
import time
import traceback
from typing import Any, Callable

from pymta.acl import acl_smtp_reply, run_acl, split_code
from pymta.config.values import main_option
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.message.receive import report_after_commit
from pymta.smtp.server import Reply, SmtpEvent, SmtpHandler, SmtpServer, size_param
from pymta.smtp.socket_loop import Connection, TlsWrap, run_dialogue
from pymta.spool.ids import new_message_id
from pymta.spool.space import SPACE_SHORTAGE, check_fs
from pymta.taint import taint


def _duration(seconds: float) -> str:
    """Exim's D= format: 0s, 1m2s, 1h2m3s."""
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if (h or m) else "") + f"{sec}s"


# log_selector items this module writes, with Exim's defaults.
_SELECTOR_DEFAULTS = {"lost_incoming_connection": True, "etrn": True, "size_reject": True,
                      "sender_verify_fail": True, "smtp_syntax_error": False,
                      "smtp_protocol_error": False, "host_lookup_failed": True}


def log_selected(config: Any, name: str) -> bool:
    """Is the log_selector item ``name`` on (``+name``/``-name``/``+all``/``-all``)?"""
    on = _SELECTOR_DEFAULTS.get(name, False)
    for word in str(main_option(config, "log_selector", "") or "").split():
        item = word[1:]
        if item in (name, "all") and word[0] in "+-":
            on = word[0] == "+"
    return on


def lookup_host_name(ip: str) -> str | None:
    """Reverse-resolve ``ip`` (DNS PTR, then the system resolver, like Exim's default
    host_lookup_order bydns:byaddr) and keep the name only if it resolves back to ``ip``."""
    names: list[str] = []
    try:
        import dns.resolver
        import dns.reversename
        res = dns.resolver.Resolver()
        res.lifetime = 5.0
        answer = res.resolve(dns.reversename.from_address(ip), "PTR")
        names = [str(r.target).rstrip(".") for r in answer]
    except Exception:
        names = []
    if not names:
        try:
            host, aliases, _ = socket.gethostbyaddr(ip)
            names = [host] + list(aliases)
        except (OSError, UnicodeError):
            return None
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        if ip in {i[4][0].split("%")[0] for i in infos}:
            return name.lower()
    return None


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


class SmtpSession(SmtpHandler):
    """The policy side of one connection (ACLs, spooling, logging)."""

    def __init__(self, config: Any, log: Any, peer: tuple[str, int], local: tuple[str, int],
                 notify: Callable[[str], Any] | None = None, stop_event: Any = None,
                 sleep: Callable[[float], Any] | None = None) -> None:
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
        self.message_controls: set[str] = set()
        self.mail_discard = False
        self.accepted_rcpts: list[str] = []
        self.messages = 0
        self.server: SmtpServer | None = None
        self.msgid: str | None = None
        self.quit_seen = False
        self.notquit_reason: str | None = None
        self._helo_checked: str | None = None
        # -bh: run the ACLs but never spool (see pymta.smtp.local).
        self.host_checking = False
        # -bs: the local caller (pymta.smtp.local.LocalCaller); None for TCP sessions.
        self.local_caller: Any = None
        # Server-side TLS for StartTls actions (pymta.tls sets it; None: no TLS).
        self.tls_wrap: TlsWrap | None = None

    def set_local_caller(self, caller: Any) -> None:
        """Make this a local (-bs) session: no client host, protocol local-smtp."""
        self.local_caller = caller
        v = self.ctx.variables
        v.update(sender_host_address="", sender_host_port="", host_address="",
                 received_protocol="local-smtp", sender_rcvhost="", interface_address="",
                 interface_port="", received_port="", sender_ident=caller.login)

    # ------------------------------------------------------------------ log helpers
    def host_ident(self, with_h: bool = True) -> str:
        """Exim's host_and_ident: ``H=name (helo) [ip]`` (``U=login`` for -bs)."""
        if self.local_caller is not None:
            return f"U={self.local_caller.login}"
        name = self.ctx.variables.get("sender_host_name") or ""
        helo = self.ctx.variables.get("sender_helo_name") or ""
        parts = []
        if name:
            parts.append(name)
        if helo and helo != name:
            parts.append(f"({helo})")
        parts.append(f"[{self.peer_ip}]")
        return ("H=" if with_h else "") + " ".join(parts)

    @property
    def log_prefix(self) -> str:
        return self.host_ident()

    def _acl_runner(self, name: str, args: Any = (), ctx: Any = None) -> Any:
        """``${acl{name}{args}}`` from an expansion during this session."""
        return run_acl(self.config, name, "data", ctx or self.ctx, self)

    # ------------------------------------------------------------------ ACL glue
    def _run(self, option: str, where: str) -> Any:
        self.ctx.variables["smtp_command"] = taint(self.server.last_command) if self.server else ""
        res = run_acl(self.config, main_option(self.config, option), where, self.ctx, self)
        if res.error and res.log_message:
            # Broken ACLs are configuration errors: Exim writes them to the paniclog.
            self.log.panic(f"{self.host_ident()} {res.log_message}")
        for c in res.controls:
            (self.message_controls if where in ("mail", "rcpt", "predata", "data")
             else self.controls).add(c.split("/")[0])
        if "no_pipelining" in self.controls and self.server is not None:
            self.server.pipelining_allowed = False
        if "no_enforce_sync" in self.controls and self.server is not None:
            self.server.enforce_sync = False
        return res

    def _reply(self, res: Any, where: str) -> Reply:
        code, text = acl_smtp_reply(res, where)
        if res.verdict == "drop":
            self.notquit_reason = "acl-drop"
        return Reply(code, text, close=res.verdict == "drop")

    def _log_reject(self, what: str, res: Any, with_sender: bool = True,
                    msgid: str | None = None) -> None:
        """``H=... F=<s> rejected RCPT <r>: msg`` style lines (mainlog + rejectlog)."""
        if res.verify_failed == "sender" and log_selected(self.config, "sender_verify_fail"):
            self.log.main(f"{self.host_ident()} sender verify fail for <{res.verify_address}>: "
                          f"{res.verify_message}")
        msg = res.log_message
        if msg is None and res.verify_failed == "sender":
            msg = res.message or "Sender verify failed"
        if msg is None and res.verify_failed == "recipient":
            msg = res.verify_message
        if msg is None and res.verdict == "defer" and res.message:
            msg = res.message
        prefix = self.host_ident()
        if with_sender and self.server is not None and self.server.sender is not None:
            prefix += f" F=<{self.server.sender}>"
        verb = "temporarily rejected" if res.verdict == "defer" else "rejected"
        line = f"{prefix} {verb} {what}" + (f": {msg}" if msg else "")
        if msgid:
            self.log.reject(line, msgid)
        else:
            self.log.reject(line)

    # ------------------------------------------------------------------ SmtpHandler
    def should_stop(self) -> bool:
        return bool(self.stop_event is not None and self.stop_event.is_set())

    def on_helo(self, verb: str, name: str) -> Reply | None:
        v = self.ctx.variables
        old = v.get("sender_helo_name", "")
        v["sender_helo_name"] = taint(name)
        if _host_in(self.config, "helo_verify_hosts", self, None) and not self.verify_helo():
            v["sender_helo_name"] = old
            self.log.reject(f"rejected \"{verb} {name}\" from {self.host_ident(with_h=False)}")
            return Reply(550, f"{verb} argument does not match calling host")
        if _host_in(self.config, "helo_try_verify_hosts", self, None):
            self.verify_helo()
        res = self._run("acl_smtp_helo", "helo")
        if res.verdict not in ("accept", "discard"):
            v["sender_helo_name"] = old
            self._log_reject(f"EHLO or HELO {name}", res, with_sender=False)
            return self._reply(res, "helo")
        v["received_protocol"] = ("local-" if self.local_caller is not None else "") + \
            ("esmtp" if verb == "EHLO" else "smtp")
        if self.local_caller is None:
            v["sender_rcvhost"] = self._rcvhost()
        self._reset_message()
        if self.local_caller is not None:
            # -bs: no client address to show; Exim names the calling user instead.
            return Reply(250, f"{self.hostname} Hello {self.local_caller.login} at {name}")
        return None

    def verify_helo(self) -> bool:
        """``verify = helo``: the HELO name is the client's IP literal, its looked-up
        name, or resolves to its address.  Sets $helo_verified; cached per HELO name."""
        v = self.ctx.variables
        if self.local_caller is not None:
            return True       # -bs: no TCP/IP client, so HELO always verifies (as Exim)
        helo = str(v.get("sender_helo_name") or "")
        if self._helo_checked == helo:
            return v.get("helo_verified") == "1"
        ok = False
        if helo.startswith("[") and helo.endswith("]"):
            inner = helo[1:-1]
            ok = inner.split(":", 1)[-1] == self.peer_ip if inner.lower().startswith("ipv6:") \
                else inner == self.peer_ip
        elif helo:
            name = str(v.get("sender_host_name") or "")
            ok = bool(name) and name.lower() == helo.lower()
            if not ok:
                try:
                    infos = socket.getaddrinfo(helo, None, proto=socket.IPPROTO_TCP)
                    ok = self.peer_ip in {i[4][0].split("%")[0] for i in infos}
                except (OSError, UnicodeError):
                    ok = False
        self._helo_checked = helo
        v["helo_verified"] = "1" if ok else ""
        return ok

    def _rcvhost(self) -> str:
        """$sender_rcvhost as Exim builds it for the Received: header."""
        v = self.ctx.variables
        name, helo = v.get("sender_host_name") or "", v.get("sender_helo_name") or ""
        if name:
            extra = f" helo={helo}" if helo and helo.lower() != name.lower() else ""
            return taint(f"{name} ([{self.peer_ip}]{extra})")
        return taint(f"[{self.peer_ip}]" + (f" (helo={helo})" if helo else ""))

    def _reset_message(self) -> None:
        for k in [k for k in self.acl_vars if k.startswith("acl_m")]:
            del self.acl_vars[k]
        self.message_controls = set()
        self.accepted_rcpts = []
        self.mail_discard = False
        self._excess_logged = False
        self.data_headers_add: list[str] = []
        self.data_headers_remove: list[str] = []
        v = self.ctx.variables
        v.update(sender_address="", local_part="", domain="", recipients="",
                 recipients_count="0", rcpt_count="0", message_size="-1")
        self.ctx.headers = None
        # Exim tidies its lookups after each message: file contents may have changed.
        self.ctx.lookup_cache.clear()

    def on_mail(self, address: str, params: dict[str, str | None]) -> Reply | None:
        self._reset_message()
        if not check_fs(self.config, self.log, _size_param(self.config, params)):
            return Reply(452, SPACE_SHORTAGE)     # Exim checks before the MAIL ACL
        v = self.ctx.variables
        if self.local_caller is not None:
            address = self.local_caller.envelope_sender(address)
        v["sender_address"] = taint(address)
        lp, at, dom = address.rpartition("@")
        v["sender_address_local_part"] = taint(lp if at else address)
        v["sender_address_domain"] = taint(dom if at else "")
        if params.get("SIZE"):
            v["message_size"] = taint(params["SIZE"] or "")
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
        return self._reply(res, "mail") if res.message else None

    def _add_headers(self, res: Any) -> None:
        self.data_headers_add.extend(res.add_headers)
        self.data_headers_remove.extend(res.remove_headers)

    def on_rcpt(self, address: str, params: dict[str, str | None]) -> Reply | None:
        v = self.ctx.variables
        lp, _, dom = address.rpartition("@")
        v["local_part"] = taint(lp)
        v["domain"] = taint(dom.lower())
        v["rcpt_count"] = str(self.server.rcpt_count if self.server else 0)
        res = self._run("acl_smtp_rcpt", "rcpt")
        v["local_part"] = v["domain"] = ""
        if res.verdict not in ("accept", "discard"):
            self._log_reject(f"RCPT <{address}>", res)
            return self._reply(res, "rcpt")
        self._add_headers(res)
        if res.verdict != "discard":   # a discarded recipient gets 250 but is dropped
            self.accepted_rcpts.append(address)
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
        from pymta.message.receive import arrival_log_fields, prepare_message
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
        from pymta.message.receive import receive_message
        return receive_message(self.config, self._envelope(), data, self.log)

    def _envelope(self) -> Any:
        """The Envelope for the message just received in this session."""
        from pymta.message.receive import Envelope
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

    def on_rset(self) -> None:
        self._reset_message()

    def on_quit(self) -> Reply | None:
        self.quit_seen = True
        res = self._run("acl_smtp_quit", "quit")
        if res.verdict == "accept" and res.message:
            return Reply(221, split_code(res.message, 221)[1])
        return None

    def run_notquit(self) -> None:
        """acl_smtp_notquit, for its side effects, when the session ended without QUIT."""
        if self.quit_seen or not main_option(self.config, "acl_smtp_notquit"):
            return
        self.ctx.variables["smtp_notquit_reason"] = self.notquit_reason or "connection-lost"
        try:
            self._run("acl_smtp_notquit", "notquit")
        except Exception as exc:
            self.log.panic(f"{self.host_ident()} notquit ACL failed: {exc}")

    def _verify_address(self, address: str) -> tuple[str, str | None]:
        """Route ``address`` in verify mode: (status, message)."""
        from pymta.delivery.address import Address
        from pymta.routing import route_address
        try:
            rr = route_address(self.config, Address(address), self.ctx, verify=True)
        except Exception as exc:
            return "defer", str(exc)
        return rr.status, getattr(rr, "message", None)

    def _command_address(self, arg: str) -> tuple[str | None, Reply | None]:
        """The address argument of VRFY/EXPN, or the 501 reply for a bad one."""
        from pymta.smtp.server import parse_path
        if not arg:
            return None, Reply(501, "empty address")
        path = parse_path(arg, "recipient")
        if path.error or not path.address:
            return None, Reply(501, f"{arg}: {path.error or 'malformed address'}")
        return path.address, None

    def on_vrfy(self, arg: str) -> Reply:
        self.ctx.variables["smtp_command_argument"] = taint(arg)
        res = self._run("acl_smtp_vrfy", "vrfy")
        if res.verdict != "accept":
            code, text = acl_smtp_reply(res, "vrfy")
            # An unset or message-less refusal is Exim's "252 Administrative prohibition".
            return Reply(252 if code == 550 and not res.message else code, text)
        return self._routed_reply("VRFY", arg, " is deliverable")

    def on_expn(self, arg: str) -> Reply:
        self.ctx.variables["smtp_command_argument"] = taint(arg)
        res = self._run("acl_smtp_expn", "expn")
        if res.verdict != "accept":
            return Reply(*acl_smtp_reply(res, "expn"))
        return self._routed_reply("EXPN", arg, "")

    def _routed_reply(self, verb: str, arg: str, ok_suffix: str) -> Reply:
        """VRFY/EXPN after their ACL accepted: route the address and say what happened."""
        addr, bad = self._command_address(arg)
        if bad is not None or addr is None:
            return bad or Reply(501, "empty address")
        status, message = self._verify_address(addr)
        if status == "accept":
            return Reply(250, f"<{addr}>{ok_suffix}")
        if status == "defer":
            return Reply(451, f"<{addr}> {message or 'Could not verify address'}")
        if verb == "VRFY":      # failed VRFYs are logged; EXPN failures are not
            self.log.main(f"VRFY failed for {addr} {self.host_ident()}")
        return Reply(550, f"<{addr}> {message or 'Unrouteable address'}")

    def on_etrn(self, arg: str) -> Reply:
        self.ctx.variables["smtp_command_argument"] = taint(arg)
        res = self._run("acl_smtp_etrn", "etrn")
        if res.verdict != "accept":
            code, text = acl_smtp_reply(res, "etrn")
            return Reply(458 if code == 550 and not res.message else code, text)
        if log_selected(self.config, "etrn"):
            self.log.main(f"ETRN {arg} received from {self.host_ident(with_h=False)}")
        # smtp_etrn_command is not supported: only the "#" form is acknowledged.
        if not arg.startswith("#"):
            return Reply(501, "argument must begin with #")
        return Reply(250, "OK")

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


def _endpoints(sock: socket.socket) -> tuple[tuple[str, int], tuple[str, int]]:
    try:
        peer = sock.getpeername()
        local = sock.getsockname()
    except OSError:
        peer = local = None
    if not isinstance(peer, tuple):
        peer = ("127.0.0.1", 0)
    if not isinstance(local, tuple):
        local = ("127.0.0.1", 0)
    return (peer[0], peer[1]), (local[0], local[1])


def _size_param(config: Any, params: dict[str, str | None]) -> int:
    """MAIL's SIZE= in bytes for the spool space check (0 if absent or not checked)."""
    if not main_option(config, "smtp_check_spool_space", True):
        return 0
    return size_param(params)


def _size_limit(config: Any, ctx: ExpandContext) -> int:
    """message_size_limit is an expanded string with K/M/G suffixes (0 = no limit)."""
    from pymta.config.values import expanded_int
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
        max_nonmail=int(main_option(config, "smtp_accept_max_nonmail", 10) or 0)
        if _host_in(config, "smtp_accept_max_nonmail_hosts", session, "*") else 0)
    server.helo_allow_chars = str(main_option(config, "helo_allow_chars", "") or "")
    server.helo_accept_junk = _host_in(config, "helo_accept_junk_hosts", session, None)
    server.recipients_max_reject = bool(main_option(config, "recipients_max_reject", False))
    server.allow_domain_literals = bool(main_option(config, "allow_domain_literals", False))
    server.qualify_domain = str(main_option(config, "qualify_recipient", None)
                                or main_option(config, "qualify_domain", None) or session.hostname)
    return server


def _host_in(config: Any, option: str, session: SmtpSession, default: str | None) -> bool:
    """Does the client match the host list in ``option``?  (Deferral counts as no.)"""
    text = main_option(config, option, default)
    if not text:
        return False
    if text == "*":
        return True
    try:
        from pymta.match import match_host
        return bool(match_host(session.peer_ip, session.ctx.variables.get("sender_host_name")
                               or None, str(text), session.ctx))
    except Exception as exc:
        session.log.main(f"{session.host_ident()} {option}: host list check failed: {exc}")
        return False


def run_session(sock: socket.socket, config: Any, listener_port: Any, log: Any,
                notify: Callable[[str], Any] | None = None, stop_event: Any = None,
                *, peer: tuple[str, int] | None = None,
                local: tuple[str, int] | None = None) -> None:
    """Handle one SMTP connection until QUIT, a drop, a timeout or disconnection.

    ``listener_port`` is the listening port (or the (address, port) of the listener);
    ``notify(msgid)`` is called after each accepted message that should be delivered at
    once; ``stop_event.is_set()`` makes the next command get a 421.  ``peer``/``local``
    override the socket's addresses (for Unix socketpairs in tests).
    """
    p, l = _endpoints(sock)
    peer = peer or p
    local = local or l
    if isinstance(listener_port, tuple):
        local = (local[0] if local[0] not in ("0.0.0.0", "::") else listener_port[0],
                 local[1] or listener_port[1])
    elif isinstance(listener_port, int) and not local[1]:
        local = (local[0], listener_port)
    session = SmtpSession(config, log, peer, local, notify, stop_event)
    server = prepare_session(session)
    timeout = float(main_option(config, "smtp_receive_timeout", 300) or 0) or None
    conn = Connection(sock, session.tls_wrap)

    try:
        # Input already waiting before the greeting is a synchronisation error.
        def early() -> None:
            if server.enforce_sync and conn.readable(0):
                data = conn.recv()
                if data:
                    server.receive(data)
        if not start_session(session, server, conn.send, before_greeting=early):
            return
        run_dialogue(conn, server, timeout, stop_event)
    finally:
        finish_session(session, server, stop_event)
        # The caller closes the socket; shutting it down now lets the client see EOF at
        # once even if the caller keeps the descriptor a little longer.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def prepare_session(session: SmtpSession) -> SmtpServer:
    """Host lookup (host_lookup option) and the SmtpServer for ``session``."""
    config, log = session.config, session.log
    if session.peer_ip and _host_in(config, "host_lookup", session, None):
        name = lookup_host_name(session.peer_ip)
        if name:
            session.ctx.variables["sender_host_name"] = taint(name)
            session.ctx.variables["sender_rcvhost"] = session._rcvhost()
        else:
            session.ctx.variables["host_lookup_failed"] = "1"
            if log_selected(config, "host_lookup_failed"):
                log.main(f"no host name found for IP address {session.peer_ip}")
    server = build_server(config, session)
    session.server = server
    session._reset_message()
    return server


def start_session(session: SmtpSession, server: SmtpServer, send: Callable[[bytes], bool],
                  before_greeting: Callable[[], Any] | None = None) -> bool:
    """Connect ACL and banner.  False when the session is already over."""
    config, log = session.config, session.log
    res = session._run("acl_smtp_connect", "connect")
    if res.verdict != "accept":
        code, text = acl_smtp_reply(res, "connect")
        msg = res.log_message or res.message
        log.reject(f"{session.host_ident()} rejected connection in \"connect\" ACL"
                   + (f": {msg}" if msg else ""))
        send(server.reject_connection(Reply(code, text)))
        return False
    try:
        banner = expand_string(str(main_option(config, "smtp_banner", "") or session.hostname),
                         session.ctx)
    except Exception as exc:
        log.panic(f"Expansion of \"{main_option(config, 'smtp_banner')}\" (smtp_banner) failed: {exc}")
        send(b"451 Temporary local problem - please try later\r\n")
        return False
    if before_greeting is not None:
        before_greeting()
    return send(server.greet(banner)) and not server.closed


def finish_session(session: SmtpSession, server: SmtpServer, stop_event: Any = None) -> None:
    """End of a session: mark the server closed and run the notquit ACL if needed."""
    server.closed = True
    if stop_event is not None and stop_event.is_set() and not session.notquit_reason:
        session.notquit_reason = "signal-exit"
    session.run_notquit()
