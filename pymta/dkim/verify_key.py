"""DKIM public key records (RFC 6376 3.6.1) for verification: fetched from
``<selector>._domainkey.<domain>`` TXT through pymta's resolver and parsed with dkimpy's
tag-list and key parsers.

Every failure is a :class:`KeyProblem` naming the class Exim reports for it: the record
cannot be had (no such name, SERVFAIL, timeout: ``pubkey_unavailable``), it is not a
usable DKIM key record (``pubkey_dns_syntax``), or its ``p=`` does not hold a key
(``pubkey_der_syntax``).  Nothing from the record is trusted beyond this parse.
"""
from __future__ import annotations

import base64
import binascii
import enum
import re
from dataclasses import dataclass
from typing import Callable

import dns.exception
import dns.resolver
from dkim.crypto import UnparsableKeyError, parse_public_key
from dkim.util import InvalidTagValueList, parse_tag_value

from pymta import dns as pymta_dns

#: A TXT record longer than this is refused ("overlong public key record"): an RSA key
#: of 16384 bits takes under 3 KB, so this leaves room for any honest record (Exim 4.96
#: takes a 9 KB record).
MAX_RECORD = 16384
#: RSA keys beyond these bounds are refused as unusable: they would only cost CPU time.
MAX_RSA_BITS = 16384
MAX_RSA_EXPONENT_BITS = 64


class KeyProblem(enum.Enum):
    """Why no key could be used (Exim's classes of key failure)."""

    UNAVAILABLE = "pubkey_unavailable"
    DNS_SYNTAX = "pubkey_dns_syntax"
    DER_SYNTAX = "pubkey_der_syntax"
    OVERLONG = ""                     # Exim gives no $dkim_verify_reason for this one


class KeyRecordError(Exception):
    """A key record could not be used; ``problem`` says why."""

    def __init__(self, problem: KeyProblem, detail: str = ""):
        super().__init__(detail or problem.name)
        self.problem = problem


@dataclass(frozen=True)
class KeyRecord:
    """A parsed DKIM key record (the parts Exim shows as ``$dkim_key_*``)."""

    keytype: str                      # "rsa" or "ed25519" (as the signature says)
    key: object                       # dkimpy's RSA key dict, or the 32 Ed25519 bytes
    bits: int
    hashes: tuple[str, ...]           # the h= list; empty: any
    testing: bool                     # t=y
    nosubdomains: bool                # t=s
    srvtype: str                      # s=, "*" when absent
    granularity: str                  # g=, "*" when absent
    notes: str                        # n=


#: Looks up the TXT record of a name: its strings joined, or None when there is none;
#: raises TemporaryDnsError when the DNS cannot answer now.  (dkimpy's dnsfunc shape.)
TxtLookup = Callable[[str], "bytes | None"]


class TemporaryDnsError(Exception):
    """The DNS did not answer (timeout, SERVFAIL)."""


def txt_lookup(name: str) -> bytes | None:
    """The first TXT record of ``name`` through :mod:`pymta.dns` (None: no record)."""
    try:
        answer = pymta_dns.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except (dns.exception.DNSException, OSError) as exc:
        raise TemporaryDnsError(str(exc) or repr(exc)) from exc
    for rdata in answer:
        return b"".join(rdata.strings)
    return None


def fetch_key(selector: str, domain: str, keytype: str,
              lookup: TxtLookup = txt_lookup) -> KeyRecord:
    """Fetch and parse the key of ``selector`` at ``domain`` for a ``keytype`` signature."""
    name = f"{selector}._domainkey.{domain}."
    try:
        record = lookup(name)
    except TemporaryDnsError as exc:
        raise KeyRecordError(KeyProblem.UNAVAILABLE, str(exc)) from exc
    if record is None:
        raise KeyRecordError(KeyProblem.UNAVAILABLE, "no key record")
    if len(record) > MAX_RECORD:
        raise KeyRecordError(KeyProblem.OVERLONG, f"{len(record)} bytes")
    return parse_key_record(record, keytype)


def parse_key_record(record: bytes, keytype: str) -> KeyRecord:
    """Parse a key record's text.  As in Exim, the key is read as the signature's
    algorithm says, whatever ``k=`` claims."""
    try:
        tags = parse_tag_value(record)
    except (InvalidTagValueList, ValueError, IndexError) as exc:
        raise KeyRecordError(KeyProblem.DNS_SYNTAX, f"tag list: {exc}") from exc
    version = tags.get(b"v")
    if version is not None and version != b"DKIM1":
        raise KeyRecordError(KeyProblem.DNS_SYNTAX, "bad version")
    if b"p" not in tags:
        raise KeyRecordError(KeyProblem.DNS_SYNTAX, "no p= tag")
    services = _words(tags.get(b"s", b"*"))
    if not {"*", "email"} & set(services):
        raise KeyRecordError(KeyProblem.DNS_SYNTAX, "not for email")
    text = re.sub(rb"\s+", b"", tags[b"p"])
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyRecordError(KeyProblem.DNS_SYNTAX, "p= is not base64") from exc
    key, bits = _import_key(der, keytype)
    flags = _words(tags.get(b"t", b""))
    return KeyRecord(
        keytype=keytype, key=key, bits=bits,
        hashes=tuple(h.lower() for h in _words(tags.get(b"h", b""))),
        testing="y" in flags, nosubdomains="s" in flags,
        srvtype=":".join(services) if b"s" in tags else "*",
        granularity=_text(tags.get(b"g", b"*")),
        notes=tags.get(b"n", b"").decode("utf-8", "replace").strip())


def _import_key(der: bytes, keytype: str) -> tuple[object, int]:
    if not der:
        raise KeyRecordError(KeyProblem.DER_SYNTAX, "empty key (revoked)")
    if keytype == "ed25519":
        if len(der) != 32:
            raise KeyRecordError(KeyProblem.DER_SYNTAX, "an Ed25519 key has 32 bytes")
        return der, 256
    try:
        key = parse_public_key(der)
    except (UnparsableKeyError, ValueError, IndexError, TypeError) as exc:
        raise KeyRecordError(KeyProblem.DER_SYNTAX, str(exc)) from exc
    modulus, exponent = key["modulus"], key["publicExponent"]
    bits = modulus.bit_length()
    if not 0 < bits <= MAX_RSA_BITS or not 1 < exponent.bit_length() <= MAX_RSA_EXPONENT_BITS:
        raise KeyRecordError(KeyProblem.DER_SYNTAX, "RSA key out of bounds")
    return key, bits


def _words(value: bytes) -> list[str]:
    return [w for w in _text(value).replace(" ", "").split(":") if w]


def _text(value: bytes) -> str:
    return re.sub(r"\s+", "", value.decode("ascii", "replace"))
