"""The session lines of Exim's mainlog that are about the connection rather than a
message: ``SMTP connection from ...`` at the start and at QUIT (log_selector
smtp_connection; never for a client in hosts_connection_nolog), ``incomplete
transaction`` when a MAIL transaction is abandoned (smtp_incomplete_transaction) and
``no MAIL in SMTP connection`` at the end of a session that never sent MAIL
(smtp_no_mail).  The lines themselves are :mod:`pymta.logevents`
events; this module knows where their facts are in a session.
"""
from __future__ import annotations

import time
from typing import Any, Protocol

from pymta.log import duration, log_selected
from pymta.logevents import (
    ConnectionClosed,
    ConnectionOpened,
    IncompleteTransaction,
    NoMail,
    write_event,
)
from pymta.logfields import SessionLogFacts, session_fields
from pymta.smtp.server import SmtpServer
from pymta.tls.session import TLSFacts


class HostSession(Protocol):
    """What a line naming the client needs of a session."""

    config: Any
    log: Any

    def host_ident(self, with_h: bool = True) -> str: ...


class LoggedSession(HostSession, Protocol):
    """What these lines need of :class:`~pymta.smtp.session.SmtpSession`."""

    started: float
    in_daemon: bool
    connection_nolog: bool
    accept_count: int
    local_caller: Any
    tls_facts: TLSFacts | None
    ctx: Any


def _who(session: LoggedSession) -> str:
    """The client as these lines name it: host_and_ident, or the caller's login (-bs)."""
    if session.local_caller is not None:
        return str(session.local_caller.login)
    return session.host_ident(with_h=False)


def connection_opened(session: LoggedSession) -> None:
    """``SMTP connection from [ip] (TCP/IP connection count = n)`` (``from login`` for
    -bs), written before any check of the connection."""
    if session.connection_nolog:
        return
    count = session.accept_count if session.in_daemon else None
    write_event(session.log, session.config, ConnectionOpened(_who(session), count))


def closed_by_quit(session: LoggedSession, server: SmtpServer) -> None:
    """At QUIT: an abandoned transaction, then ``... closed by QUIT``."""
    transaction_abandoned(session, server, "QUIT")
    if not session.connection_nolog:
        write_event(session.log, session.config, ConnectionClosed(_who(session)))


def transaction_abandoned(session: HostSession, server: SmtpServer, why: str) -> None:
    """``incomplete transaction (why)`` when a MAIL was accepted and no message
    followed (QUIT, RSET, a lost connection)."""
    if server.sender is None:
        return
    write_event(session.log, session.config,
                IncompleteTransaction(session.host_ident(), why, server.sender,
                                      tuple(server.recipients)))


def _session_facts(session: LoggedSession) -> SessionLogFacts:
    v = session.ctx.variables
    facts = session.tls_facts
    return SessionLogFacts(
        cipher=facts.cipher_exim if facts else "",
        certificate_verified=bool(facts and facts.certificate_verified),
        peerdn=(facts.peerdn or "") if facts else "", sni=(facts.sni or "") if facts else "",
        resumed=bool(facts and facts.resumed),
        authenticator=str(v.get("sender_host_authenticated") or ""),
        auth_id=str(v.get("authenticated_id") or ""))


def no_mail(session: LoggedSession, server: SmtpServer) -> None:
    """At the end of an accepted session without MAIL: ``no MAIL in SMTP connection
    from ... D=time`` with the session's TLS and AUTH fields and C=, its commands."""
    if server.mail_commands or not server.greeted:
        return
    if not log_selected(session.config, "smtp_no_mail"):
        return
    length = duration(time.monotonic() - session.started,
                      log_selected(session.config, "millisec"))
    write_event(session.log, session.config,
                NoMail(_who(session), length,
                       tuple(session_fields(session.config, _session_facts(session))),
                       tuple(server.history)))
