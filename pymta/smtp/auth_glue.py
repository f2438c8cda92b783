"""SMTP AUTH in the session (RFC 4954): advertising, the AUTH command, AUTH= on MAIL.

The mechanisms are the sans-IO exchanges of :mod:`pymta.auth`; this mixin connects them to
the :class:`~pymta.smtp.server.SmtpServer` (its ``AUTH`` extra command and
:class:`~pymta.smtp.actions.Challenge` steps) and to the session's variables, ACLs and
logs, with Exim 4.96's replies and log lines (recordings in ``tests/data/auth/``):

- EHLO names the server authenticators whose ``server_advertise_condition`` passes when
  the client matches ``auth_advertise_hosts``; nothing once the client has authenticated
  (as Exim).  AUTH is refused unless it was advertised in this session's last EHLO.
- Order of checks for AUTH: advertised, not yet authenticated, not inside a mail
  transaction, ``acl_smtp_auth``, the mechanism name's characters, an advertised
  mechanism; then the exchange.  The 503/504/501 refusals count as protocol errors.
- A failed exchange writes Exim's ``<name> authenticator failed for <host>: <reply>
  (set_id=<id>)`` line to the main and reject logs (fail2ban's exim filter reads it).
- Repeated failures slow the client down: before answering the n-th failed AUTH of a
  connection the session waits ``min(n - 1, AUTH_FAIL_DELAY_MAX)`` seconds (the first
  failure, usually a typo, is answered at once).  Exim has no such delay; this is
  pymta's own defence against password guessing and needs no option.  The count is in
  ``auth_failures``.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

from pymta.acl import AclResult, acl_smtp_reply, split_code
from pymta.auth.base import Authenticator, ServerExchange, advertised
from pymta.auth.configured import server_authenticators
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.results import (
    REPLY_ALREADY_AUTHENTICATED,
    REPLY_NOT_ADVERTISED,
    AuthResult,
    failure_log_line,
    reply_unsupported_mechanism,
)
from pymta.auth.results import Challenge as AuthChallenge
from pymta.config.values import main_option
from pymta.expand import ExpandError, expand_string
from pymta.expand.extra_items import AUTHRES_AUTH
from pymta.smtp.actions import Challenge
from pymta.smtp.peer import host_in
from pymta.smtp.server import Reply, SmtpServer
from pymta.taint import taint
from pymta.truth import exim_true
from pymta.xtext import xtext_decode

#: Longest wait, in seconds, before answering a failed AUTH (see the module docstring).
AUTH_FAIL_DELAY_MAX = 5

_MECH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class AuthGlue:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: SMTP AUTH."""

    config: Any
    log: Any
    ctx: Any
    server: SmtpServer | None
    sleep: Callable[[float], Any]
    controls: set[str]                               # SmtpSession
    host_ident: Callable[..., str]                   # PeerFacts
    _run: Callable[[str, str], Any]                  # AclChecks
    _log_reject: Callable[..., None]
    _reply: Callable[[Any, str], Reply]

    def auth_init(self) -> None:
        """Per-connection AUTH state (called by the session's constructor)."""
        self.auth_servers: list[Authenticator] = server_authenticators(self.config)
        self.auth_offered: list[Authenticator] = []   # named in the last EHLO reply
        self.authenticated_by: Authenticator | None = None
        self.auth_tls = False                         # TLS was active at authentication
        self.auth_failures = 0
        v = self.ctx.variables
        v.update(authenticated_id="", authenticated_fail_id="", authenticated_sender="",
                 sender_host_authenticated="", authentication_failed="")

    def auth_install(self, server: SmtpServer) -> None:
        """Make ``server`` recognise AUTH (Exim answers it even with no authenticators:
        "503 AUTH command used when not advertised")."""
        server.extra_commands["AUTH"] = self._cmd_auth

    # ------------------------------------------------------------------ EHLO
    def auth_after_helo(self, verb: str) -> None:
        """After an accepted HELO/EHLO: what to advertise, and $received_protocol."""
        server = self.server
        tls = bool(server is not None and server.tls_active)
        if self.authenticated_by is not None and tls and not self.auth_tls:
            # RFC 3207: what was learnt before STARTTLS is forgotten.
            self.auth_reset()
        offered: list[Authenticator] = []
        if (verb == "EHLO" and not self.is_authenticated() and self.auth_servers
                and host_in(self.config, "auth_advertise_hosts", self, "*")):  # type: ignore[arg-type]
            offered = advertised(self.auth_servers, ContextExpander(self.ctx),
                                 dict(self.ctx.variables))
        self.auth_offered = offered
        if server is not None:
            server.extensions = [e for e in server.extensions
                                 if e.split()[0].upper() != "AUTH"]
            if offered:
                server.extensions.insert(0, "AUTH " + " ".join(a.public_name for a in offered))
        if self.is_authenticated():
            self._set_protocol()

    def is_authenticated(self) -> bool:
        """By AUTH, or (-bs/-bh) preset with -oMaa."""
        return self.authenticated_by is not None or \
            bool(self.ctx.variables.get("sender_host_authenticated"))

    def auth_reset(self) -> None:
        """Forget a successful authentication (after STARTTLS)."""
        self.authenticated_by = None
        self.ctx.variables.update(authenticated_id="", sender_host_authenticated="")

    def _set_protocol(self) -> None:
        v = self.ctx.variables
        local = v.get("received_protocol", "").startswith("local-")
        tls = bool(self.server is not None and self.server.tls_active)
        proto = "esmtp" + ("s" if tls else "") + ("a" if self.is_authenticated() else "")
        v["received_protocol"] = ("local-" if local else "") + proto

    # ------------------------------------------------------------------ AUTH
    def _cmd_auth(self, server: SmtpServer, arg: str) -> None:
        v = self.ctx.variables
        v["authentication_failed"] = "1"
        # control = allow_auth_unadvertised: AUTH even when not offered (after HELO, or
        # no EHLO at all), with any configured mechanism
        unadvertised = "allow_auth_unadvertised" in self.controls
        if not unadvertised and (not self.auth_offered or server.helo_name is None
                                 or not server.esmtp):
            server.synprot_error(503, REPLY_NOT_ADVERTISED[4:])
            return
        if self.is_authenticated():
            server.synprot_error(503, REPLY_ALREADY_AUTHENTICATED[4:])
            return
        if server.sender is not None:
            server.synprot_error(503, "not permitted in mail transaction")
            return
        parts = arg.split(None, 1)
        name = parts[0] if parts else ""
        initial = parts[1].strip() if len(parts) > 1 else None
        v["smtp_command_argument"] = taint(arg)
        res = self._run("acl_smtp_auth", "auth")
        if res.verdict != "accept":
            self._log_reject(f"AUTH {name}".rstrip(), res, with_sender=False)
            code, text = acl_smtp_reply(res, "auth")
            if res.verdict != "defer" and code == 550 and not (
                    res.message and split_code(res.message, 0)[0]):
                code = 503          # Exim's default code for a refused AUTH
            server.send_reply(Reply(code, text, close=res.verdict == "drop"))
            return
        if any(c not in _MECH_CHARS for c in name):
            server.synprot_error(501, "invalid character in authentication mechanism name")
            return
        wanted = name.upper()
        usable = self.auth_servers if unadvertised else self.auth_offered
        auth = next((a for a in usable if a.public_name == wanted), None)
        if auth is None:
            server.synprot_error(504, reply_unsupported_mechanism(name)[4:])
            return
        exchange = auth.server_exchange(ContextExpander(self.ctx), dict(v))
        step = self._step(auth, exchange, exchange.start(initial))
        if isinstance(step, Challenge):
            server.send_challenge(step)
        else:
            server.send_reply(step)

    def _step(self, auth: Authenticator, exchange: ServerExchange,
              step: AuthChallenge | AuthResult) -> Challenge | Reply:
        """A mechanism step as the server's next action: a 334 challenge or the end."""
        if isinstance(step, AuthChallenge):
            return Challenge(
                text=base64.b64encode(step.data).decode("ascii"),
                respond=lambda line: self._step(auth, exchange, exchange.respond(line)),
                cancel=lambda: self._cancelled(auth, exchange))
        return self._finished(auth, step)

    def _cancelled(self, auth: Authenticator, exchange: ServerExchange) -> None:
        """``*``: the server answers "501 Authentication cancelled"; the exchange ends
        as a failure (logged and counted like any other)."""
        result = exchange.respond("*")
        if isinstance(result, AuthResult):
            self._finished(auth, result)

    def _finished(self, auth: Authenticator, result: AuthResult) -> Reply:
        v = self.ctx.variables
        # Expansions after AUTH see $auth1.. only inside the authenticator (Exim).
        if result.ok:
            self.authenticated_by = auth
            self.auth_tls = bool(self.server is not None and self.server.tls_active)
            v.update(authenticated_id=taint(result.set_id or ""),
                     sender_host_authenticated=auth.name, authentication_failed="")
            v[AUTHRES_AUTH] = auth.public_name          # for ${authresults}
            self._set_protocol()
            return Reply(235, result.text)
        self.auth_failures += 1
        v["authenticated_fail_id"] = taint(result.set_id or "")
        line = failure_log_line(auth.name, self.host_ident(with_h=False), result)
        self.log.reject(line)
        delay = min(self.auth_failures - 1, AUTH_FAIL_DELAY_MAX)
        if delay > 0:
            self.sleep(delay)
        return Reply(result.code, result.text)

    # ------------------------------------------------------------------ MAIL AUTH=
    def auth_mail_param(self, value: str | None) -> Reply | None:
        """AUTH= on MAIL (RFC 4954 5, spec 33.2): $authenticated_sender.  Without
        acl_smtp_mailauth it is honoured only from an authenticated client; with it, the
        ACL decides (it sees the value in $authenticated_sender, and no $sender_address
        yet).  Then server_mail_auth_condition of the client's authenticator, if set.
        "<>" and anything ignored leave it empty.  A 501 reply for malformed xtext; the
        ACL's defer (or error) is a 4xx reply to MAIL."""
        v = self.ctx.variables
        v["authenticated_sender"] = ""
        if not value or value == "<>":      # Exim ignores an empty AUTH= silently
            return None
        decoded = xtext_decode(value)
        # An encoded control character (a CR or LF) would reach the spool's
        # -auth_sender line, log lines and headers: refused like malformed xtext.
        if decoded is None or any(ord(c) < 32 or ord(c) == 127 for c in decoded):
            assert self.server is not None
            return Reply(501, "invalid data for AUTH")
        auth = self.authenticated_by
        ignore: str | None = None
        if main_option(self.config, "acl_smtp_mailauth"):
            v["authenticated_sender"] = taint(decoded)
            res = self._run("acl_smtp_mailauth", "mailauth")
            if res.verdict in ("discard", "drop"):
                # Exim's rule: this ACL may only accept, deny or defer.
                self.log.panic(f'"{res.verdict}" verb not allowed in MAILAUTH ACL')
                res = AclResult("defer", error=True)
            if res.verdict == "defer":
                v["authenticated_sender"] = ""
                self._log_reject(f"MAILAUTH {_mail_args_to_auth(self.server)}", res,
                                 with_sender=False)
                return self._reply(res, "mailauth")
            if res.verdict != "accept":
                ignore = "rejected by ACL"
        elif auth is None:
            ignore = "client not authenticated"
        if ignore is None and auth is not None \
                and auth.opt("server_mail_auth_condition") is not None:
            v["authenticated_sender"] = taint(decoded)
            if not self._mail_auth_condition(auth):
                ignore = "server_mail_auth_condition failed"
                if v.get("authenticated_id"):
                    ignore += f': authenticated ID="{v["authenticated_id"]}"'
        if ignore is not None:
            v["authenticated_sender"] = ""
            self.log.main(f"ignoring AUTH={value} from {self.host_ident()} ({ignore})")
            return None
        v["authenticated_sender"] = taint(decoded)
        return None

    def _mail_auth_condition(self, auth: Authenticator) -> bool:
        try:
            value = expand_string(str(auth.opt("server_mail_auth_condition")), self.ctx)
        except ExpandError:
            return False
        return exim_true(value)


def _mail_args_to_auth(server: SmtpServer | None) -> str:
    """What Exim's MAILAUTH rejection line shows: MAIL's argument after "FROM:", up to
    the end of the AUTH= parameter (Exim has cut the parameters after it already)."""
    line = server.last_command if server is not None else ""
    head, colon, rest = line.partition(":")
    text = rest.strip() if colon else line
    words = text.split(" ")
    for i, word in enumerate(words):
        if i and word[:5].upper() == "AUTH=":
            return " ".join(words[:i + 1])
    return text
