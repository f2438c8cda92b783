"""Computing DKIM-Signature header fields (RFC 6376; Ed25519 keys as in RFC 8463).

This module knows nothing about transports or configuration: it turns a header block, a
body hash and the signing parameters into a DKIM-Signature field, the way Exim 4.96 does.

The work is split so that a message is never held in memory:

* :class:`BodyHasher` canonicalises the body ("simple" or "relaxed") and hashes it
  incrementally, fed chunk by chunk while the spool -D file is read once;
* :func:`signature_field` selects and canonicalises the signed header fields and hashes
  them with dkimpy (``dkim.rfc822_parse``, ``dkim.canonicalization``,
  ``dkim.hash_headers``), then signs the digest.

dkimpy's own ``DKIM.sign`` takes the whole message as one byte string and computes the
body hash itself, so it is not used; its header selection, canonicalisation and hashing
are.  The private-key operation is done by ``cryptography`` (OpenSSL), which also reads
the PEM keys: dkimpy's pure-Python RSA takes about 6 ms per 2048-bit signature against
0.3 ms, which alone would cost a relay a third of its throughput.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError

from pymta.config.dkim_macros import DKIM_SIGN_HEADERS

#: Exim's default dkim_sign_headers (its _DKIM_SIGN_HEADERS macro): RFC 4871's list.
DEFAULT_SIGN_HEADERS = DKIM_SIGN_HEADERS

#: The hash methods dkim_hash accepts.
HASHES: dict[str, Callable[[], "hashlib._Hash"]] = {
    "sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_CRYPTO_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha512": hashes.SHA512()}
CANONS = ("simple", "relaxed")

_WSP_RUN = re.compile(rb"[ \t]+")
_LINE_WIDTH = 78            # Exim folds its signature lines at about this column


class DkimSignError(Exception):
    """Signing could not be done (bad key, unknown hash or canonicalisation, ...)."""


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SigningKey:
    """A private key read from PEM: ``kind`` is "rsa" or "ed25519"."""

    kind: str
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    def sign(self, digest: bytes, hash_name: str) -> bytes:
        """The signature over ``digest`` (the header hash) as DKIM defines it: RSASSA
        PKCS#1 v1.5 of the digest for RSA, pure Ed25519 of the digest (RFC 8463)."""
        try:
            if isinstance(self.key, rsa.RSAPrivateKey):
                return self.key.sign(digest, padding.PKCS1v15(),
                                     utils.Prehashed(_CRYPTO_HASHES[hash_name]))
            return self.key.sign(digest)
        except ValueError as e:     # e.g. an RSA key too short for the digest
            raise DkimSignError(f"cannot sign: {_first_line(e)}") from None


