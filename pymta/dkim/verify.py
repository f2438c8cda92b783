"""Verification of the DKIM signatures of a received message (RFC 6376, RFC 8301,
RFC 8463), with Exim 4.96's outcomes.

:func:`verify_message` takes the header block and the body (in pieces) of a message as
it was received and returns one :class:`Signature` per DKIM-Signature header that
names a domain, a selector and an algorithm the options allow, in Exim's order of
processing (by ``dkim_verify_keytypes``, then ``dkim_verify_hashes``, then position).
Each has a status (``pass``, ``fail``, ``invalid``, or ``none`` when it was not
verified) and a :class:`Detail` saying why; nothing a message or the DNS holds makes it
raise.  dkimpy does the tag-list parsing, the header canonicalization and the RSA
arithmetic; PyNaCl checks Ed25519; the body hash is computed here in one pass for all
signatures (:mod:`pymta.dkim.verify_body`).
"""
from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

import nacl.exceptions
import nacl.signing
from dkim import hash_headers
from dkim.canonicalization import CanonicalizationPolicy
from dkim.crypto import DigestTooLargeError, RSASSA_PKCS1_v1_5_verify
from dkim.util import InvalidTagValueList, parse_tag_value

from pymta.dkim.verify_body import BodyHasher, hash_body
from pymta.dkim.verify_key import (
    KeyProblem,
    KeyRecord,
    KeyRecordError,
    TxtLookup,
    fetch_key,
    txt_lookup,
)

#: The signature algorithms DKIM defines: a= value -> (key type, hash).
ALGORITHMS = {"rsa-sha1": ("rsa", "sha1"), "rsa-sha256": ("rsa", "sha256"),
              "ed25519-sha256": ("ed25519", "sha256")}
#: More signatures than this in one message are not looked at (each costs a DNS query).
MAX_SIGNATURES = 32
#: $dkim_bodylength / $dkim_expires when the signature sets no limit (as Exim).
UNLIMITED = 9999999999999


class Detail(enum.Enum):
    """Why a signature has its status (Exim's finer classes)."""

    NONE = enum.auto()
    PUBKEY_UNAVAILABLE = enum.auto()     # invalid
    PUBKEY_DNS_SYNTAX = enum.auto()      # invalid
    PUBKEY_DER_SYNTAX = enum.auto()      # invalid
    PUBKEY_OVERLONG = enum.auto()        # invalid
    SIGNATURE_SYNTAX = enum.auto()       # invalid: a tag missing or malformed
    VERSION = enum.auto()                # invalid: v= is not 1
    BODY = enum.auto()                   # fail: body hash mismatch
    MESSAGE = enum.auto()                # fail: the signature does not verify
    KEYSIZE = enum.auto()                # fail: key shorter than dkim_verify_min_keysizes
    UNSPECIFIED = enum.auto()            # fail: e.g. the key's h= excludes the hash

    @property
    def key_import(self) -> bool:
        """The key record could not be used (Exim logs "failed key import")."""
        return self in _KEY_PROBLEMS.values()


_KEY_PROBLEMS = {KeyProblem.UNAVAILABLE: Detail.PUBKEY_UNAVAILABLE,
                 KeyProblem.DNS_SYNTAX: Detail.PUBKEY_DNS_SYNTAX,
                 KeyProblem.DER_SYNTAX: Detail.PUBKEY_DER_SYNTAX,
                 KeyProblem.OVERLONG: Detail.PUBKEY_OVERLONG}


@dataclass(frozen=True)
class VerifyOptions:
    """The main options dkim_verify_hashes, _keytypes, _min_keysizes and _minimal."""

    hashes: tuple[str, ...] = ("sha256", "sha512")
    keytypes: tuple[str, ...] = ("ed25519", "rsa")
    min_keysizes: tuple[tuple[str, int], ...] = (("rsa", 1024), ("ed25519", 250))
    minimal: bool = False

    def min_bits(self, keytype: str) -> int:
        return dict(self.min_keysizes).get(keytype, 0)


