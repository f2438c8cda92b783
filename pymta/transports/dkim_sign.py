"""DKIM signing in the smtp transport (Exim's dkim_* options, spec chapter 58.2).

The transport asks :class:`DkimSigning` for the header block to send; when signing is
configured, the DKIM-Signature fields come first, one per domain and selector, in the
order the lists give them (as Exim writes them).

How the message is read: the signature needs the body hash before the header is sent,
so the body is read twice from the spool -D file, never held whole: one pass feeds
every body hash the signatures need (:class:`pymta.dkim.sign.BodyHasher`, chunk by
chunk), then the transport streams the message as usual.  Exim does the same (a first
pass over the message computes the hashes).  A later call with the same header block
(the transport rebuilds it after connecting, for ``$tls_out_*``) reuses the result; a
different one is signed again with the body hashes kept.

Failures (an expansion that fails, an unreadable or unusable key, an unknown hash or
canonicalization) are logged; the message then goes unsigned, unless dkim_strict
expands to "1" or "true", when the delivery is deferred.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator, Protocol

from pymta.clock import now
from pymta.dkim.sign import (
    DEFAULT_SIGN_HEADERS,
    BodyHasher,
    DkimSignError,
    SignatureRequest,
    SigningKey,
    load_private_key,
    parse_sign_headers,
    signature_field,
)
from pymta.errnos import EximErrno
from pymta.expand import ExpandFail
from pymta.taint import is_tainted, taint
from pymta.transports.arc_sign import ARC_BODY, ArcSigning
from pymta.transports.base import TransportError, expand, split_list
from pymta.transports.content import CHUNK, body_offset

#: A selector or domain: dot-separated labels of letters, digits and inner hyphens.
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
                   r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*")

#: What dkim_private_key may expand to for "do not sign".
_NO_KEY = ("", "0", "false")
STRICT_DEFER = "DKIM: message could not be signed, and dkim_strict is set"

# Parsed keys by PEM text: a worker signs many messages with the same few keys.
_KEYS: OrderedDict[bytes, SigningKey] = OrderedDict()
_KEYS_MAX = 32


class TransportOptions(Protocol):
    """The part of a transport the signing needs."""

    name: str

    def opt(self, name: str) -> Any: ...

    def is_set(self, name: str) -> bool: ...


class _Failure(Exception):
    """Signing failed; ``domain``/``selector`` are those being worked on."""

    def __init__(self, reason: str, domain: str = "", selector: str = ""):
        super().__init__(reason)
        self.reason, self.domain, self.selector = reason, domain, selector


def signing_configured(transport: TransportOptions) -> bool:
    """Whether the transport has signing options, DKIM or ARC (cutthrough is then not
    used: the signature needs the whole message first)."""
    return (bool(transport.opt("dkim_domain")) and bool(transport.opt("dkim_private_key"))
            or bool(transport.opt("arc_sign")))


class DkimSigning:
    """The DKIM signatures of one delivery by one transport."""

    def __init__(self, transport: TransportOptions, job: Any, ctx: Any):
        self.transport = transport
        self.job = job
        self.ctx = ctx
        self._body_hashes: dict[tuple[str, str], bytes] = {}
        self._last: tuple[bytes, bytes] | None = None
        self._arc = ArcSigning(transport, ctx, read_private_key, self._log)

    # -- the transport's entry point ---------------------------------------------
    def apply(self, header: bytes) -> bytes:
        """``header`` with the DKIM-Signature fields in front of it.  Unchanged when
        nothing is to be signed, or when signing failed and dkim_strict is not set;
        raises :class:`TransportError` (defer) when it failed with dkim_strict set."""
        if not signing_configured(self.transport) or self.transport.opt("body_only"):
            return header
        if self._last is not None and self._last[0] == header:
            return self._last[1]
        try:
            fields = self._sign(header)
        except _Failure as f:
            self._log(f"DKIM: signing failed: {f.reason}")
            if self._strict(f):
                self._log(f"{STRICT_DEFER}. Deferring message delivery.")
                raise TransportError(f"{STRICT_DEFER}: {f.reason}", "defer",
                                     EximErrno.UNKNOWNERROR) from None
            fields = b""
        # The ARC set goes above the DKIM signatures, which it covers (as Exim).
        fields = self._arc_set(fields + header) + fields
        out = fields + header
        self._last = (header, out)
        return out

    # -- the signatures -------------------------------------------------------------
    def _sign(self, header: bytes) -> bytes:
        requests = self._requests()
        if not requests:
            return b""
        self._hash_bodies({(r.canon, r.hash_name) for r in requests})
        out = []
        for r in requests:
            try:
                out.append(signature_field(header, self._body_hashes[(r.canon, r.hash_name)],
                                           r))
            except DkimSignError as e:
                raise _Failure(f"d={r.domain} s={r.selector}: {e}", r.domain,
                               r.selector) from None
        return b"".join(out)

    def _arc_set(self, header: bytes) -> bytes:
        try:
            return self._arc.fields(header, self._arc_body_hash)
        except _Failure as f:
            self._log(f"ARC: {f.reason}")
            return b""

    def _arc_body_hash(self) -> bytes:
        self._hash_bodies({ARC_BODY})
        return self._body_hashes[ARC_BODY]

    def _requests(self) -> list[SignatureRequest]:
        """One request per domain and selector that is to be signed for."""
        try:
            domains = self._list("dkim_domain")
        except ExpandFail:
            return []
        requests = []
        for raw_domain in domains:
            domain = raw_domain.lower()
            if is_tainted(raw_domain):
                domain = taint(domain)
            with self._vars(dkim_domain=domain):
                try:
                    selectors = self._list("dkim_selector", domain)
                except ExpandFail:
                    continue
                for selector in selectors:
                    with self._vars(dkim_selector=selector):
                        r = self._request(domain, selector)
                    if r is not None:
                        requests.append(r)
        return requests

    def _request(self, domain: str, selector: str) -> SignatureRequest | None:
        try:
            key_text = self._expand("dkim_private_key", domain, selector)
        except ExpandFail:
            return None
        if key_text.strip() in _NO_KEY:
            return None
        try:
            if not _NAME.fullmatch(domain):
                raise DkimSignError("bad domain")
            if not _NAME.fullmatch(selector):
                raise DkimSignError("bad selector")
            key = self._key(key_text)
            canon = self._expand("dkim_canon", domain, selector).strip() or "relaxed"
            hash_name = self._expand("dkim_hash", domain, selector).strip() or "sha256"
            identity = self._expand("dkim_identity", domain, selector).strip()
            if self.transport.is_set("dkim_sign_headers"):
                names = parse_sign_headers(self._expand("dkim_sign_headers", domain,
                                                        selector))
            else:
                names = parse_sign_headers(DEFAULT_SIGN_HEADERS)
            stamps = self._timestamps(domain, selector)
            # The body hashers check these too, but only once the file is read.
            BodyHasher(canon, hash_name)
        except DkimSignError as e:
            raise _Failure(f"d={domain} s={selector}: {e}", domain, selector) from None
        return SignatureRequest(domain, selector, key, canon, hash_name, names, identity,
                                stamps)

    def _timestamps(self, domain: str, selector: str) -> tuple[int, int] | None:
        text = self._expand("dkim_timestamps", domain, selector).strip()
        if not text:
            return None
        try:
            offset = int(text)
        except ValueError:
            raise DkimSignError(f'dkim_timestamps: "{text}" is not a number') from None
        if offset < 0:
            raise DkimSignError(f'dkim_timestamps: "{text}" is negative')
        t = int(now())
        return t, t + offset

    def _key(self, text: str) -> SigningKey:
        return read_private_key(text, "dkim_private_key")

    def _hash_bodies(self, wanted: set[tuple[str, str]]) -> None:
        """One pass over the -D file for every body hash not yet computed."""
        todo = {k: BodyHasher(*k) for k in wanted if k not in self._body_hashes}
        if not todo:
            return
        if not self.transport.opt("headers_only"):
            try:
                for chunk in _body_chunks(self.job.data_path):
                    for hasher in todo.values():
                        hasher.update(chunk)
            except (OSError, ValueError) as e:
                raise _Failure(f"cannot read the message body: {e}") from None
        for k, hasher in todo.items():
            self._body_hashes[k] = hasher.digest()

    # -- options and variables -----------------------------------------------------------
    def _expand(self, option: str, domain: str = "", selector: str = "") -> str:
        """An option expanded (forced failure passes through), or "" when unset."""
        text = self.transport.opt(option)
        if not text:
            return ""
        try:
            return expand(str(text), self.ctx)
        except ExpandFail:
            raise
        except Exception as e:  # noqa: BLE001 - every expansion error is a signing failure
            where = f"d={domain} s={selector}: " if domain and selector else ""
            raise _Failure(f"{where}{option}: failed to expand: {e}", domain,
                           selector) from None

    def _list(self, option: str, domain: str = "") -> list[str]:
        text = self._expand(option, domain)
        items = [i.strip() for i in split_list(text)]
        return [taint(i) if is_tainted(text) else i for i in items if i]

    @contextmanager
    def _vars(self, **values: str) -> Iterator[None]:
        """$dkim_domain / $dkim_selector while the other options are expanded."""
        variables = self.ctx.variables
        saved = {k: variables.get(k) for k in values}
        variables.update(values)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    variables.pop(k, None)
                else:
                    variables[k] = v

    def _strict(self, f: _Failure) -> bool:
        values = {}
        if f.domain:
            values["dkim_domain"] = f.domain
        if f.selector:
            values["dkim_selector"] = f.selector
        with self._vars(**values):
            try:
                text = self._expand("dkim_strict", f.domain, f.selector)
            except (ExpandFail, _Failure):
                return False
        return text.strip().lower() in ("1", "true")

    def _log(self, text: str) -> None:
        log = getattr(self.job, "log", None)
        if log is None:
            return
        try:
            log.main(text, self.job.message.id)
        except Exception:  # noqa: BLE001 - logging must not change the outcome
            pass


def read_private_key(text: str, option: str) -> SigningKey:
    """A private key option's value (dkim_private_key, arc_sign's privkey): the key
    itself, or a file holding it when it starts with a slash."""
    if text.startswith("/"):
        if is_tainted(text):
            raise DkimSignError(f"Tainted filename '{text}' for {option} "
                                "not permitted")
        try:
            with open(text, "rb") as f:
                pem = f.read()
        except OSError as e:
            raise DkimSignError(f"unable to open file for reading: {text}: "
                                f"{e.strerror or e}") from None
    else:
        pem = text.encode("utf-8", "surrogateescape")
    key = _KEYS.get(pem)
    if key is None:
        key = load_private_key(pem)
        _KEYS[pem] = key
        if len(_KEYS) > _KEYS_MAX:
            _KEYS.popitem(last=False)
    else:
        _KEYS.move_to_end(pem)
    return key


def _body_chunks(data: str | BinaryIO) -> Iterator[bytes]:
    """The body of a -D file in chunks (an open file is read with pread, so its
    position is left alone for the transport)."""
    if isinstance(data, str):
        with open(data, "rb") as f:
            yield from _body_chunks(f)
        return
    fd = data.fileno()
    pos = body_offset(data)
    while True:
        chunk = os.pread(fd, CHUNK, pos)
        if not chunk:
            return
        pos += len(chunk)
        yield chunk
