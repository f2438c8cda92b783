"""Cutthrough delivery (the ACL's ``control = cutthrough_delivery``).

The receiving session opens the delivery connection while the client is still talking:
the first recipient whose RCPT ACL asks for it is routed (as for verification) and, when
it goes to an smtp transport, MAIL and RCPT are sent to the destination at once; further
recipients that route the same way follow on the same connection.  After the data the
message is spooled as always, then sent down the connection, and the destination's verdict
becomes the client's:

* accepted: the recipients are logged with ``>>`` before the arrival line and the
  message is complete (nothing stays queued);
* refused (5xx): the client gets the destination's reply and nothing is kept, so no
  bounce is ever made;
* deferred (4xx) or a broken connection: with ``defer=spool`` (the default) the message
  stays queued for normal delivery and the client gets 250; with ``defer=pass`` the client
  gets the 4xx and nothing is kept.

The session sees this module only through :class:`pymta.smtp.cutthrough_api.Cutthrough`
(the receiving side does not import the delivery layer).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pymta.address import Address, Host
from pymta.delivery.deliver import host_field
from pymta.delivery.job import DeliveryJob
from pymta.delivery.lognames import log_name_parts
from pymta.delivery.outcome_events import cutthrough_delivered
from pymta.logevents import Delivery
from pymta.routing import route_address
from pymta.smtp import client as smtp_client
from pymta.smtp.cutthrough_api import CutthroughResult
from pymta.spool import files
from pymta.spool.model import SpoolMessage
from pymta.transports.smtp import SmtpTransport


@dataclass
class _Route:
    address: Address
    transport: SmtpTransport


def _route(config: Any, ctx: Any, address: str) -> _Route | None:
    """The address routed as for verification, when it goes to one smtp transport."""
    try:
        result = route_address(config, Address(address), ctx, verify="recipient")
    except Exception:  # noqa: BLE001 - a routing problem: no cutthrough, normal delivery
        return None
    if result.status != "accept" or len(result.addresses) != 1:
        return None
    a = result.addresses[0]
    inst = getattr(config, "transports", {}).get(a.transport) if a.transport else None
    transport = getattr(inst, "obj", None)
    if not isinstance(transport, SmtpTransport) or transport.opt("protocol") == "lmtp":
        return None
    if transport.opt("transport_filter"):
        return None         # Exim cancels cutthrough for a transport filter too
    return _Route(a, transport)


class SmtpCutthrough:
    """One cutthrough connection for one message (see the module docstring)."""

    def __init__(self, config: Any, log: Any, spool_dir: str, route: _Route,
                 client: Any, host: Host, tctx: Any, job: DeliveryJob):
        self.config, self.log, self.spool_dir = config, log, spool_dir
        self.transport = route.transport
        self.routes = [route]
        self.client, self.host, self.tctx, self.job = client, host, tctx, job
        # for the >> line: what the data phase wrote, its local address, its time
        self.written: int | None = None
        self.local: tuple[str, int] | None = None
        self.elapsed: float | None = None

    # -- recipients -------------------------------------------------------------
    def rcpt(self, address: str, ctx: Any) -> int:
        """RCPT for a further recipient: the destination's reply code, or 0 when the
        address routes elsewhere (the caller then gives up the cutthrough)."""
        route = _route(self.config, ctx, address)
        if route is None or route.transport is not self.transport:
            return 0
        same = [h for h in route.address.hosts if h.address == self.host.address] \
            if route.address.hosts else [self.host]
        if not same:
            return 0
        try:
            reply = self.client.command(f"RCPT TO:<{self.transport.rcpt_address(route.address)}>")
        except (smtp_client.SmtpError, OSError):
            return 0
        if reply.ok():
            route.address.host_used = self.host
            self.routes.append(route)
            self.job.addresses.append(route.address)
        return reply.code

    # -- the message -------------------------------------------------------------
    def deliver(self, msgid: str) -> CutthroughResult:
        """Send the spooled message ``msgid``; the destination's final verdict."""
        job = self.job
        try:
            job.message = files.read_header(self.spool_dir, msgid)
            job.data_path = files.data_path(self.spool_dir, msgid)
            writer = self.transport.message_writer(job, self.tctx)
            started = time.monotonic()
            reply = self.client.command("DATA")
            if reply.code != 354:
                return self._result(reply)
            self.local = self.client.local
            final, self.written = self.client.send_data(writer)
            self.elapsed = time.monotonic() - started
        except (smtp_client.SmtpError, OSError) as exc:
            self.close()
            return CutthroughResult(451, str(getattr(exc, "message", exc)), "")
        except Exception as exc:  # noqa: BLE001 - whatever it is, normal delivery copes
            self.close()
            return CutthroughResult(451, f"cutthrough failed: {exc}", "")
        self.close(quit=True)
        return self._result(final)

    def _result(self, reply: Any) -> CutthroughResult:
        details = " ".join(f for f in (f"R={self.routes[0].address.router}",
                                       f"T={self.transport.name}",
                                       host_field(self.routes[0].address)) if f)
        text = "\n".join(line[4:] for line in reply.lines)
        confirmation = reply.text.replace('"', '\\"')
        return CutthroughResult(reply.code, text, f'{details} C="{confirmation}"',
                                reply.text)

    def log_delivered(self, msgid: str, confirmation: str) -> None:
        """The ``>>`` lines (before the arrival line, as Exim writes them)."""
        for route in reversed(self.routes):
            a = route.address
            msg = self.job.message
            name, parents, original = log_name_parts(self.config, a)
            line = Delivery(name=name, parents=parents, original=original,
                            router=str(a.router or ""),
                            transport=self.transport.name, host=host_field(a),
                            confirmation=confirmation, cutthrough=True,
                            sender=msg.sender,    # no P= on a >> line (as exim4)
                            size=self.written, host_port=self.host.port,
                            interface=self.local,
                            queue_time=time.time() - msg.received_time
                            - msg.received_time_usec / 1e6,
                            deliver_time=self.elapsed).line(self.config)
            self.log.main(line, msgid)
            cutthrough_delivered(self.transport, a, self.tctx, self.log, msgid, confirmation)

    @property
    def recipients(self) -> list[str]:
        return [r.address.address for r in self.routes]

    def close(self, quit: bool = False) -> None:
        """Give up the connection (QUIT first when it is still in a clean state)."""
        cl, self.client = self.client, None
        if cl is None:
            return
        try:
            if quit:
                cl.quit()
            else:
                cl.close()
        except Exception:  # noqa: BLE001 - it is going away anyway
            pass