@dataclass
class Signature:
    """One DKIM-Signature header and what verifying it found."""

    position: int                        # among the DKIM-Signature headers, top = 0
    header: tuple[bytes, bytes]          # name and raw value (CRLF line ends)
    domain: str
    selector: str
    algo: str
    keytype: str
    hash_name: str
    identity: str = ""
    canon_headers: str = "simple"
    canon_body: str = "simple"
    headernames: list[str] = field(default_factory=list)
    bodylength: int | None = None
    created: int = 0
    expires: int = 0
    copiedheaders: str = ""
    body_hash: bytes | None = None
    signature: bytes = b""
    status: str = "none"
    detail: Detail = Detail.NONE
    key: KeyRecord | None = None
    key_bits: int = 0                    # known once the key was read (even if refused)

    @property
    def body_key(self) -> tuple[str, str, int | None]:
        return self.canon_body, self.hash_name, self.bodylength

    def set(self, status: str, detail: Detail = Detail.NONE) -> None:
        self.status, self.detail = status, detail


def verify_message(head: bytes, body: Iterable[bytes], options: VerifyOptions,
                   lookup: TxtLookup = txt_lookup,
                   key_failed: Callable[[Signature], None] | None = None) -> list[Signature]:
    """Verify every acceptable signature of a message (``head``: the header block with
    LF or CRLF line ends; ``body``: the body in pieces).  ``key_failed`` is told of each
    signature whose key record could not be used, when that happens."""
    headers = parse_header_block(head)
    sigs = [s for s in (_parse_signature(i, h) for i, h in enumerate(
        h for h in headers if h[0].lower() == b"dkim-signature")) if s is not None]
    sigs = [s for s in sigs if s.keytype in options.keytypes
            and s.hash_name in options.hashes][:MAX_SIGNATURES]
    sigs.sort(key=lambda s: (options.keytypes.index(s.keytype),
                             options.hashes.index(s.hash_name), s.position))
    hashers = {s.body_key: BodyHasher(*s.body_key) for s in sigs
               if s.status == "none" and s.body_hash is not None}
    hash_body(body, hashers.values())
    body_hashes = {k: h.digest() for k, h in hashers.items()}
    keys: dict[tuple[str, str, str], KeyRecord | KeyRecordError] = {}
    passed = False
    for sig in sigs:
        if sig.status != "none":
            continue                      # found invalid while parsing
        if passed and options.minimal:
            continue                      # dkim_verify_minimal: left "none"
        try:
            _verify_one(sig, headers, body_hashes[sig.body_key], options, lookup, keys)
        except Exception:                 # a bug must not lose the message
            sig.set("invalid", Detail.UNSPECIFIED)
        if sig.detail.key_import and key_failed is not None:
            key_failed(sig)
        passed = passed or sig.status == "pass"
    return sigs


