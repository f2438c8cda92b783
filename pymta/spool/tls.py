"""The ``-tls_*`` lines of a -H file: what a message's TLS session was, as Exim 4.96
writes it, and the ``$tls_in_*`` variables a delivery reads back from it.

Certificates are PEM text with their newlines written as a backslash and ``n``; what
the client sent (its certificate, DN and SNI) stays tainted (Exim's ``--`` lines).
"""
from __future__ import annotations

from pymta.taint import Tainted, taint

# -tls_* names whose values are free text (certificates with their newlines escaped).
_TEXT = ("peercert", "peerdn", "sni", "ourcert")


def tls_spool_values(cipher: str, version: str | None, resumption: int,
                     text: dict[str, str | None]) -> dict[str, str]:
    """The -tls_* values to write: ``text`` maps peercert/peerdn/sni/ourcert to their
    value (None or "": not written); ``resumption`` is the $tls_in_resumption bits."""
    out: dict[str, str] = {"tls_cipher": cipher}
    for name in _TEXT:
        value = text.get(name)
        if value:
            escaped = value.replace("\n", "\\n")
            out[f"tls_{name}"] = Tainted(escaped) if isinstance(value, Tainted) else escaped
    out["tls_resumption"] = chr(ord("A") + resumption)
    if version:
        out["tls_ver"] = version
    return out


def tls_in_variables(spooled: dict[str, str], flags: set[str]) -> dict[str, str]:
    """$tls_in_* (and the deprecated $tls_cipher, ...) of a message as its -H file kept
    them; empty when it did not arrive over TLS."""
    cipher = spooled.get("tls_cipher", "")
    if not cipher:
        return {}
    verified = "1" if "tls_certificate_verified" in flags else "0"
    out = {"tls_in_cipher": cipher, "tls_cipher": cipher,
           "tls_in_ver": spooled.get("tls_ver", ""),
           "tls_in_certificate_verified": verified, "tls_certificate_verified": verified}
    for name in _TEXT:
        value = spooled.get(f"tls_{name}")
        if value:
            text = value.replace("\\n", "\n")
            out[f"tls_in_{name}"] = taint(text) if isinstance(value, Tainted) else text
    for name in ("peerdn", "sni"):
        if f"tls_in_{name}" in out:
            out[f"tls_{name}"] = out[f"tls_in_{name}"]
    return out
