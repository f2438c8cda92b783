"""The events the smtp transport raises (its ``event_action``), in Exim 4.96's order.

Per connection: ``tcp:connect`` before connecting (a non-empty result refuses the
connection: the host is deferred with errno -58), ``smtp:connect`` after the banner (a
non-empty result closes the connection and defers the host), ``smtp:ehlo`` after each
EHLO/LHLO reply, ``tls:cert`` for each certificate of the server's chain that is
verified (a non-empty result refuses the verification, which ends the handshake),
``tcp:close`` when the connection is closed.  Per recipient: ``msg:rcpt:host:defer``
then ``msg:rcpt:defer`` for a 4xx reply to RCPT.  Per host error (a failed TLS
handshake included): ``msg:host:defer``.  Once per transport run: ``msg:defer`` when
addresses were deferred by something other than their own RCPT reply.  Per DANE
failure: ``dane:fail`` with an RFC 8460 result type (``dane-required`` or
``dnssec-invalid`` when the TLSA records cannot be used, ``validation-failure`` when
the TLS session with a DANE host failed).  The delivery code raises the per-recipient
outcome events (``msg:delivery``, ``msg:fail:delivery``).
"""
from __future__ import annotations

from typing import Any

from pymta.address import Address, Host
from pymta.errnos import EximErrno
from pymta.events import TransportLike, rcpt_defer_errno, transport_action, transport_event
from pymta.expand.context import ExpandContext
from pymta.smtp import client as smtp_client
from pymta.tls.certevent import CertHook
from pymta.tls.certinfo import pem_text
from pymta.tls.dane import Outcome
from pymta.tls.outbound import HostRequirements


class EventRefusal(smtp_client.SmtpConnectError):
    """A tcp:connect event action refused the connection: the host line says so, the
    addresses are deferred with errno -58 and no text (as in Exim)."""

    log_text = "Event requests alternate response"


def _raise(tpt: TransportLike, job: Any, name: str, ctx: ExpandContext | None, *,
           host: Host | None = None, addr: Address | None = None, data: str = "",
           errno: int = 0) -> str:
    if transport_action(tpt) is None:
        return ""
    if addr is None and ctx is not None and len(job.addresses) > 1:
        # as in Exim, $local_part is unset while a transport handles several addresses
        ctx = ctx.child(local_part="")
    return transport_event(tpt, name, ctx, host=host, addr=addr, data=data, errno=errno,
                           log=getattr(job, "log", None), msgid=job.message.id)


def connection_events(tpt: TransportLike, job: Any, cl: smtp_client.SmtpClient, host: Host,
                      ctx: ExpandContext | None) -> None:
    """tcp:connect before ``cl`` connects (raises :class:`EventRefusal` when the action
    refuses it); arranges tcp:close for when the connection is closed."""
    if _raise(tpt, job, "tcp:connect", ctx, host=host):
        raise EventRefusal("", EximErrno.EVENT)

    def closed() -> None:
        _raise(tpt, job, "tcp:close", ctx, host=host)

    cl.on_close = closed


def banner_event(tpt: TransportLike, job: Any, cl: smtp_client.SmtpClient, host: Host,
                 banner: smtp_client.SmtpReply, ctx: ExpandContext | None) -> None:
    """smtp:connect with the banner; a non-empty result ends the session (QUIT) and
    raises the host error that defers it."""
    result = _raise(tpt, job, "smtp:connect", ctx, host=host, data=banner.text)
    if result:
        cl.quit()                   # Exim says QUIT before it closes
        raise smtp_client.SmtpError(
            f"deferred by smtp:connect event expansion: {result}", EximErrno.EXPANDFAIL)


def ehlo_event(tpt: TransportLike, job: Any, host: Host, reply: smtp_client.SmtpReply,
               command: str, ctx: ExpandContext | None) -> None:
    """smtp:ehlo with the whole reply to a successful EHLO (or LHLO)."""
    if reply.ok() and command[:4].upper() in ("EHLO", "LHLO"):
        _raise(tpt, job, "smtp:ehlo", ctx, host=host, data=reply.text)


