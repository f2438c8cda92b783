"""Building an ARC set (RFC 8617) for a message going out: what the smtp transport's
``arc_sign`` option asks for, as Exim 4.96's experimental ARC support describes it.

``arc_sign = <admd-identifier> : <selector> : <privkey> [ : <options> ]`` (already
expanded) is parsed by :func:`parse_spec`; :func:`arc_set` then makes the three fields
of the next instance, to go in front of the message:

* ARC-Authentication-Results: ``i=N; <admd-identifier>;`` followed by the results of
  the textually first Authentication-Results: field whose authserv-id is the
  identifier (there must be one: without it nothing is signed);
* ARC-Message-Signature: like a DKIM signature (rsa-sha256, relaxed/relaxed) over the
  body and every present DKIM-Signature and RFC 4871 header field, bottom-up;
* ARC-Seal: over every ARC field of the chain, instance by instance (AAR, AMS, AS),
  ending with itself without its signature; only over the new set when the chain
  validation status (``arc=`` in that Authentication-Results:) is "fail".

The instance is one more than the highest already on the message.  Options:
``timestamps`` adds t= to the AMS and the seal; ``expire`` adds x= to the AMS: a plain
number as it is, ``+N`` that many seconds from now, nothing a month from now.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

import dkim
from dkim.canonicalization import CanonicalizationPolicy, Relaxed

from pymta.dkim.sign import (
    DEFAULT_SIGN_HEADERS,
    SigningKey,
    fold_b,
    fold_tags,
    signed_header_names,
)
from pymta.expand.lists import split_list

#: RFC 8617 5.1.1.1: at most 50 ARC sets.
MAX_INSTANCE = 50
#: x= when "expire" has no value (or "+" with none): a month from now.
DEFAULT_EXPIRE_DELTA = 30 * 24 * 60 * 60

_ID = re.compile(r"[A-Za-z0-9.-]+")
_INSTANCE = re.compile(rb"(?:^|[\s;])i\s*=\s*(\d+)\s*(?:;|$)", re.IGNORECASE)
_ARC_FIELDS = (b"arc-authentication-results", b"arc-message-signature", b"arc-seal")
_AMS_NAMES = ["=DKIM-Signature"] + ["=" + n for n in DEFAULT_SIGN_HEADERS.split(":")]
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


class ArcSignError(Exception):
    """The ARC set cannot be made (bad specification or key, no A-R field, ...)."""


@dataclass(frozen=True)
class ArcSpec:
    """A parsed arc_sign value; ``key`` is still the text (a PEM key or a path)."""

    identity: str
    selector: str
    key: str
    timestamps: bool = False
    #: the expire option: "" (absent), "default", "+N" or "N"
    expire: str = ""


def parse_spec(text: str) -> ArcSpec | None:
    """The expanded arc_sign value; None when it is empty (do not sign)."""
    if not text.strip():
        return None
    items = [i.strip() for i in split_list(text)]
    items += [""] * (3 - len(items))
    identity, selector, key = items[0], items[1], items[2]
    for what, value in (("identity", identity), ("selector", selector), ("privkey", key)):
        if not value:
            raise ArcSignError(f"bad signing-specification ({what})")
    for what, value in (("identity", identity), ("selector", selector)):
        if not _ID.fullmatch(value):
            raise ArcSignError(f"bad signing-specification ({what})")
    timestamps, expire = False, ""
    for opt in (o.strip() for o in (items[3] if len(items) > 3 else "").split(",")):
        if opt == "timestamps":
            timestamps = True
        elif opt == "expire":
            expire = "default"
        elif opt.startswith("expire="):
            expire = opt[len("expire="):].strip() or "default"
        elif opt:
            raise ArcSignError(f'bad signing-specification (unknown option "{opt}")')
    return ArcSpec(identity, selector, key, timestamps, expire)


def expiry(spec: ArcSpec, now: int) -> int | None:
    """x= for the AMS, or None."""
    if not spec.expire:
        return None
    value = spec.expire
    if value == "default":
        return now + DEFAULT_EXPIRE_DELTA
    try:
        if value.startswith("+"):
            return now + (int(value[1:]) or DEFAULT_EXPIRE_DELTA)
        return int(value)
    except ValueError:
        raise ArcSignError(f'bad expire value "{value}"') from None


def find_ar(headers: list[tuple[bytes, bytes]], identity: str) -> bytes | None:
    """The results of the first Authentication-Results: field for ``identity`` (what
    follows "identity;"), or None."""
    ident = identity.lower().encode()
    for name, value in headers:
        if name.lower() != b"authentication-results":
            continue
        v = value.lstrip(b" \t\r\n")
        if not v.lower().startswith(ident):
            continue
        rest = v[len(ident):]
        if rest[:1] not in (b";", b" ", b"\t", b"\r", b"\n"):
            continue
        # an authserv-id may carry a version ("example.org 1;")
        rest = rest.split(b";", 1)[1] if b";" in rest else b""
        rest = rest.lstrip(b" \t\r\n")
        if rest.strip():
            return rest
    return None


def chain_status(results: bytes) -> str:
    """cv= for the seal: the arc= result in the Authentication-Results, else none."""
    m = re.search(rb"(?:^|;)\s*arc\s*=\s*([A-Za-z]+)", results)
    return m.group(1).decode().lower() if m else "none"


def arc_set(header_block: bytes, body_hash: bytes, spec: ArcSpec, key: SigningKey,
            now: int) -> bytes:
    """The ARC set (seal, message signature, authentication results; LF line ends)
    for a message whose header section is ``header_block`` (LF line ends, DKIM
    signatures already in front) and whose relaxed SHA-256 body hash is
    ``body_hash``."""
    if key.kind != "rsa":
        raise ArcSignError("ARC signing needs an RSA key")
    try:
        headers, _ = dkim.rfc822_parse(header_block)
    except dkim.MessageFormatError as e:
        raise ArcSignError(f"header not signable: {e}") from None
    pairs = [(h[0], h[1]) for h in headers]
    results = find_ar(pairs, spec.identity)
    if results is None:
        raise ArcSignError("no Authentication-Results header for signing")
    chain = _chain(pairs)
    instance = max(chain, default=0) + 1
    if instance > MAX_INSTANCE:
        raise ArcSignError(f"the chain already has {instance - 1} sets (at most "
                           f"{MAX_INSTANCE})")
    cv = chain_status(results)
    stamp = [("t", str(now))] if spec.timestamps else []
    expire = expiry(spec, now)

    aar = (f"ARC-Authentication-Results: i={instance}; {spec.identity};\n\t".encode()
           + results.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n")

    names = signed_header_names(pairs, _AMS_NAMES)
    tags = [("i", str(instance)), ("a", "rsa-sha256"), ("c", "relaxed/relaxed"),
            ("d", spec.identity), ("s", spec.selector), *stamp]
    if expire is not None:
        tags.append(("x", str(expire)))
    tags += [("bh", base64.b64encode(body_hash).decode()), ("h", ":".join(names))]
    ams_unsigned = fold_tags(tags, "ARC-Message-Signature") + "b="
    hasher = hashlib.sha256()
    dkim.hash_headers(hasher, _RELAXED, _RELAXED.canonicalize_headers(pairs),
                      [n.lower().encode() for n in names],
                      (b"ARC-Message-Signature", _value(ams_unsigned)), {})
    ams = _signed(ams_unsigned, key.sign(hasher.digest(), "sha256"))

    seal_unsigned = fold_tags([
        ("i", str(instance)), ("cv", cv), ("a", "rsa-sha256"), ("d", spec.identity),
        ("s", spec.selector), *stamp], "ARC-Seal") + "b="
    covered: list[tuple[bytes, bytes]] = []
    if cv != "fail":
        for i in sorted(chain):
            covered += chain[i]
    covered += [_pair(aar), _pair(ams)]
    hasher = hashlib.sha256()
    for name, value in Relaxed.canonicalize_headers(covered):
        hasher.update(name + b":" + value)
    (name, value), = Relaxed.canonicalize_headers([(b"ARC-Seal", _value(seal_unsigned))])
    hasher.update(name + b":" + value.rstrip(b"\r\n"))
    seal = _signed(seal_unsigned, key.sign(hasher.digest(), "sha256"))
    return seal + ams + aar


def _chain(pairs: list[tuple[bytes, bytes]]) -> dict[int, list[tuple[bytes, bytes]]]:
    """The ARC fields already on the message by instance, each as AAR, AMS, AS."""
    by: dict[int, dict[bytes, tuple[bytes, bytes]]] = {}
    for name, value in pairs:
        low = name.lower()
        if low not in _ARC_FIELDS:
            continue
        m = _INSTANCE.search(value)
        if m is not None:
            by.setdefault(int(m.group(1)), {}).setdefault(low, (name, value))
    return {i: [f[k] for k in _ARC_FIELDS if k in f] for i, f in by.items()}


def _pair(field: bytes) -> tuple[bytes, bytes]:
    name, _, value = field.partition(b":")
    return name, value


def _value(unsigned: str) -> bytes:
    """The field's value as hashed: "b=" empty, CRLF line ends."""
    return (unsigned.split(":", 1)[1]).encode().replace(b"\n", b"\r\n")


def _signed(unsigned: str, signature: bytes) -> bytes:
    b64 = base64.b64encode(signature).decode()
    return (unsigned + fold_b(b64, 3) + "\n").encode()