def parse_header_block(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header line, the value with its CRLF line ends; lines that
    are no header (a "From " line, junk) are left out."""
    out: list[list[bytes]] = []
    for line in re.split(rb"\r?\n", head):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if out:
                out[-1][1] += line + b"\r\n"
            continue
        m = re.match(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:", line)
        if m is None:
            continue
        out.append([m.group(1), line[m.end():] + b"\r\n"])
    return [(n, v) for n, v in out]


def _parse_signature(position: int, header: tuple[bytes, bytes]) -> Signature | None:
    """A Signature for a DKIM-Signature header, or None when it does not even name a
    known algorithm (Exim ignores those).  One without a domain or selector is kept,
    as invalid (Exim lists it, with its identity, and logs "<UNSET>")."""
    try:
        tags = parse_tag_value(header[1])
    except (InvalidTagValueList, ValueError, IndexError):
        return None
    try:
        text = {k.decode("ascii"): v.decode("ascii") for k, v in tags.items()}
    except UnicodeDecodeError:
        return None
    domain = _nows(text.get("d", "")).lower()
    selector = _nows(text.get("s", ""))
    algo = _nows(text.get("a", "")).lower()
    if algo not in ALGORITHMS:
        return None
    keytype, hash_name = ALGORITHMS[algo]
    sig = Signature(position, header, domain, selector, algo, keytype, hash_name,
                    identity=_nows(text.get("i", "")))
    sig.copiedheaders = _nows(text.get("z", ""))
    sig.headernames = [h for h in _nows(text.get("h", "")).split(":") if h]
    if _nows(text.get("v", "")) != "1":
        sig.set("invalid", Detail.VERSION)
    elif not domain or not selector:
        sig.set("invalid", Detail.SIGNATURE_SYNTAX)
    try:
        _read_tags(sig, text)
    except ValueError:
        if sig.status == "none":
            sig.set("invalid", Detail.SIGNATURE_SYNTAX)
    return sig


def _read_tags(sig: Signature, text: dict[str, str]) -> None:
    """The rest of the tags; ValueError for a missing or malformed one."""
    canon = _nows(text.get("c", "simple/simple")).lower()
    head, _, body = canon.partition("/")
    if head not in ("simple", "relaxed") or body not in ("", "simple", "relaxed"):
        raise ValueError("c=")
    sig.canon_headers, sig.canon_body = head, body or "simple"
    for name in ("t", "x", "l"):
        value = _nows(text.get(name, ""))
        if value and not value.isdigit():
            raise ValueError(f"{name}=")
    sig.created = int(_nows(text.get("t", "")) or 0)
    sig.expires = int(_nows(text.get("x", "")) or 0)
    if "l" in text:
        sig.bodylength = int(_nows(text["l"]))
    sig.signature = _base64(text.get("b"))
    sig.body_hash = _base64(text.get("bh"))
    if not sig.signature or not sig.body_hash or not sig.headernames:
        raise ValueError("b=, bh= or h=")
    if "q" in text and not _nows(text["q"]).lower().startswith("dns/txt"):
        raise ValueError("q=")
    # As Exim, an i= outside d= is not refused here: the signature is verified.


def _verify_one(sig: Signature, headers: list[tuple[bytes, bytes]], body_hash: bytes,
                options: VerifyOptions, lookup: TxtLookup,
                keys: dict[tuple[str, str, str], KeyRecord | KeyRecordError]) -> None:
    if body_hash != sig.body_hash:
        sig.set("fail", Detail.BODY)
        return
    where = (sig.selector, sig.domain, sig.keytype)
    if where not in keys:
        try:
            keys[where] = fetch_key(sig.selector, sig.domain, sig.keytype, lookup)
        except KeyRecordError as exc:
            keys[where] = exc
    key = keys[where]
    if isinstance(key, KeyRecordError):
        sig.set("invalid", _KEY_PROBLEMS[key.problem])
        return
    sig.key, sig.key_bits = key, key.bits
    if key.hashes and sig.hash_name not in key.hashes:
        sig.set("fail", Detail.UNSPECIFIED)
        return
    if key.bits < options.min_bits(sig.keytype):
        sig.key = None                   # as Exim: the key record's flags stay unshown
        sig.set("fail", Detail.KEYSIZE)
        return
    if _signature_ok(sig, headers, key):
        sig.set("pass")
    else:
        sig.set("fail", Detail.MESSAGE)


def _signature_ok(sig: Signature, headers: list[tuple[bytes, bytes]],
                  key: KeyRecord) -> bool:
    """Whether b= signs the selected headers and this signature header."""
    policy = CanonicalizationPolicy.from_c_value(
        f"{sig.canon_headers}/{sig.canon_body}".encode())
    hasher = hashlib.new(sig.hash_name)
    include = [h.lower().encode("ascii") for h in sig.headernames]
    canonical = policy.canonicalize_headers([[n, v] for n, v in headers])
    hash_headers(hasher, policy, canonical, include, sig.header, {})
    if sig.keytype == "ed25519":
        try:
            nacl.signing.VerifyKey(bytes(key.key)).verify(  # type: ignore[call-overload]
                hasher.digest(), sig.signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
                nacl.exceptions.TypeError, ValueError):
            return False
        return True
    try:
        return bool(RSASSA_PKCS1_v1_5_verify(hasher, sig.signature, key.key))
    except (DigestTooLargeError, TypeError, ValueError):
        return False


def _nows(value: str) -> str:
    return re.sub(r"\s+", "", value)


def _base64(value: str | None) -> bytes:
    if not value:
        return b""
    try:
        return base64.b64decode(_nows(value), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("base64") from None