def host_defer_event(tpt: TransportLike, job: Any, host: Host, addrs: list[Address],
                     ctx: ExpandContext | None) -> None:
    """msg:host:defer after a host error that deferred the addresses."""
    deferred = [a for a in addrs if a.result == "defer"]
    if deferred:
        a = deferred[0]
        _raise(tpt, job, "msg:host:defer", ctx, host=host, addr=a, data=a.message or "",
               errno=a.basic_errno)


def rcpt_defer_events(tpt: TransportLike, job: Any, host: Host, addrs: list[Address],
                      ctx: ExpandContext | None) -> None:
    """msg:rcpt:host:defer and msg:rcpt:defer for each recipient a 4xx to RCPT
    deferred at ``host``."""
    for a in addrs:
        if a.result == "defer" and a.basic_errno == EximErrno.RCPT4XX:
            errno = rcpt_defer_errno(a.more_errno, host)
            for name in ("msg:rcpt:host:defer", "msg:rcpt:defer"):
                _raise(tpt, job, name, ctx, host=host, addr=a, data=a.message or "",
                       errno=errno)


def message_defer_event(tpt: TransportLike, job: Any, addrs: list[Address],
                        ctx: ExpandContext | None) -> None:
    """msg:defer once for the run, about the first address deferred by something other
    than its own RCPT reply."""
    for a in addrs:
        if a.result == "defer" and a.basic_errno != EximErrno.RCPT4XX:
            _raise(tpt, job, "msg:defer", ctx, host=a.host_used, addr=a,
                   data=a.message or "", errno=a.basic_errno)
            return


def cert_hook(tpt: TransportLike, job: Any, host: Host, ctx: ExpandContext | None
              ) -> CertHook | None:
    """The tls:cert event for the handshake with ``host``: $event_data is the chain
    depth and $tls_out_peercert the certificate at that depth; a refusal is logged."""
    if ctx is None or transport_action(tpt) is None:
        return None

    def hook(cert: Any, depth: int) -> str:
        result = _raise(tpt, job, "tls:cert", ctx.child(tls_out_peercert=pem_text(cert)),
                        host=host, data=str(depth))
        if result:
            log = getattr(job, "log", None)
            if log is not None:
                log.main(f"SSL verify denied by event-action: depth={depth}: {result}",
                         job.message.id)
        return result

    return hook


def tls_fallback_event(tpt: TransportLike, job: Any, host: Host, addrs: list[Address],
                       message: str, errno: int, ctx: ExpandContext | None) -> None:
    """msg:host:defer for a failed TLS handshake after which the delivery goes on in
    clear (not in hosts_require_tls)."""
    _raise(tpt, job, "msg:host:defer", ctx, host=host, addr=addrs[0] if addrs else None,
           data=message, errno=errno)


def dane_unusable_event(tpt: TransportLike, job: Any, host: Host, req: HostRequirements,
                        required: bool, ctx: ExpandContext | None) -> None:
    """dane:fail for a host not contacted because DANE could not be set up for it:
    "dane-required" under hosts_require_dane, else "dnssec-invalid"."""
    if req.errno_kind == "dane":
        _raise(tpt, job, "dane:fail", ctx, host=host,
               data="dane-required" if required else "dnssec-invalid")


def dane_tls_failed_event(tpt: TransportLike, job: Any, host: Host,
                          req: HostRequirements | None, ctx: ExpandContext | None) -> None:
    """dane:fail "validation-failure": the TLS session with a DANE host failed (the
    chain matched no TLSA record, or the handshake itself)."""
    if req is not None and req.dane is not None and req.dane.outcome is Outcome.DANE:
        _raise(tpt, job, "dane:fail", ctx, host=host, data="validation-failure")
