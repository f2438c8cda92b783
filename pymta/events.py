"""Exim's events: the main and transport ``event_action`` options.

An event is raised at a named point (``tcp:connect``, ``msg:delivery``, ...): the
configured ``event_action`` is expanded with ``$event_name``, ``$event_data`` and
``$event_defer_errno`` set on top of the variables of the place that raised it, usually
to notify something (``${acl}`` with ``logwrite``, ``${run}``, ``${readsocket}``).  The
result normally does not matter; for the events that fire *before* their action
(``tcp:connect``, ``smtp:connect``, ``tls:cert``) a non-empty result refuses it, which
the caller sees as the returned text.

Main events (``msg:complete``, ``msg:fail:internal``, ``tls:fail:connect``, a server's
``tls:cert``) use the main option; the others use the option of the transport that is
delivering.  A failed expansion is written to the main and panic logs ("failed to
expand event_action NAME in WHERE: error", as Exim 4.96 does) and counts as an empty
result.  Events raised while an event action is being expanded are not raised again,
so an action cannot loop on itself.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

from pymta.address import Address, Host
from pymta.config.values import main_option
from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.expand.context import ExpandContext
from pymta.taint import taint
from pymta.tls.certevent import CertHook
from pymta.tls.certinfo import pem_text

#: Events that fire in the main (reception / message-level) context.
MAIN_EVENTS = ("msg:complete", "msg:fail:internal", "tls:fail:connect", "tls:cert")

#: Events whose non-empty result refuses what they come before.
VETO_EVENTS = ("tcp:connect", "smtp:connect", "tls:cert")


class EventLog(Protocol):
    """Where an event action's expansion failure is reported (pymta.log.Logger)."""

    def main(self, text: str, msgid: str | None = None) -> None: ...

    def panic(self, text: str, msgid: str | None = None) -> None: ...


#: ``busy``: an event action is being expanded in this thread (no nested events)
_active = threading.local()

#: ``runner(name, ctx, session)`` runs an ACL for ``${acl}`` with a stand-in session;
#: the ACL engine registers it when imported (it sits above this module).
_session_acl_runner: Callable[[str, ExpandContext, Any], Any] | None = None


def set_session_acl_runner(runner: Callable[[str, ExpandContext, Any], Any]) -> None:
    """Register how ``${acl}`` in an event action runs outside an SMTP session."""
    global _session_acl_runner
    _session_acl_runner = runner


class _EventSession:
    """What an ACL run by ``${acl}`` in an event action sees of its caller outside an
    SMTP session: the log its ``logwrite`` lines go to."""

    def __init__(self, log: EventLog):
        self.log = log


def _with_acl_log(ctx: ExpandContext, log: EventLog | None) -> None:
    """Outside an SMTP session, let ``${acl}`` write its logwrite lines to ``log``
    (with the message id, as Exim does during a delivery)."""
    runner = _session_acl_runner
    if ctx.acl_runner is None and log is not None and runner is not None:
        session = _EventSession(log)
        ctx.acl_runner = lambda name, args, c: runner(name, c, session)


def raise_event(action: str | None, name: str, ctx: ExpandContext | None, *,
                data: str = "", errno: int = 0, where: str = "main",
                log: EventLog | None = None, msgid: str | None = None) -> str:
    """Expand ``action`` for the event ``name``; return the expansion ("" when the
    option is unset, the expansion failed or was forced to fail).  ``where`` names the
    transport (or "main") in the failure log line."""
    if not action or ctx is None or getattr(_active, "busy", False):
        return ""
    ectx = ctx.child(event_name=name, event_data=data, event_defer_errno=str(errno))
    _with_acl_log(ectx, log)
    _active.busy = True
    try:
        return expand_string(action, ectx)
    except ExpandFail:
        return ""
    except Exception as exc:  # noqa: BLE001 - an event never breaks what raised it
        if log is not None:
            why = exc.message if isinstance(exc, ExpandError) else repr(exc)
            text = f"failed to expand event_action {name} in {where}: {why}"
            try:
                log.panic(text, msgid)      # the panic log and the main log
            except OSError:
                pass
        return ""
    finally:
        _active.busy = False