def open_cutthrough(config: Any, log: Any, spool_dir: str, ctx: Any, sender: str,
                    address: str) -> tuple[SmtpCutthrough | None, int]:
    """Route ``address`` and, when it goes to an smtp transport, connect and send MAIL
    and RCPT: (the connection or None, the destination's reply code to RCPT; 0 when no
    cutthrough was possible and the message takes the normal way)."""
    route = _route(config, ctx, address)
    if route is None:
        return None, 0
    message = SpoolMessage(id="", originator_login="", originator_uid=0, originator_gid=0,
                           sender=sender, received_time=0)
    job = DeliveryJob(message=message, spool_dir=spool_dir, data_path="",
                      addresses=[route.address], ctx=ctx, log=log, config=config,
                      log_host_errors=False)
    opened = route.transport.connect_for(job)
    if opened is None:
        return None, 0
    client, host, tctx = opened
    client.on_close = None          # Exim raises no tcp:close for a cutthrough connection
    cut = SmtpCutthrough(config, log, spool_dir, route, client, host, tctx, job)
    try:
        mail = client.command(f"MAIL FROM:<{route.transport.return_path(job)}>")
        if not mail.ok():
            cut.close(quit=True)
            return None, 0
        rcpt = client.command(f"RCPT TO:<{route.transport.rcpt_address(route.address)}>")
    except (smtp_client.SmtpError, OSError):
        cut.close()
        return None, 0
    if not rcpt.ok():
        cut.close(quit=True)
        return None, rcpt.code
    return cut, rcpt.code
