"""Immediate delivery over a connection kept by ``callout=hold``.

The recipient callouts of the message left one SMTP transaction open (``MAIL FROM``
with the message's sender and an accepted ``RCPT`` for each recipient).  When the
message is to be delivered at once and every recipient routes, with the same smtp
transport, to that host, the message is sent with ``DATA`` on that transaction, as
Exim 4.96 does: the usual ``=>``/``->`` lines follow the arrival line, then
``Completed``.  Otherwise (another route, a recipient not called on it, a server that
offers STARTTLS, which a delivery would use but a callout does not), and whenever the
destination does not accept the message, the connection is closed with QUIT and the
message takes the normal way.
"""
from __future__ import annotations

import time
from typing import Any

from pymta.acl.callout_hold import HeldCallout
from pymta.address import Host
from pymta.delivery.cutthrough import _route
from pymta.delivery.deliver import completed_line, host_field
from pymta.delivery.job import DeliveryJob
from pymta.delivery.lognames import log_name_parts
from pymta.log import log_selected
from pymta.logevents import Delivery
from pymta.smtp import client as smtp_client
from pymta.spool import files
from pymta.spool.lock import lock_message

#: smtp transport options a callout's plain, unauthenticated connection cannot honour.
_NEEDS_A_DELIVERY_CONNECTION = ("hosts_require_tls", "hosts_require_auth", "hosts_try_auth",
                                "hosts_require_dane", "hosts_require_ocsp",
                                "tls_on_connect_ports",
                                # the message data is written by the filter
                                "transport_filter")


def _usable(held: HeldCallout, config: Any, ctx: Any, recipients: list[str]) -> list[Any]:
    """The routed recipients when the held transaction is exactly their delivery."""
    if held.starttls:
        return []
    routes = [_route(config, ctx, r) for r in recipients]
    if not routes or any(r is None for r in routes):
        return []
    transport = routes[0].transport if routes[0] is not None else None
    addresses = []
    for r in routes:
        assert r is not None
        if r.transport is not transport:
            return []
        hosts = r.address.hosts or []
        if hosts and not any(h.address == held.host.address or h.name == held.host.name
                             for h in hosts):
            return []
        addresses.append(r.address)
    if transport is None or any(transport.opt(o) for o in _NEEDS_A_DELIVERY_CONNECTION) \
            or sorted(transport.rcpt_address(a) for a in addresses) != sorted(held.recipients):
        return []
    return addresses


def deliver_held(config: Any, log: Any, spool_dir: str, ctx: Any, msgid: str,
                 held: HeldCallout) -> bool:
    """Deliver ``msgid`` on ``held`` (which is always closed afterwards); True when the
    message was delivered and removed from the spool."""
    try:
        return _deliver(config, log, spool_dir, ctx, msgid, held)
    except Exception:  # noqa: BLE001 - whatever it is, the normal delivery copes
        return False
    finally:
        held.close()


def _deliver(config: Any, log: Any, spool_dir: str, ctx: Any, msgid: str,
             held: HeldCallout) -> bool:
    lock = lock_message(spool_dir, msgid)
    if lock is None:
        return False                # somebody else is delivering it already
    with lock:
        message = files.read_header(spool_dir, msgid)
        addresses = _usable(held, config, ctx,
                            [r.address for r in message.pending_recipients()])
        if not addresses:
            return False
        transport = config.transports[addresses[0].transport].obj
        job = DeliveryJob(message=message, spool_dir=spool_dir,
                          data_path=files.data_path(spool_dir, msgid), addresses=addresses,
                          ctx=ctx, log=log, config=config, log_host_errors=False)
        if transport.return_path(job) != held.sender:
            return False
        host = Host(held.host.name, held.host.address, held.host.port)
        for a in addresses:
            a.host_used = host
        writer = transport.message_writer(job, transport.context(job, addresses[0]))
        started = time.monotonic()
        try:
            reply = held.client.command("DATA")
            if reply.code != 354:
                return False
            final, written = held.client.send_data(writer)
        except (smtp_client.SmtpError, OSError):
            return False
        if not final.ok():
            return False
        elapsed = time.monotonic() - started
        received = message.received_time + message.received_time_usec / 1e6
        complete = message.variables.get("received_time_complete")
        since = float(complete) if complete and log_selected(
            config, "queue_time_exclusive") else received
        for i, a in enumerate(addresses):
            name, parents, original = log_name_parts(config, a)
            log.main(Delivery(name=name, parents=parents, original=original,
                              router=str(a.router or ""),
                              transport=transport.name, first=i == 0, host=host_field(a),
                              confirmation=final.text, sender=message.sender,
                              return_path=held.sender, size=written, host_port=host.port,
                              interface=held.client.local, queue_time=time.time() - since,
                              deliver_time=elapsed).line(config), msgid)
        log.main(completed_line(config, time.time() - received), msgid)
        files.remove_message(spool_dir, msgid)
        return True
