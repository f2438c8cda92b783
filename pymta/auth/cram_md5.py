"""Exim's cram_md5 authenticator (RFC 2195), server and client.

The server sends ``<pid.time@primary_hostname>``; the client answers ``user hexdigest``
where the digest is HMAC-MD5 of the challenge keyed with the shared secret.  On the server,
$auth1 is the user name while ``server_secret`` is expanded; a forced failure of that
expansion fails the authentication, any other failure defers it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping

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
from .expander import Expander, ExpansionError, ExpansionForcedFail, auth_variables
from .registry import register
from .results import DEFER, FAIL, UNEXPECTED, Challenge, bytes_to_var


def cram_digest(secret: bytes, challenge: bytes) -> str:
    """The RFC 2195 digest: HMAC-MD5 of the challenge, in lower-case hex."""
    return hmac.new(secret, challenge, hashlib.md5).hexdigest()


def cram_challenge(hostname: str, pid: int, now: float) -> bytes:
    """Exim's challenge text ``<pid.time@hostname>``."""
    return f"<{pid}.{int(now)}@{hostname}>".encode()


def split_cram_response(data: bytes) -> tuple[str, str]:
    """(user, digest) from ``user digest``; the user name may contain spaces, the digest is
    after the last one.  Without a space everything is the user name."""
    user, sep, digest = data.rpartition(b" ")
    if not sep:
        return bytes_to_var(data), ""
    return bytes_to_var(user), bytes_to_var(digest)


class CramMd5ServerExchange(ServerExchange):
    """Server side: one challenge, one response."""

    def __init__(self, auth: Authenticator, expander: Expander,
                 variables: Mapping[str, str] | None = None,
                 now: Callable[[], float] = time.time, pid: int | None = None):
        super().__init__(auth, expander, variables)
        self.now = now
        self.pid = os.getpid() if pid is None else pid

    def mech_start(self, data: bytes | None) -> MechStep:
        if data is not None:
            return Failed(UNEXPECTED)
        try:
            hostname = self.expander("$primary_hostname", self.variables)
        except ExpansionError as e:
            return Failed(DEFER, log_message=str(e))
        self.challenge = cram_challenge(hostname, self.pid, self.now())
        return Challenge(self.challenge)

    def mech_respond(self, data: bytes) -> MechStep:
        user, digest = split_cram_response(data)
        auth_vars = (user,)
        try:
            secret = self.expander(self.auth.opt("server_secret"), self.variables
                                   | auth_variables(auth_vars))
        except ExpansionForcedFail:
            return Failed(FAIL, auth_vars)
        except ExpansionError as e:
            return Failed(DEFER, auth_vars, str(e))
        expected = cram_digest(secret.encode("utf-8", "surrogateescape"), self.challenge)
        if not hmac.compare_digest(expected, digest.lower()):
            return Failed(FAIL, auth_vars)
        return Done(auth_vars)


@register("cram_md5")
class CramMd5Authenticator(Authenticator):
    """``driver = cram_md5``."""

    options = authenticator_options("cram_md5")
    server_options = ("server_secret",)
    client_options = ("client_secret",)

    def server_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ServerExchange:
        return CramMd5ServerExchange(self, expander, variables)

    def client_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> CramMd5ClientExchange:
        variables = dict(variables or {})

        def expand(text: str) -> str:
            return client_expand(expander, text, variables, f'"{text}"')

        name = expand(self.opt("client_name") or "$primary_hostname")
        return CramMd5ClientExchange(name, expand(self.opt("client_secret")))


class CramMd5ClientExchange(ClientExchange):
    """Client side: answer the challenge with ``name hexdigest``."""

    def __init__(self, name: str, secret: str):
        self.name = name
        self.secret = secret

    def challenge(self, text: str) -> str:
        try:
            challenge = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return "*"
        digest = cram_digest(self.secret.encode("utf-8", "surrogateescape"), challenge)
        return base64.b64encode(f"{self.name} {digest}".encode("utf-8", "surrogateescape")
                                ).decode("ascii")