def load_private_key(pem: bytes) -> SigningKey:
    """An RSA or Ed25519 private key from PEM text (PKCS#1 or PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise DkimSignError(f"private key not usable: {_first_line(e)}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return SigningKey("rsa", key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return SigningKey("ed25519", key)
    raise DkimSignError(f"private key not usable: {type(key).__name__} keys cannot sign DKIM")


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


# ---------------------------------------------------------------------------------------
# Body
# ---------------------------------------------------------------------------------------
class BodyHasher:
    """Incremental body canonicalisation and hash (RFC 6376 3.4.3 and 3.4.4).

    Fed the body as spooled (LF line ends; the transport sends each LF as CRLF), chunks
    split anywhere.  Only complete lines are canonicalised; empty lines are counted, not
    hashed, until a non-empty line follows, since empty lines at the end do not count.
    A last line without LF is taken as complete, as the transport ends it before the
    terminating dot.
    """

    def __init__(self, canon: str, hash_name: str):
        if canon not in CANONS:
            raise DkimSignError(f'unknown canonicalization "{canon}"')
        if hash_name not in HASHES:
            raise DkimSignError(f'unknown hash "{hash_name}"')
        self.relaxed = canon == "relaxed"
        self._hash = HASHES[hash_name]()
        self._partial: list[bytes] = []
        self._blank = 0             # empty lines waiting for a non-empty one
        self._any = False           # a non-empty line has been hashed

    def update(self, chunk: bytes) -> None:
        nl = chunk.rfind(b"\n")
        if nl < 0:
            if chunk:
                self._partial.append(chunk)
            return
        if self._partial:
            self._partial.append(chunk[:nl + 1])
            lines = b"".join(self._partial)
            self._partial = []
        else:
            lines = chunk[:nl + 1]
        if nl + 1 < len(chunk):
            self._partial.append(chunk[nl + 1:])
        self._lines(lines)

    def _lines(self, lines: bytes) -> None:
        """Complete lines, each ending with LF."""
        if self.relaxed:
            lines = _WSP_RUN.sub(b" ", lines).replace(b" \n", b"\n")
        text = lines.rstrip(b"\n")
        trailing = len(lines) - len(text)
        if not text:
            self._blank += trailing
            return
        self._hash.update(b"\r\n" * self._blank)
        self._hash.update(text.replace(b"\n", b"\r\n") + b"\r\n")
        self._blank = trailing - 1
        self._any = True

    def digest(self) -> bytes:
        """The body hash (call once, after the last chunk)."""
        if self._partial:
            last = b"".join(self._partial)
            self._partial = []
            self._lines(last + b"\n")
        if not self._any and not self.relaxed:
            # "simple": an empty body is one CRLF; "relaxed": it is empty.
            self._hash.update(b"\r\n")
        return self._hash.digest()


# ---------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def parse_sign_headers(text: str) -> tuple[str, ...]:
    """dkim_sign_headers after expansion: a colon list of names, each optionally with
    Exim's "=" (every instance present) or "+" (every instance, plus one more so
    that none can be added) prefix."""
    items = [i.strip() for i in text.split(":")]
    out = tuple(i for i in items if i)
    for i in out:
        name = i[1:] if i[:1] in "=+" else i
        if not name or not re.fullmatch(r"[\x21-\x39\x3b-\x7e]+", name):
            raise DkimSignError(f'bad header name "{i}" in dkim_sign_headers')
    return out


def signed_header_names(headers: list[tuple[bytes, bytes]],
                        sign_list: tuple[str, ...] | list[str]) -> list[str]:
    """The h= list as Exim 4.96 builds it.

    The header fields are walked from the last to the first; a field is signed when its
    name is in ``sign_list`` under a plain entry not yet used (each plain entry signs one
    instance) or under a "=" or "+" entry (these sign every instance).  Then, in list
    order, each unused plain entry and each "+" entry adds its name once more: signing
    an absent instance stops one from being added.  Verifiers pick instances from the
    bottom up, which is the order they were signed in.
    """
    entries = [(i[:1] if i[:1] in "=+" else "", i.lstrip("=+")) for i in sign_list]
    used = [False] * len(entries)
    names: list[str] = []
    for raw_name, _value in reversed(headers):
        name = raw_name.decode("ascii", "replace")
        low = name.lower()
        for n, (prefix, entry) in enumerate(entries):
            if entry.lower() != low:
                continue
            if prefix:
                names.append(name)
                break
            if not used[n]:
                used[n] = True
                names.append(name)
                break
    for n, (prefix, entry) in enumerate(entries):
        if prefix == "+" or (not prefix and not used[n]):
            names.append(entry)
    return names


@dataclass(frozen=True)
class SignatureRequest:
    """Everything one DKIM-Signature depends on besides the message."""

    domain: str
    selector: str
    key: SigningKey
    canon: str = "relaxed"
    hash_name: str = "sha256"
    sign_headers: tuple[str, ...] = ()
    identity: str = ""
    #: (t=, x=) when dkim_timestamps is set
    timestamps: tuple[int, int] | None = None


def signature_field(header_block: bytes, body_hash: bytes, req: SignatureRequest) -> bytes:
    """The DKIM-Signature field (LF line ends, folded, ending with LF) for a message
    whose header section is ``header_block`` (LF line ends, blank line included) and
    whose canonical body hashes to ``body_hash``."""
    if req.hash_name not in HASHES:
        raise DkimSignError(f'unknown hash "{req.hash_name}"')
    if req.key.kind == "ed25519" and req.hash_name != "sha256":
        raise DkimSignError(f"{req.hash_name} cannot be used with an Ed25519 key")
    try:
        policy = CanonicalizationPolicy.from_c_value(f"{req.canon}/{req.canon}".encode())
    except InvalidCanonicalizationPolicyError:
        raise DkimSignError(f'unknown canonicalization "{req.canon}"') from None
    try:
        headers, _ = dkim.rfc822_parse(header_block)
    except dkim.MessageFormatError as e:
        raise DkimSignError(f"header not signable: {_first_line(e)}") from None
    names = signed_header_names([(h[0], h[1]) for h in headers], req.sign_headers)
    tags = [("v", "1"), ("a", f"{req.key.kind}-{req.hash_name}"), ("q", "dns/txt"),
            ("c", f"{req.canon}/{req.canon}"), ("d", req.domain), ("s", req.selector),
            ("h", ":".join(names)), ("bh", base64.b64encode(body_hash).decode())]
    if req.identity:
        tags.append(("i", req.identity))
    if req.timestamps:
        tags += [("t", str(req.timestamps[0])), ("x", str(req.timestamps[1]))]
    unsigned = fold_tags(tags) + "b="
    hasher = HASHES[req.hash_name]()
    # Hashed as sent with an empty b= value: the ";" after it stays.
    value = (unsigned[len("DKIM-Signature:"):] + ";").encode().replace(b"\n", b"\r\n")
    dkim.hash_headers(hasher, policy, policy.canonicalize_headers(headers),
                      [n.lower().encode() for n in names], (b"DKIM-Signature", value), {})
    signature = base64.b64encode(req.key.sign(hasher.digest(), req.hash_name)).decode()
    return (unsigned + fold_b(signature, len(unsigned) - unsigned.rfind("\n") - 1)
            + ";\n").encode()


def fold_tags(tags: list[tuple[str, str]], name: str = "DKIM-Signature") -> str:
    """``Name: tag=value; ...`` (DKIM-Signature, or an ARC field) folded with LF-TAB
    before a tag that would pass the line width; a long h= list breaks before a
    colon.  Ends ready for "b=" on a line of its own, as Exim writes it."""
    out = name + ":"
    col = len(out)
    for name, val in tags:
        item = f"{name}={val};"
        if col + 1 + len(item) > _LINE_WIDTH and col > 1:
            out, col = out + "\n\t", 1
        else:
            out, col = out + " ", col + 1
        if len(item) <= _LINE_WIDTH - col or name != "h":
            out, col = out + item, col + len(item)
            continue
        # A long h= list: break before a colon.
        first, *rest = item.split(":")
        out, col = out + first, col + len(first)
        for part in rest:
            piece = ":" + part
            if col + len(piece) > _LINE_WIDTH:
                out, col = out + "\n\t", 1
            out, col = out + piece, col + len(piece)
    return out + "\n\t"


def fold_b(signature: str, col: int) -> str:
    """The b= value broken into lines that fit (folding white space inside b= is
    ignored by verifiers)."""
    room = _LINE_WIDTH - col
    parts = [signature[:room]]
    rest = signature[room:]
    while rest:
        parts.append(rest[:_LINE_WIDTH - 1])
        rest = rest[_LINE_WIDTH - 1:]
    return "\n\t".join(parts)