def main_event(config: Any, name: str, ctx: ExpandContext | None, *, data: str = "",
               errno: int = 0, log: EventLog | None = None, msgid: str | None = None,
               addr: Address | None = None) -> str:
    """Raise a main-context event (the main ``event_action``); ``addr`` sets the
    address variables ($domain, $local_part, $router_name)."""
    action = main_option(config, "event_action", None)
    if not action or ctx is None:
        return ""
    if addr is not None:
        ctx = ctx.child(domain=taint(addr.domain), local_part=taint(addr.local_part),
                        router_name=str(addr.router or ""))
    return raise_event(str(action), name, ctx, data=data, errno=errno, log=log,
                       msgid=msgid)


def server_cert_hook(config: Any, ctx: ExpandContext, log: EventLog) -> CertHook | None:
    """The tls:cert event of an SMTP server verifying a client's certificate (main
    event_action): $event_data is the chain depth, $tls_in_peercert the certificate
    at that depth; a refusal is logged and ends the handshake."""
    if not main_option(config, "event_action", None):
        return None

    def hook(cert: Any, depth: int) -> str:
        result = main_event(config, "tls:cert",
                            ctx.child(tls_in_peercert=taint(pem_text(cert))),
                            data=str(depth), log=log)
        if result:
            log.main(f"SSL verify denied by event-action: depth={depth}: {result}")
        return result

    return hook


class TransportLike(Protocol):
    """What an event needs of a transport: its name and its options."""

    name: str
    options: Any

    def opt(self, name: str) -> Any: ...


def transport_action(transport: TransportLike | None) -> str | None:
    """The transport's event_action, or None."""
    if transport is None or "event_action" not in transport.options:
        return None
    value = transport.opt("event_action")
    return str(value) if value else None


def transport_event(transport: TransportLike | None, name: str, ctx: ExpandContext | None,
                    *, host: Host | None = None, addr: Address | None = None,
                    data: str = "", errno: int = 0, log: EventLog | None = None,
                    msgid: str | None = None) -> str:
    """Raise a transport-context event.  ``host`` sets $host, $host_address and
    $host_port (the connection's peer); ``addr`` the per-recipient variables
    ($local_part, $domain, $router_name) of a per-recipient event."""
    action = transport_action(transport)
    if action is None or ctx is None or transport is None:
        return ""
    extra: dict[str, str] = {"transport_name": transport.name}
    if host is not None:
        extra.update(host=host.name or host.address or "", host_address=host.address or "",
                     host_port=str(host.port or 25))
    if addr is not None:
        extra.update(domain=taint(addr.domain), local_part=taint(addr.local_part),
                     router_name=str(addr.router or ""))
    return raise_event(action, name, ctx.child(**extra), data=data, errno=errno,
                       where=transport.name, log=log, msgid=msgid)


def rcpt_defer_errno(reply_code: int, host: Host | None) -> int:
    """$event_defer_errno of the msg:rcpt:* events, encoded as Exim encodes a RCPT 4xx
    (its more_errno): the last two digits of the code in the second byte, and "M" or
    "A" in the first for a host found by MX or by address."""
    return ((reply_code % 100) << 8) | ord("M" if host is not None and host.mx >= 0
                                           else "A")


class ConnectionEvents:
    """The connection events of ``transport`` (tcp:connect, smtp:connect, smtp:ehlo,
    tcp:close) for a connection made outside a delivery: an address verification
    callout.  ``connect`` and ``banner`` return the action's answer (non-empty:
    refused)."""

    def __init__(self, transport: TransportLike, ctx: ExpandContext,
                 log: EventLog | None = None):
        self.transport, self.ctx, self.log = transport, ctx, log

    def _raise(self, name: str, host: Host, data: str = "") -> str:
        return transport_event(self.transport, name, self.ctx, host=host, data=data,
                               log=self.log)

    def connect(self, host: Host) -> str:
        return self._raise("tcp:connect", host)

    def banner(self, host: Host, text: str) -> str:
        return self._raise("smtp:connect", host, text)

    def ehlo(self, host: Host, text: str) -> None:
        self._raise("smtp:ehlo", host, text)

    def close(self, host: Host) -> None:
        self._raise("tcp:close", host)


def connection_events(transport: TransportLike | None, ctx: ExpandContext,
                      log: EventLog | None = None) -> ConnectionEvents | None:
    """ConnectionEvents for ``transport``, or None when it has no event_action."""
    if transport is None or transport_action(transport) is None:
        return None
    return ConnectionEvents(transport, ctx, log)
