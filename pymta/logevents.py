"""Typed events for the main log's message lines, rendered in Exim 4.96's format.

The code that receives or delivers a message describes what happened with one of these
dataclasses and asks it for its line; what each field looks like, and which fields
log_selector turns on or off, is decided here (with :mod:`pymta.logfields` for the TLS
and AUTH fields), not where the event happens.

- :class:`Arrival`: the ``<=`` line (after the message id and the flag): sender,
  ``R=`` of a bounce, ``H=`` (``:port`` with incoming_port), ``I=`` (incoming_interface),
  ``U=``, ``P=``, TLS and AUTH fields, ``S=``, ``id=`` (msg_id).
- :class:`Delivery`: the ``=>`` / ``->`` line: the address as Exim names it, ``R=``,
  ``T=``, ``H=``, TLS and AUTH fields, ``C="..."`` (the remote server's confirmation).
- :class:`Deferral` and :class:`Failure`: the ``==`` and ``**`` lines of an address.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymta.log import log_selected
from pymta.logfields import SessionLogFacts, session_fields


def host_field(host_address: str | None, host_name: str | None, helo_name: str | None,
               port: int | None = None, log_port: bool = False) -> str:
    """The value of ``H=`` for a client: "name (helo) [ip]" with the parts Exim leaves
    out left out (the HELO name when it is the host name)."""
    parts = []
    if host_name:
        parts.append(host_name)
    if helo_name and helo_name != host_name:
        parts.append(f"({helo_name})")
    if host_address:
        parts.append(f"[{host_address}]" + (f":{port}" if log_port and port else ""))
    return " ".join(parts)


@dataclass(frozen=True)
class Arrival:
    """A message was accepted (the ``<=`` line)."""

    sender: str                                   # "" for the null sender
    protocol: str
    size: int
    bounce_reference: str = ""                    # R=: the message a bounce is about
    host_address: str = ""                        # empty for local submissions
    host_name: str = ""
    helo_name: str = ""
    host_port: int | None = None
    interface: tuple[str, int] | None = None      # the address and port it came in on
    ident: str = ""                               # U= for a remote sender (RFC 1413)
    local_user: str = ""                          # U= for a local submission
    session: SessionLogFacts = field(default_factory=SessionLogFacts)
    message_id: str | None = None                 # the Message-ID header's value

    def fields(self, config: Any) -> str:
        """What follows ``<=`` on the line."""
        parts = [self.sender or "<>"]
        if not self.sender and self.bounce_reference:
            parts.append(f"R={self.bounce_reference}")
        if self.host_address:
            parts.append("H=" + host_field(self.host_address, self.host_name, self.helo_name,
                                           self.host_port,
                                           log_selected(config, "incoming_port")))
            if self.interface and log_selected(config, "incoming_interface"):
                parts.append(f"I=[{self.interface[0]}]:{self.interface[1]}")
            if self.ident:
                parts.append(f"U={self.ident}")
        elif self.local_user:
            parts.append(f"U={self.local_user}")
        parts.append(f"P={self.protocol}")
        parts.extend(session_fields(config, self.session))
        parts.append(f"S={self.size}")
        if self.message_id is not None and log_selected(config, "msg_id"):
            parts.append(f"id={self.message_id}")
        return " ".join(parts)


@dataclass(frozen=True)
class Delivery:
    """An address was delivered (the ``=>`` line; ``->`` for a further address of the
    same delivery)."""

    name: str                                     # the address as the line names it
    router: str
    transport: str
    first: bool = True
    host: str = ""                                # "H=name [ip]" of a remote delivery
    session: SessionLogFacts = field(default_factory=SessionLogFacts)
    confirmation: str = ""                        # the server's reply to the data

    def line(self, config: Any) -> str:
        parts = [("=> " if self.first else "-> ") + self.name, f"R={self.router}",
                 f"T={self.transport}"]
        if self.host:
            parts.append(self.host)
            parts.extend(session_fields(config, self.session))
            if self.confirmation:
                escaped = self.confirmation.replace('"', '\\"')
                parts.append(f'C="{escaped}"')
        return " ".join(parts)


@dataclass(frozen=True)
class Deferral:
    """An address was deferred (the ``==`` line, after the flag): the address, ``R=``,
    ``T=``, ``defer (errno)`` and the detail (``: reason`` or the host and reason)."""

    name: str
    errno: int
    detail: str = ""
    router: str = ""
    transport: str = ""

    def text(self) -> str:
        parts = [self.name]
        if self.router:
            parts.append(f"R={self.router}")
        if self.transport:
            parts.append(f"T={self.transport}")
        return " ".join(parts) + f" defer ({self.errno})" + self.detail


@dataclass(frozen=True)
class Failure:
    """An address failed for good (the ``**`` line, after the flag)."""

    name: str
    message: str
    router: str = ""
    transport: str = ""
    host: str = ""                                # "H=name [ip]" when a host said no

    def text(self) -> str:
        parts = [self.name]
        if self.router:
            parts.append(f"R={self.router}")
        if self.transport:
            parts.append(f"T={self.transport}")
        if self.host:
            parts.append(self.host)
        return f"{' '.join(parts)}: {self.message}"
