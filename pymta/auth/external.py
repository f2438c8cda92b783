"""Exim's external authenticator (RFC 4422 appendix A), server and client.

Server: the identity the client asserts (with AUTH or after an empty prompt) is $auth1;
``server_param2`` and ``server_param3`` are expanded into $auth2 and $auth3 (a forced
failure fails, another error defers), then ``server_condition`` (required) decides.  Facts
about the client certificate reach the expansions as session variables (for example
``tls_in_certificate_verified``, ``tls_in_peerdn``, ``tls_in_peercert``), passed in by the
caller.  Client: ``client_send`` is expanded and sent with the AUTH command.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping

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
from .results import DEFER, FAIL, Challenge, bytes_to_var


class ExternalServerExchange(ServerExchange):
    condition_required = True

    def mech_start(self, data: bytes | None) -> MechStep:
        if data is None:
            return Challenge(b"")
        return self.mech_respond(data)

    def mech_respond(self, data: bytes) -> MechStep:
        values = [bytes_to_var(data)]
        for name in ("server_param2", "server_param3"):
            text = self.auth.opt(name)
            if text is None:
                values.append("")
                continue
            try:
                values.append(self.expander(text, self.vars_for(tuple(values))))
            except ExpansionForcedFail:
                return Failed(FAIL, tuple(values))
            except ExpansionError as e:
                return Failed(DEFER, tuple(values), str(e))
        return Done(tuple(values))


@register("external")
class ExternalAuthenticator(Authenticator):
    """``driver = external``."""

    options = authenticator_options("external")
    server_options = ("server_condition", "server_param2", "server_param3")
    client_options = ("client_send",)

    def server_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ServerExchange:
        return ExternalServerExchange(self, expander, variables)

    def client_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ExternalClientExchange:
        identity = client_expand(expander, self.opt("client_send") or "",
                                 dict(variables or {}), "client_send")
        return ExternalClientExchange(identity)


class ExternalClientExchange(ClientExchange):
    """Send the identity with AUTH (``=`` when it is empty)."""

    def __init__(self, identity: str):
        self.identity = identity

    def initial(self) -> str | None:
        return base64.b64encode(self.identity.encode()).decode("ascii") or "="

    def challenge(self, text: str) -> str:
        return "*"


