"""SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), server and client, and the subset
of Exim's ``gsasl`` authenticator that offers them.

Exim runs SCRAM through GNU SASL; here the mechanism is implemented directly.  Server
options: ``server_scram_iter`` (default 4096), ``server_scram_salt`` (base64; random when
unset or empty), and either ``server_key``/``server_skey`` (base64 ServerKey and StoredKey)
or ``server_password``; each is expanded with $auth1 = authentication id, $auth2 =
authorization id, $auth3 = realm (always empty for SCRAM).  After the proof checks out the
server sends its signature as a last challenge, the client answers with an empty line, and
``server_condition`` (required, as with gsasl) decides.  Channel binding (-PLUS) is not
offered: a client that asks for it (``p=``) fails.  User names are taken as sent apart from
the ``=2C``/``=3D`` escapes (no SASLprep).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .base import (
    Authenticator,
    ClientExchange,
    Done,
    Failed,
    MechStep,
    ServerExchange,
    authenticator_options,
    client_expand,
)
from .expander import Expander, ExpansionError, ExpansionForcedFail
from .registry import register
from .results import DEFER, FAIL, Challenge

HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}


def _h(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def _hmac(name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, name).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class ScramKeys:
    """What a server stores for a user: salt, iteration count, StoredKey, ServerKey."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(cls, hash_name: str, password: str, salt: bytes,
                      iterations: int) -> ScramKeys:
        salted = salted_password(hash_name, password, salt, iterations)
        client_key = _hmac(hash_name, salted, b"Client Key")
        return cls(salt, iterations, _h(hash_name, client_key),
                   _hmac(hash_name, salted, b"Server Key"))


def salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i) of RFC 5802 (PBKDF2 with HMAC)."""
    return hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"), salt, iterations)


def escape_name(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_name(name: str) -> str | None:
    """Undo the ``=2C``/``=3D`` escapes; None for any other ``=``."""
    out = name.replace("=2C", ",").replace("=3D", "\0")
    if "=" in out:
        return None
    return out.replace("\0", "=")


def parse_attributes(text: str) -> list[tuple[str, str]]:
    """``a=b,c=d`` as a list of pairs; ValueError when malformed."""
    pairs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise ValueError(f"bad SCRAM attribute {part!r}")
        pairs.append((part[0], part[2:]))
    return pairs


class ScramError(Exception):
    """A malformed or wrong SCRAM message."""


class ScramServer:
    """Sans-IO SCRAM server.

    ``keys_for(authcid, authzid)`` returns the user's :class:`ScramKeys` (it may raise
    :class:`~pymta.auth.expander.ExpansionError`); ``nonce`` makes the server's nonce part.
    """

    def __init__(self, mechanism: str, keys_for: Callable[[str, str], ScramKeys],
                 nonce: Callable[[], str] | None = None):
        self.hash = HASHES[mechanism]
        self.keys_for = keys_for
        self.nonce = nonce or (lambda: _b64(os.urandom(18)))
        self.authcid = ""
        self.authzid = ""

    def client_first(self, message: bytes) -> bytes:
        """Parse client-first-message; return server-first-message."""
        text = message.decode("utf-8")
        try:
            flag, authz, bare = text.split(",", 2)
        except ValueError:
            raise ScramError("malformed client-first-message") from None
        if flag not in ("n", "y"):
            raise ScramError("channel binding not supported")
        if authz:
            if not authz.startswith("a="):
                raise ScramError("malformed authzid")
            self.authzid = unescape_name(authz[2:]) or ""
        self.gs2_header = f"{flag},{authz},"
        attrs = parse_attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise ScramError("malformed client-first-message")
        name = unescape_name(attrs[0][1])
        if name is None:
            raise ScramError("bad user name escape")
        self.authcid = name
        self.client_first_bare = bare
        self.keys = self.keys_for(self.authcid, self.authzid)
        self.combined_nonce = attrs[1][1] + self.nonce()
        self.server_first = (f"r={self.combined_nonce},s={_b64(self.keys.salt)},"
                             f"i={self.keys.iterations}")
        return self.server_first.encode()

    def client_final(self, message: bytes) -> bytes:
        """Check client-final-message; return server-final-message (``v=...``)."""
        text = message.decode("utf-8")
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise ScramError("no proof")
        attrs = dict(parse_attributes(without_proof))
        if attrs.get("c") != _b64(self.gs2_header.encode()):
            raise ScramError("channel binding mismatch")
        if attrs.get("r") != self.combined_nonce:
            raise ScramError("nonce mismatch")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except binascii.Error:
            raise ScramError("bad proof encoding") from None
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = _hmac(self.hash, self.keys.stored_key, auth_message)
        if len(proof) != len(signature):
            raise ScramError("bad proof length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(_h(self.hash, client_key), self.keys.stored_key):
            raise ScramError("proof does not match")
        return ("v=" + _b64(_hmac(self.hash, self.keys.server_key, auth_message))).encode()


class ScramClient:
    """Sans-IO SCRAM client."""

    def __init__(self, mechanism: str, username: str, password: str, authzid: str = "",
                 nonce: Callable[[], str] | None = None):
        self.hash = HASHES[mechanism]
        self.password = password
        self.client_nonce = (nonce or (lambda: _b64(os.urandom(18))))()
        self.gs2_header = "n," + (f"a={escape_name(authzid)}" if authzid else "") + ","
        self.client_first_bare = f"n={escape_name(username)},r={self.client_nonce}"
        self.server_signature: bytes | None = None

    def first(self) -> bytes:
        return (self.gs2_header + self.client_first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8")
        attrs = dict(parse_attributes(text))
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        if not nonce.startswith(self.client_nonce) or salt is None or not iterations.isdigit():
            raise ScramError("malformed server-first-message")
        salted = salted_password(self.hash, self.password, base64.b64decode(salt),
                                 int(iterations))
        client_key = _hmac(self.hash, salted, b"Client Key")
        without_proof = f"c={_b64(self.gs2_header.encode())},r={nonce}"
        auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        signature = _hmac(self.hash, _h(self.hash, client_key), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_signature = _hmac(self.hash, _hmac(self.hash, salted, b"Server Key"),
                                      auth_message)
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final: bytes) -> bool:
        """True when the server proved it knows the password."""
        text = server_final.decode("utf-8", "replace")
        return (self.server_signature is not None and text.startswith("v=")
                and hmac.compare_digest(text[2:], _b64(self.server_signature)))


class ScramServerExchange(ServerExchange):
    """gsasl-style SCRAM server exchange."""

    condition_required = True

    def __init__(self, auth: Authenticator, expander: Expander,
                 variables: Mapping[str, str] | None = None,
                 nonce: Callable[[], str] | None = None):
        super().__init__(auth, expander, variables)
        self.mechanism = (auth.opt("server_mech") or auth.public_name).upper()
        self.scram = ScramServer(self.mechanism, self._keys, nonce)
        self.state = "first"

    def _keys(self, authcid: str, authzid: str) -> ScramKeys:
        variables = self.vars_for((authcid, authzid, ""))

        def expand(name: str) -> str:
            text = self.auth.opt(name)
            return self.expander(text, variables) if text is not None else ""

        iterations = expand("server_scram_iter") or "4096"
        if not iterations.isdigit():
            raise ExpansionError(f"bad server_scram_iter value \"{iterations}\"")
        try:
            salt = base64.b64decode(expand("server_scram_salt"), validate=True)
        except binascii.Error:
            raise ExpansionError("server_scram_salt is not base64") from None
        salt = salt or os.urandom(12)
        size = hashlib.new(self.scram.hash).digest_size
        server_key, stored_key = expand("server_key"), expand("server_skey")
        try:
            keys = (base64.b64decode(server_key), base64.b64decode(stored_key))
        except binascii.Error:
            keys = (b"", b"")
        if len(keys[0]) == size and len(keys[1]) == size:
            return ScramKeys(salt, int(iterations), keys[1], keys[0])
        password = expand("server_password")
        return ScramKeys.from_password(self.scram.hash, password, salt, int(iterations))

    def _vars(self) -> tuple[str, ...]:
        return (self.scram.authcid, self.scram.authzid, "")

    def mech_start(self, data: bytes | None) -> MechStep:
        if data is None:
            return Challenge(b"")
        return self.mech_respond(data)

    def mech_respond(self, data: bytes) -> MechStep:
        try:
            if self.state == "first":
                self.state = "final"
                return Challenge(self.scram.client_first(data))
            if self.state == "final":
                self.state = "done"
                return Challenge(self.scram.client_final(data))
        except ExpansionForcedFail:
            return Failed(DEFER, self._vars())     # the manual: a forced failure defers
        except ExpansionError as e:
            return Failed(DEFER, self._vars(), str(e))
        except (ScramError, UnicodeDecodeError, ValueError) as e:
            return Failed(FAIL, self._vars(), str(e))
        if data:
            return Failed(FAIL, self._vars(), "unexpected data after server-final-message")
        return Done(self._vars())


@register("gsasl")
class GsaslAuthenticator(Authenticator):
    """``driver = gsasl`` for the SCRAM-SHA-1 and SCRAM-SHA-256 mechanisms only."""

    options = authenticator_options("gsasl")
    server_options = ("server_condition",)
    client_options = ("client_password",)

    def __init__(self, name: str, options: Mapping[str, object] | None = None):
        super().__init__(name, options)
        mech = (self.opt("server_mech") or self.public_name)
        if mech == "public_name":            # the table's placeholder default
            mech = self.public_name
        self.opts["server_mech"] = mech.upper()
        if self.opts["server_mech"] not in HASHES:
            raise ValueError(f"{name} authenticator: mechanism {mech} not supported "
                             f"(only {', '.join(HASHES)})")

    def server_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ServerExchange:
        return ScramServerExchange(self, expander, variables)

    def client_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ScramClientExchange:
        variables = dict(variables or {})

        def expand(name: str) -> str:
            text = self.opt(name)
            return "" if text is None else client_expand(expander, text, variables, name)

        return ScramClientExchange(ScramClient(self.opts["server_mech"],
                                               expand("client_username"),
                                               expand("client_password"),
                                               expand("client_authz")))


class ScramClientExchange(ClientExchange):
    """SMTP framing of :class:`ScramClient`: the first message goes with AUTH."""

    def __init__(self, scram: ScramClient):
        self.scram = scram
        self.state = "first"
        self.verified = False

    def initial(self) -> str | None:
        return _b64(self.scram.first())

    def challenge(self, text: str) -> str:
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
            if self.state == "first":
                self.state = "final"
                return _b64(self.scram.final(data))
            if self.state == "final" and self.scram.verify(data):
                self.state = "done"
                self.verified = True
                return ""
        except (binascii.Error, ScramError, UnicodeError, ValueError):
            pass
        return "*"

    def finished(self) -> bool:
        return self.verified

