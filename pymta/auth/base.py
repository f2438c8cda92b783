"""The authenticator driver base class and the server/client exchange skeletons.

A driver instance holds its typed option values (generic options of chapter "SMTP
authentication" plus its private ones).  For each AUTH command the SMTP session asks it for
a :class:`ServerExchange` and feeds it the client's lines; the exchange decodes them,
runs the driver's mechanism and, at the end, applies ``server_condition`` and
``server_set_id``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pymta.config.option_tables import driver_options
from pymta.config.options import OptionSpec
from pymta.truth import exim_true

from .expander import (
    Expander,
    ExpansionError,
    ExpansionForcedFail,
    auth_variables,
    check_condition,
    expand_set_id,
)
from .results import (
    OK,
    AuthResult,
    Challenge,
    ResponseError,
    decode_initial_response,
    decode_response,
)


@dataclass(frozen=True)
class Done:
    """The mechanism finished; ``auth_vars`` are $auth1.. for the conditions."""

    auth_vars: tuple[str, ...]


@dataclass(frozen=True)
class Failed:
    """The mechanism failed with ``status`` (a status of :mod:`pymta.auth.results`)."""

    status: str
    auth_vars: tuple[str, ...] = ()
    log_message: str | None = None


MechStep = Challenge | Done | Failed


def authenticator_options(driver: str) -> dict[str, OptionSpec]:
    """Generic plus private options of ``driver`` from the shared Exim 4.96 tables
    (:mod:`pymta.config.option_tables`)."""
    return driver_options("authenticator", driver)


class Authenticator:
    """One instance from the authenticators section.

    ``options`` maps option names to typed values as the configuration reader produces
    them; options not given take the defaults of the class's ``options`` table.
    """

    driver_name: ClassVar[str]
    options: ClassVar[dict[str, OptionSpec]]
    #: Option names whose presence makes the instance a server / a client.
    server_options: ClassVar[tuple[str, ...]] = ()
    client_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        options = dict(options or {})
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"option {min(unknown)!r} unknown for the "
                             f"{self.driver_name} authenticator")
        self.name = name
        self.opts: dict[str, Any] = {n: s.default for n, s in self.options.items()}
        self.opts.update(options)
        self.public_name: str = (self.opts.get("public_name") or name).upper()

    @classmethod
    def from_instance(cls, instance: Any) -> Authenticator:
        """Build from a :class:`pymta.config.model.DriverInstance`."""
        return cls(instance.name, instance.options)

    def opt(self, name: str) -> Any:
        return self.opts.get(name)

    @property
    def is_server(self) -> bool:
        """Server functions are enabled when any of the server options is set."""
        return any(self.opts.get(n) is not None for n in self.server_options)

    @property
    def is_client(self) -> bool:
        return any(self.opts.get(n) is not None for n in self.client_options)

    def advertise(self, expander: Expander, variables: Mapping[str, str] | None = None) -> bool:
        """server_advertise_condition: unset, or an expansion that is not "", 0, no, false;
        a failed expansion does not advertise."""
        cond = self.opt("server_advertise_condition")
        if cond is None:
            return True
        try:
            value = expander(cond, variables or {})
        except ExpansionError:
            return False
        return exim_true(value)

    def server_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ServerExchange:
        raise NotImplementedError(f"{self.driver_name} has no server side")

    def client_exchange(self, expander: Expander,
                        variables: Mapping[str, str] | None = None) -> ClientExchange:
        raise ClientError(f"{self.driver_name} has no client side")


class ServerExchange:
    """One AUTH exchange on the server.

    Call :meth:`start` with the initial response of the AUTH command (the text after the
    mechanism name, None when absent), then :meth:`respond` with each client line while the
    answer is a :class:`Challenge`.  Lines are base64 text as the client sent them.
    ``variables`` are session variables the driver's expansions may need (for instance the
    TLS facts of the external driver).
    """

    #: Whether server_condition is checked when the mechanism succeeds.
    use_condition = True
    #: Whether an unset server_condition fails (plaintext, external and gsasl need it).
    condition_required = False

    def __init__(self, auth: Authenticator, expander: Expander,
                 variables: Mapping[str, str] | None = None):
        self.auth = auth
        self.expander = expander
        self.variables: dict[str, str] = dict(variables or {})
        self.result: AuthResult | None = None

    # -- to be provided by each driver -------------------------------------------------
    def mech_start(self, data: bytes | None) -> MechStep:
        raise NotImplementedError

    def mech_respond(self, data: bytes) -> MechStep:
        raise NotImplementedError

    # -- the exchange ----------------------------------------------------------------
    def start(self, initial: str | None) -> Challenge | AuthResult:
        try:
            data = decode_initial_response(initial)
        except ResponseError as e:
            return self._finish(Failed(e.status))
        return self._step(self.mech_start(data))

    def respond(self, line: str) -> Challenge | AuthResult:
        if self.result is not None:
            raise RuntimeError("the exchange has ended")
        try:
            data = decode_response(line)
        except ResponseError as e:
            return self._finish(Failed(e.status))
        return self._step(self.mech_respond(data))

    def _step(self, step: MechStep) -> Challenge | AuthResult:
        if isinstance(step, Challenge):
            return step
        return self._finish(step)

    def vars_for(self, auth_vars: tuple[str, ...]) -> dict[str, str]:
        return {**self.variables, **auth_variables(auth_vars)}

    def _finish(self, step: Done | Failed) -> AuthResult:
        variables = self.vars_for(step.auth_vars)
        if isinstance(step, Failed):
            status, user_msg, log_msg = step.status, None, step.log_message
        elif not self.use_condition:
            status, user_msg, log_msg = OK, None, None
        elif self.condition_required and self.auth.opt("server_condition") is None:
            status, user_msg, log_msg = "fail", None, None
        else:
            status, user_msg, log_msg = check_condition(
                self.expander, self.auth.opt("server_condition"), variables)
        set_id = None
        if step.auth_vars or status == OK:
            set_id = expand_set_id(self.expander, self.auth.opt("server_set_id"), variables)
        self.result = AuthResult(status, step.auth_vars, set_id or None, user_msg, log_msg)
        return self.result


class ClientError(Exception):
    """The client side cannot go on.  ``forced`` is true when an expansion was forced to
    fail: Exim then tries the next authenticator instead of deferring the delivery."""

    def __init__(self, message: str, forced: bool = False):
        super().__init__(message)
        self.forced = forced


def client_expand(expander: Expander, text: str, variables: Mapping[str, str],
                  what: str) -> str:
    """Expand a client option's ``text``; a failure is a :class:`ClientError` saying
    "expansion of <what> failed" (``forced`` for a forced failure)."""
    try:
        return expander(text, variables)
    except ExpansionForcedFail as e:
        raise ClientError(str(e), forced=True) from None
    except ExpansionError as e:
        raise ClientError(f"expansion of {what} failed: {e}") from None


class ClientExchange:
    """The client side of one AUTH exchange.

    :meth:`initial` gives the text to put after ``AUTH <mechanism>`` (None for nothing);
    :meth:`challenge` takes the base64 text of each 334 reply and returns the line to
    send back (``*`` to cancel).  :meth:`finished` checks the final reply's data where the
    mechanism needs to (SCRAM).
    """

    def initial(self) -> str | None:
        return None

    def challenge(self, text: str) -> str:
        raise NotImplementedError

    def finished(self) -> bool:
        """True when the exchange completed what the mechanism requires of the server."""
        return True


def advertised(authenticators: list[Authenticator], expander: Expander,
               variables: Mapping[str, str] | None = None) -> list[Authenticator]:
    """The server authenticators to name in the EHLO reply's AUTH line, in configuration
    order (each passing its server_advertise_condition).  The caller checks
    auth_advertise_hosts first."""
    return [a for a in authenticators if a.is_server and a.advertise(expander, variables)]


def find_mechanism(authenticators: list[Authenticator], name: str) -> Authenticator | None:
    """The advertised authenticator for ``AUTH name`` (names match caselessly, as in Exim)."""
    wanted = name.upper()
    return next((a for a in authenticators if a.public_name == wanted), None)
