"""Exim's plaintext authenticator: PLAIN (RFC 4616) and LOGIN, server and client.

Server: the client's data (with the AUTH command and in answer to prompts) is split at NULs
into strings; while fewer strings than ``server_prompts`` have arrived, the next prompt is
sent.  The first three strings become $auth1..$auth3 (for PLAIN: authzid, authcid,
password), then ``server_condition`` decides.

Client: ``client_send`` is a colon-separated list; each item is expanded just before it is
sent, with the server's latest prompt in the next $auth<n>; a single ``^`` becomes NUL and
``^^`` a literal ``^``.  An empty first item means no data on the AUTH command.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from pymta.expand.lists import split_list

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
from .expander import Expander, ExpansionError, auth_variables
from .registry import register
from .results import DEFER, Challenge, bytes_to_var


class PromptsMechanism:
    """The sans-IO core of the plaintext server: collect NUL-separated strings until every
    prompt has been answered."""

    def __init__(self, prompts: list[str]):
        self.prompts = prompts
        self.strings: list[bytes] = []

    def feed(self, data: bytes | None) -> Challenge | tuple[str, ...]:
        """Add one piece of client data (None: the AUTH command had none); returns the next
        prompt or, when enough strings have arrived, $auth1..$auth3."""
        if data is not None:
            self.strings.extend(data.split(b"\0"))
        if len(self.strings) < len(self.prompts):
            return Challenge(self.prompts[len(self.strings)].encode("utf-8", "surrogateescape"))
        values = [bytes_to_var(s) for s in self.strings[:3]]
        return tuple(values + [""] * (3 - len(values)))


class PlaintextServerExchange(ServerExchange):
    condition_required = True

    def mech_start(self, data: bytes | None) -> MechStep:
        prompts_opt = self.auth.opt("server_prompts")
        try:
            prompts = split_list(self.expander(prompts_opt, self.variables)) if prompts_opt else []
        except ExpansionError as e:
            return Failed(DEFER, log_message=str(e))
        self.mech = PromptsMechanism(prompts)
        return self._wrap(self.mech.feed(data))

    def mech_respond(self, data: bytes) -> MechStep:
        return self._wrap(self.mech.feed(data))

    @staticmethod
    def _wrap(step: Challenge | tuple[str, ...]) -> MechStep:
        return step if isinstance(step, Challenge) else Done(step)


@register("plaintext")
class PlaintextAuthenticator(Authenticator):
    """``driver = plaintext``: PLAIN, LOGIN or any prompt/response scheme."""

    options = authenticator_options("plaintext")
    server_options = ("server_condition",)
    client_options = ("client_send",)

    def server_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ServerExchange:
        return PlaintextServerExchange(self, expander, variables)

    def client_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> PlaintextClientExchange:
        return PlaintextClientExchange(self.opt("client_send") or "", expander, variables,
                                       bool(self.opt("client_ignore_invalid_base64")))


def circumflex_to_nul(text: str) -> str:
    """client_send's escape: a single ``^`` is NUL, ``^^`` is one ``^``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "^":
            if text[i + 1:i + 2] == "^":
                out.append("^")
                i += 2
                continue
            out.append("\0")
        else:
            out.append(text[i])
        i += 1
    return "".join(out)


class PlaintextClientExchange(ClientExchange):
    """The plaintext client: send the ``client_send`` items one by one."""

    def __init__(self, client_send: str, expander: Expander,
                 variables: Mapping[str, str] | None = None,
                 ignore_invalid_base64: bool = False):
        self.items = split_list(client_send)
        self.expander = expander
        self.variables = dict(variables or {})
        self.ignore_invalid_base64 = ignore_invalid_base64
        self.prompts: list[str] = []
        self.sent = 0

    def _item(self, index: int) -> str:
        value = client_expand(self.expander, self.items[index],
                              {**self.variables, **auth_variables(self.prompts[:3])},
                              f'"{self.items[index]}"')
        data = circumflex_to_nul(value).encode("utf-8", "surrogateescape")
        return base64.b64encode(data).decode("ascii") or "="

    def initial(self) -> str | None:
        self.sent = 1
        if not self.items or self.items[0] == "":
            return None
        return self._item(0)

    def challenge(self, text: str) -> str:
        try:
            prompt = bytes_to_var(base64.b64decode(text.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError):
            if not self.ignore_invalid_base64:
                return "*"
            prompt = ""
        self.prompts.append(prompt)
        if self.sent >= len(self.items):
            return "*"          # the server wants more than client_send provides
        index = self.sent
        self.sent += 1
        line = self._item(index)
        return "" if line == "=" else line
