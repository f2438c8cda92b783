"""The XCLIENT command (Postfix's extension, as Exim supports it): a proxy in front of
the server (nginx's mail proxy) names the real client.

``XCLIENT ADDR=192.0.2.7 PORT=40123 NAME=client.example LOGIN=user DESTADDR=...
DESTPORT=...``: values are xtext; ``[UNAVAILABLE]`` and ``[TEMPUNAVAIL]`` stand for
"not known".  The first XCLIENT of a session must give ADDR and PORT.  After
``220 XCLIENT success`` the client must say HELO/EHLO again.  Only hosts in
``hosts_xclient`` may use it (and, after a first success, the proxied session).

Beyond Exim, the values are checked: ADDR must be an IP address (an ``IPV6:`` prefix is
allowed), the ports numbers up to 65535, and a command that fails changes nothing.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pymta.xtext import xtext_decode

#: The attributes pymta takes, in the order the EHLO keyword lists them.
ATTRIBUTES = ("ADDR", "NAME", "PORT", "LOGIN", "DESTADDR", "DESTPORT")
EHLO_KEYWORD = "XCLIENT " + " ".join(ATTRIBUTES)
_UNKNOWN = ("[UNAVAILABLE]", "[TEMPUNAVAIL]")


class XclientSyntaxError(Exception):
    """A malformed XCLIENT command: 501, counted as a syntax error."""


@dataclass
class XclientCommand:
    """The attributes one XCLIENT command gave: absent keys were not given; a value of
    None means the proxy does not know it."""

    values: dict[str, str | None]

    def given(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def _address(value: str) -> str:
    text = value[5:] if value[:5].upper() == "IPV6:" else value
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise XclientSyntaxError(f"XCLIENT: invalid address '{value}'") from None


def _port(value: str) -> str:
    if not value.isdigit() or int(value) > 65535:
        raise XclientSyntaxError(f"XCLIENT: invalid port '{value}'")
    return str(int(value))


def parse_xclient(arg: str, first: bool) -> XclientCommand:
    """Parse the command's argument; ``first``: no XCLIENT has succeeded yet in the
    session (then ADDR and PORT are required)."""
    words = arg.split()
    if not words:
        raise XclientSyntaxError("XCLIENT must have at least one operand")
    values: dict[str, str | None] = {}
    for word in words:
        name, eq, raw = word.partition("=")
        if not eq:
            raise XclientSyntaxError(f"XCLIENT: missing value for parameter '{name}'")
        name = name.upper()
        if name not in ATTRIBUTES:
            raise XclientSyntaxError(f"XCLIENT: unrecognised parameter '{name}'")
        if not raw:
            raise XclientSyntaxError("XCLIENT: zero-length value for param")
        if raw.upper() in _UNKNOWN:
            if name in ("ADDR", "PORT"):      # an unknown client is not a local one
                raise XclientSyntaxError(f"XCLIENT: {name} must be given")
            values[name] = None
            continue
        value = xtext_decode(raw)
        if value is None:
            raise XclientSyntaxError(f"failed xtext decode for XCLIENT: '{raw}'")
        if name in ("ADDR", "DESTADDR"):
            value = _address(value)
        elif name in ("PORT", "DESTPORT"):
            value = _port(value)
        values[name] = value
    if first and "ADDR" not in values:
        raise XclientSyntaxError("missing ADDR for XCLIENT")
    if first and "PORT" not in values:
        raise XclientSyntaxError("missing PORT for XCLIENT")
    return XclientCommand(values)
