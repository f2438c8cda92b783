"""Building the Received: header from ``received_header_text``.

The expansion result gets ";\\n\\t<date>\\n" appended, as Exim 4.96 does.  An empty
expansion means no Received: header.  When the option still has its default text a
direct Python builder produces the identical result without running the expander (this
runs once per message, so it is worth keeping cheap).
"""
from __future__ import annotations

import time
from typing import Any

from pymta import __version__
from pymta.taint import Tainted

_DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

# The default of received_header_text: Exim's own default text, except that it names
# pymta and its release where Exim's has "(Exim $version_number)" ($version_number stays
# "4.96" for configurations that test it).
DEFAULT_RECEIVED_HEADER_TEXT = (
    "Received: ${if def:sender_rcvhost {from $sender_rcvhost\n\t}"
    "{${if def:sender_ident {from ${quote_local_part:$sender_ident} }}"
    "${if def:sender_helo_name {(helo=$sender_helo_name)\n\t}}}}"
    "by $primary_hostname "
    "${if def:received_protocol {with $received_protocol }}"
    "${if def:tls_in_ver        { ($tls_in_ver)}}"
    "${if def:tls_in_cipher_std { tls $tls_in_cipher_std\n\t}}"
    f"(pymta {__version__})\n\t"
    "${if def:sender_address {(envelope-from <$sender_address>)\n\t}}"
    "id $message_exim_id"
    "${if def:received_for {\n\tfor $received_for}}"
)


def tod_full(when: float | None = None) -> str:
    """RFC 5322 date in local time: "Sat, 21 Nov 2026 21:31:31 +0000"."""
    t = time.localtime(time.time() if when is None else when)
    off = (t.tm_gmtoff or 0) // 60
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{off // 60:02d}{off % 60:02d}")


def sender_rcvhost(host_address: str | None, host_name: str | None = None,
                   helo_name: str | None = None, ident: str | None = None,
                   port: int | None = None, log_port: bool = False) -> str:
    """Exim's $sender_rcvhost for a remote sender ("" for local messages).

    A verified name comes first, followed by "([ip] helo=... ident=...)"; without a name
    the "[ip]" comes first and the parentheses hold "port=" (with incoming_port logging),
    "helo=" and "ident=".  helo= is left out when it equals the name or the address.
    With all three parenthesised items, the parentheses move to a new folded line.
    """
    if not host_address:
        return ""
    items = []
    if host_name:
        first = host_name
        items.append(f"[{host_address}]" + (f":{port}" if log_port and port else ""))
    else:
        first = f"[{host_address}]"
        if log_port and port:
            items.append(f"port={port}")
    if helo_name and helo_name not in (host_name, host_address, f"[{host_address}]"):
        items.append(f"helo={helo_name}")
    if ident:
        items.append(f"ident={ident}")
    if not items:
        out = first
    else:
        sep = "\n\t" if len(items) >= 3 else " "
        out = f"{first}{sep}({' '.join(items)})"
    return Tainted(out) if any(isinstance(v, Tainted) for v in
                               (host_name, helo_name, ident)) else out


def _quote_local_part(lp: str) -> str:
    """RFC 5321 quoting of a local part when it is not a dot-atom."""
    import re
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*",
                    lp):
        return lp
    return '"' + lp.replace("\\", "\\\\").replace('"', '\\"') + '"'


def default_received_text(v: dict[str, str], primary_hostname: str,
                          version: str = __version__) -> str:
    """The default received_header_text evaluated in Python (without the date)."""
    parts = ["Received: "]
    if v.get("sender_rcvhost"):
        parts.append(f"from {v['sender_rcvhost']}\n\t")
    else:
        if v.get("sender_ident"):
            parts.append(f"from {_quote_local_part(v['sender_ident'])} ")
        if v.get("sender_helo_name"):
            parts.append(f"(helo={v['sender_helo_name']})\n\t")
    parts.append(f"by {primary_hostname} ")
    if v.get("received_protocol"):
        parts.append(f"with {v['received_protocol']} ")
    if v.get("tls_in_ver"):
        parts.append(f" ({v['tls_in_ver']})")
    if v.get("tls_in_cipher_std"):
        parts.append(f" tls {v['tls_in_cipher_std']}\n\t")
    parts.append(f"(pymta {version})\n\t")
    if v.get("sender_address"):
        parts.append(f"(envelope-from <{v['sender_address']}>)\n\t")
    parts.append(f"id {v.get('message_exim_id', '')}")
    if v.get("received_for"):
        parts.append(f"\n\tfor {v['received_for']}")
    return "".join(parts)


def build_received(config: Any, variables: dict[str, str], acl_vars: dict[str, str] | None
                   = None, when: float | None = None) -> str | None:
    """The complete Received: header text (ending in newline), or None if the option
    expands to nothing.  ``variables`` are the Exim variables of the message (see
    :func:`pymta.message.receive.reception_variables`).  Expansion errors propagate.
    """
    main = getattr(config, "main", None)
    text = getattr(main, "received_header_text", None) if main is not None else None
    primary = str(getattr(main, "primary_hostname", "") or "") if main is not None else ""
    if text is None or text == DEFAULT_RECEIVED_HEADER_TEXT:
        if not primary:
            import socket
            primary = socket.getfqdn()
        result = default_received_text(variables, primary)
    else:
        from pymta.expand import expand_string
        from pymta.expand.context import ExpandContext
        ctx = ExpandContext(config=config, variables=dict(variables),
                            acl_vars=acl_vars if acl_vars is not None else {})
        result = str(expand_string(text, ctx))
    if not result:
        return None
    return f"{result};\n\t{tod_full(when)}\n"
