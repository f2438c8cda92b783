"""ARC signing in the smtp transport (the ``arc_sign`` option of Exim 4.96's
experimental ARC support).

:class:`ArcSigning` is asked by :class:`pymta.transports.dkim_sign.DkimSigning` for
the ARC set to put in front of the message, above any DKIM-Signature fields (which
the ARC-Message-Signature covers), as Exim does.  The body hash (relaxed, SHA-256)
comes from the same pass over the -D file as the DKIM body hashes.

An unset option, an empty expansion or a forced failure means "do not sign".  Any
other expansion failure defers the delivery ("failed to expand arc_sign", as Exim).
A specification or key that cannot be used, or a message without an
Authentication-Results: field for the ADMD, is logged (``ARC: ...``) and the message
goes out without an ARC set.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from pymta.arc.sign import ArcSignError, arc_set, parse_spec
from pymta.clock import now
from pymta.dkim.sign import DkimSignError, SigningKey
from pymta.errnos import EximErrno
from pymta.expand import ExpandFail
from pymta.taint import is_tainted, taint
from pymta.transports.base import TransportError, expand

#: The body hash an ARC-Message-Signature needs: (canonicalization, hash).
ARC_BODY = ("relaxed", "sha256")


class TransportOptions(Protocol):
    """The part of a transport ARC signing needs."""

    def opt(self, name: str) -> Any: ...


class ArcSigning:
    """The ARC set of one delivery by one transport."""

    def __init__(self, transport: TransportOptions, ctx: Any,
                 load_key: Callable[[str, str], SigningKey], log: Callable[[str], None]):
        self.transport = transport
        self.ctx = ctx
        self._load_key = load_key
        self._log = log

    def configured(self) -> bool:
        """Whether arc_sign is set at all (before expansion: cutthrough is then off)."""
        return bool(self.transport.opt("arc_sign"))

    def fields(self, header_block: bytes, body_hash: Callable[[], bytes]) -> bytes:
        """The ARC set for a message whose header section (DKIM signatures included)
        is ``header_block``; b"" when not signing or when signing failed."""
        text = self.transport.opt("arc_sign")
        if not text:
            return b""
        try:
            value = expand(str(text), self.ctx)
        except ExpandFail:
            return b""
        except Exception as e:  # noqa: BLE001 - every expansion error defers, as Exim
            raise TransportError(f"failed to expand arc_sign: {e}", "defer",
                                 EximErrno.UNKNOWNERROR) from None
        try:
            spec = parse_spec(value)
            if spec is None:
                return b""
            key_text = taint(spec.key) if is_tainted(value) else spec.key
            key = self._load_key(key_text, "arc_sign")
            return arc_set(header_block, body_hash(), spec, key, int(now()))
        except (ArcSignError, DkimSignError) as e:
            self._log(f"ARC: {e}")
            return b""
