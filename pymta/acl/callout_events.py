"""The transport's connection events on a callout's connection, as Exim 4.96 raises
them (checked with exim4): tcp:connect before connecting (a non-empty result: the
callout cannot be completed, "<host> : Unknown error -58"), smtp:connect after the
banner (a non-empty result: QUIT, "<host> : deferred by smtp:connect event expansion:
<result>"), smtp:ehlo after the EHLO/LHLO reply and tcp:close when the connection
closes."""
from __future__ import annotations

import pymta.smtp.client as smtp_client
from pymta.address import Host
from pymta.errnos import EximErrno
from pymta.events import ConnectionEvents


def _host(name: str, address: str, port: int) -> Host:
    return Host(name, address, port)


def connect_refusal(events: ConnectionEvents | None, name: str, address: str, port: int,
                    cl: smtp_client.SmtpClient) -> str:
    """tcp:connect: the failure text when the action refused the connection, else ""
    (and tcp:close is arranged for ``cl``)."""
    if events is None:
        return ""
    host = _host(name, address, port)
    if events.connect(host):
        return f"{name} [{address}] : Unknown error {int(EximErrno.EVENT)}"
    cl.on_close = lambda: events.close(host)
    return ""


def banner_refusal(events: ConnectionEvents | None, name: str, address: str, port: int,
                   banner: smtp_client.SmtpReply) -> str:
    """smtp:connect: the failure text when the action refused the session, else ""."""
    if events is None:
        return ""
    result = events.banner(_host(name, address, port), banner.text)
    if result:
        return f"{name} [{address}] : deferred by smtp:connect event expansion: {result}"
    return ""


def ehlo(events: ConnectionEvents | None, name: str, address: str, port: int,
         command: str, reply: smtp_client.SmtpReply) -> None:
    """smtp:ehlo after a successful EHLO or LHLO."""
    if events is not None and reply.ok() and command[:4].upper() in ("EHLO", "LHLO"):
        events.ehlo(_host(name, address, port), reply.text)
