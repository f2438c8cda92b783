"""The events a delivery raises about each address's outcome and the message's end.

``msg:delivery`` (after the ``=>`` line) and ``msg:fail:delivery`` (before the ``**``
line) use the event_action of the transport that handled the address; an address that
failed without a transport (routing) raises ``msg:fail:internal`` with the main
event_action, and ``msg:complete`` (after ``Completed``) uses the main one too.  A
cutthrough delivery raises ``msg:delivery`` after its ``>>`` line, and no
``msg:complete``, as in Exim.  As in Exim 4.96, ``$event_data`` is the remote reply
for remote (smtp, lmtp) and autoreply transports and empty for the other local ones.
"""
from __future__ import annotations

from typing import Any, Callable

from pymta.address import Address
from pymta.config.values import main_option
from pymta.events import EventLog, main_event, transport_action, transport_event
from pymta.expand.context import ExpandContext

#: transports whose address message is the event data (the others give none)
_DATA_DRIVERS = ("smtp", "lmtp", "autoreply")


def _data(transport: Any, a: Address, text: str | None) -> str:
    if a.host_used is not None or getattr(transport, "driver_name", "") in _DATA_DRIVERS:
        return text or ""
    return ""


ContextFactory = Callable[[], ExpandContext]


def delivered(transport: Any, a: Address, ctx: ContextFactory, log: EventLog,
              msgid: str) -> None:
    """msg:delivery for ``a``, just delivered by ``transport``.  ``ctx`` makes the
    address's context (only when an event_action is set)."""
    if transport_action(transport) is None:
        return
    transport_event(transport, "msg:delivery", ctx(), host=a.host_used, addr=a,
                    data=_data(transport, a, a.smtp_confirmation), log=log, msgid=msgid)


def failed(config: Any, transport: Any, a: Address, ctx: ContextFactory, log: EventLog,
           msgid: str) -> None:
    """msg:fail:delivery for ``a`` (failed by ``transport``), or msg:fail:internal
    when no transport was involved (``transport`` None)."""
    if transport is None:
        if main_option(config, "event_action", None):
            main_event(config, "msg:fail:internal", ctx(), data=a.message or "", log=log,
                       msgid=msgid, addr=a)
        return
    if transport_action(transport) is None:
        return
    transport_event(transport, "msg:fail:delivery", ctx(), host=a.host_used, addr=a,
                    data=_data(transport, a, a.message), log=log, msgid=msgid)


def complete(config: Any, ctx: ContextFactory, log: EventLog, msgid: str) -> None:
    """msg:complete: the message is done with and about to leave the spool."""
    if main_option(config, "event_action", None):
        main_event(config, "msg:complete", ctx(), log=log, msgid=msgid)


def cutthrough_delivered(transport: Any, a: Address, ctx: ExpandContext, log: EventLog,
                         msgid: str, confirmation: str) -> None:
    """msg:delivery for ``a``, delivered by cutthrough while the message was received
    (after its ``>>`` line); ``ctx`` is the connection's context."""
    if transport_action(transport) is None:
        return
    c = ctx.child(message_exim_id=msgid, message_id=msgid)
    c.acl_runner = None         # ${acl} as in a delivery: logwrite lines carry the id
    transport_event(transport, "msg:delivery", c, host=a.host_used, addr=a,
                    data=confirmation, log=log, msgid=msgid)
