"""Client SMTP authentication for the smtp transport (Exim 4.96's rules).

When the server advertises AUTH and the host is in hosts_require_auth or hosts_try_auth,
the client sides of the configured authenticators are tried in configuration order, each
whose public name the server offers (and whose client_condition is true) until one
succeeds.  A 5xx to an attempt is logged ("<name> authenticator failed H=host [ip] <reply>")
and the next one is tried; a 4xx ends the conversation with this host.  When the host is
in hosts_require_auth and no attempt succeeded, the delivery defers with (-42)
"authentication required but <reason>".  An authenticator whose expansion is forced to
fail is skipped; any other expansion failure defers with (-48).

:func:`mail_auth_parameter` gives the ``AUTH=`` parameter of MAIL (authenticated_sender,
authenticated_sender_force, or the message's own authenticated sender).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymta.auth.base import Authenticator, ClientError
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.expander import ExpansionError
from pymta.errnos import EximErrno
from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.truth import exim_true
from pymta.xtext import xtext_encode


@dataclass
class AuthResult:
    """The outcome with one host.  ``ok``: authenticated as ``name`` (the authenticator
    instance, for A=) with ``auth_id`` (client_set_id).  ``errno``/``message`` describe a
    deferral; ``reply`` is set when the server's 4xx ended the conversation."""

    ok: bool = False
    name: str = ""
    auth_id: str = ""
    errno: int = 0
    message: str = ""
    reply: Any = None
    command: str = ""


def _condition_true(auth: Authenticator, ctx: Any) -> bool:
    cond = auth.opt("client_condition")
    if cond is None:
        return True
    try:
        value = str(expand_string(cond, ctx))
    except ExpandError:                  # Exim: a failed expansion does not use it
        return False
    return exim_true(value)


def authenticate(cl: Any, host: Any, authenticators: list[Authenticator], ctx: Any,
                 *, require: bool, attempt: bool,
                 log_main: Callable[[str], None]) -> AuthResult:
    """Authenticate on the open connection ``cl`` as the options say."""
    fail_reason = "server did not advertise AUTH support"
    offered = cl.extensions.get("AUTH") if cl.esmtp else None
    if offered is not None and (require or attempt):
        names = offered.upper().split()
        fail_reason = "no common mechanisms were found"
        where = f"H={host.name} [{host.address}]"
        for auth in authenticators:
            if auth.public_name not in names or not _condition_true(auth, ctx):
                continue
            result = _try(cl, auth, ctx, where, log_main)
            if result is not None:
                return result
            fail_reason = "authentication attempt(s) failed"
    if require:
        return AuthResult(errno=EximErrno.AUTHFAIL,
                          message=f"authentication required but {fail_reason}")
    return AuthResult()


def _try(cl: Any, auth: Authenticator, ctx: Any, where: str,
         log_main: Callable[[str], None]) -> AuthResult | None:
    """One authenticator: a final :class:`AuthResult`, or None to go on with the next."""
    expander = ContextExpander(ctx)
    try:
        exchange = auth.client_exchange(expander, {})
        initial = exchange.initial()
    except ClientError as e:
        if e.forced:
            return None
        return AuthResult(errno=EximErrno.AUTHPROB, message=str(e))
    problem: list[ClientError] = []

    def respond(text: str) -> str:
        try:
            return str(exchange.challenge(text))
        except ClientError as e:
            problem.append(e)
            return "*"

    reply, command = cl.auth(auth.public_name, initial, respond)
    if problem:
        if problem[0].forced:
            return None
        return AuthResult(errno=EximErrno.AUTHPROB, message=str(problem[0]))
    if reply.ok() and exchange.finished():
        auth_id = ""
        if auth.opt("client_set_id"):
            try:
                auth_id = str(expand_string(auth.opt("client_set_id"), ctx))
            except ExpandError:              # no id rather than no delivery
                auth_id = ""
        return AuthResult(ok=True, name=auth.name, auth_id=auth_id)
    if reply.kind == "5":
        log_main(f"{auth.name} authenticator failed {where} {reply.text}")
        return None
    if reply.ok():
        log_main(f"{auth.name} authenticator cancelled authentication {where} "
                 "the server's final data did not check out")
        return None
    return AuthResult(reply=reply, command=command)


def mail_auth_parameter(transport: Any, ctx: Any, authenticated: bool,
                        message_variables: Mapping[str, str]) -> str:
    """``AUTH=<sender>`` for MAIL, or "": sent after a successful authentication (or
    always with authenticated_sender_force) when there is an authenticated sender — the
    expanded authenticated_sender option, else the message's own.  A forced failure of
    the expansion means the message's own; other failures raise
    :class:`~pymta.auth.expander.ExpansionError`."""
    sender = message_variables.get("auth_sender", "") or ""
    text = transport.opt("authenticated_sender")
    if text:
        try:
            value = str(expand_string(text, ctx))
        except ExpandFail:
            value = ""
        except ExpandError as e:             # Exim defers the delivery
            raise ExpansionError(f"Failed to expand authenticated_sender: {e}") from None
        if value:
            sender = value
    if not sender or not (authenticated or transport.opt("authenticated_sender_force")):
        return ""
    return f"AUTH={xtext_encode(sender)}"
