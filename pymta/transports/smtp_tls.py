"""TLS for the smtp transport: which hosts get TLS, how they are verified, and the facts.

:class:`OutgoingTLS` reads the transport's TLS options (Exim 4.96 chapter "Configuring an
Exim client to use TLS"): STARTTLS is used whenever the server offers it, except for
hosts_avoid_tls; hosts_require_tls makes a missing or failed TLS session a deferral
instead of a delivery in clear.  Verification of the server certificate follows Exim's
OpenSSL client: tls_verify_hosts must verify, tls_try_verify_hosts (default ``*``) tries
(a failure gives CV=no); with both unset verification is required, as in Exim.
tls_verify_cert_hostnames (default ``*``) adds the host name check.  All TLS options are
expanded with $host and $host_address; a forced failure means "unset".

:meth:`OutgoingTLS.wrapper` returns the callable :class:`pymta.smtp.client.SmtpClient`
runs after ``220`` to STARTTLS (or at connect for protocol = smtps), and records the
session's :class:`~pymta.tls.session.TLSFacts`.
"""
from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from OpenSSL import SSL

from pymta.address import Host
from pymta.errnos import EximErrno
from pymta.expand import ExpandFail, expand_string
from pymta.hints.store import open_hints
from pymta.metrics import counters as metrics
from pymta.tls.certevent import CertHook
from pymta.tls.client import (
    ClientTLS,
    ClientTLSOptions,
    OCSPMode,
    session_from_bytes,
    session_to_bytes,
)
from pymta.tls.clientsock import TLSClientSocket, TLSHandshakeError, handshake
from pymta.tls.dhcheck import peer_dh_bits
from pymta.tls.errors import TLSConfigError
from pymta.tls.expander import ContextExpander
from pymta.tls.hidden import HiddenFunctionUnavailable
from pymta.tls.outbound import HostRequirements
from pymta.tls.server import VerifyMode
from pymta.tls.session import TLSFacts, session_facts, tls_variables


class TLSSetupError(Exception):
    """TLS could not be started with this host.  ``errno`` is Exim's
    (TLSFAILURE/TLSREQUIRED); ``message`` the text for the address and the log."""

    def __init__(self, message: str, errno: int = EximErrno.TLSFAILURE):
        super().__init__(message)
        self.message = message
        self.errno = errno


@dataclass
class HostTLS:
    """What the transport's options say about TLS with one host."""

    avoid: bool
    require: bool
    verify: VerifyMode
    check_hostname: bool
    tryclear: bool
    resume: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    ocsp: OCSPMode = OCSPMode.NONE
    require_alpn: bool = False              # hosts_require_alpn: no ALPN, no TLS
    # DANE / MTA-STS demands on this host (None: the transport's options alone)
    security: HostRequirements | None = None

    def apply(self, req: HostRequirements) -> None:
        """Let DANE / MTA-STS tighten the policy (they never loosen it)."""
        self.security = req
        if req.tls_required:
            self.require, self.avoid, self.tryclear = True, False, False
        if req.verify == "dane":
            # The chain is checked against the TLSA records after the handshake.
            self.verify, self.check_hostname = VerifyMode.NONE, False
        elif req.verify == "pkix":
            self.verify, self.check_hostname = VerifyMode.REQUIRED, True
        elif req.verify == "try":
            self.verify, self.check_hostname = VerifyMode.TRY, True


class _CurrentContext:
    """An expander over the delivery's current expansion context, so that one
    :class:`ClientTLS` (and its contexts, which stored sessions belong to) serves every
    delivery of the process."""

    def __init__(self) -> None:
        self.ctx: Any = None

    def __call__(self, text: str, variables: Mapping[str, str]) -> str:
        return ContextExpander(self.ctx)(text, variables)


class OutgoingTLS:
    """TLS policy and contexts of one smtp transport (contexts are cached per expanded
    option values)."""

    def __init__(self, transport: Any) -> None:
        self.t = transport
        self._current = _CurrentContext()
        opt = transport.opt
        self._client = ClientTLS(ClientTLSOptions(
            certificate=opt("tls_certificate"), privatekey=opt("tls_privatekey"),
            verify_certificates=opt("tls_verify_certificates"),
            crl=opt("tls_crl"), require_ciphers=opt("tls_require_ciphers"),
            sni=opt("tls_sni"), alpn=opt("tls_alpn")), self._current)

    # -- options ---------------------------------------------------------------------
    def _in(self, option: str, host: Host, ctx: Any) -> bool:
        return bool(self.t.host_in(option, host, ctx))

    def for_host(self, host: Host, ctx: Any) -> HostTLS:
        """The policy for ``host``."""
        if self._in("tls_verify_hosts", host, ctx):
            verify = VerifyMode.REQUIRED
        elif self._in("tls_try_verify_hosts", host, ctx):
            verify = VerifyMode.TRY
        elif not self.t.opt("tls_verify_hosts") and not self.t.opt("tls_try_verify_hosts"):
            verify = VerifyMode.REQUIRED        # Exim: both unset means verify
        else:
            verify = VerifyMode.NONE
        variables = {"host": host.name or host.address or "",
                     "host_address": host.address or ""}
        ocsp = (OCSPMode.REQUIRE if self._in("hosts_require_ocsp", host, ctx)
                else OCSPMode.REQUEST if self._in("hosts_request_ocsp", host, ctx)
                else OCSPMode.NONE)
        return HostTLS(ocsp=ocsp, avoid=self._in("hosts_avoid_tls", host, ctx),
                       require=self._in("hosts_require_tls", host, ctx),
                       verify=verify,
                       check_hostname=self._in("tls_verify_cert_hostnames", host, ctx),
                       tryclear=bool(self.t.opt("tls_tempfail_tryclear")),
                       resume=self._in("tls_resumption_hosts", host, ctx),
                       variables=variables,
                       require_alpn=self._in("hosts_require_alpn", host, ctx))

    def _library(self, ctx: Any) -> ClientTLS:
        self._current.ctx = ctx
        return self._client

    def _verify_certificates(self, policy: HostTLS, ctx: Any) -> str:
        text = self.t.opt("tls_verify_certificates")
        if not text:
            return ""
        try:
            return str(expand_string(text, ctx.child(**policy.variables)))
        except ExpandFail:
            return ""

    # -- the handshake ----------------------------------------------------------------
    def wrapper(self, host: Host, policy: HostTLS, ctx: Any, timeout: float,
                session: SSL.Session | None = None, on_cert: CertHook | None = None,
                ) -> tuple[Callable[[socket.socket], TLSClientSocket], list[TLSFacts]]:
        """A TLS wrap for the SMTP client, and a list that receives the session facts
        once the handshake succeeds.  Handshake failures raise :class:`TLSSetupError`
        with Exim's "TLS session: (SSL_connect): ..." text.  ``on_cert`` is the
        tls:cert event."""
        verify = policy.verify
        if verify is not VerifyMode.NONE and not self._verify_certificates(policy, ctx):
            verify = VerifyMode.NONE            # nothing to verify against
        req = policy.security
        facts: list[TLSFacts] = []

        def wrap(sock: socket.socket) -> TLSClientSocket:
            try:
                library = self._library(ctx)
                conn = library.connection(sock, host.name or host.address or "",
                                          policy.variables, verify=verify,
                                          check_hostname=policy.check_hostname,
                                          ocsp=policy.ocsp, session=session,
                                          sni=req.sni if req is not None else None,
                                          ciphers=self._dane_ciphers(req),
                                          on_cert=on_cert)
            except TLSConfigError as e:
                raise TLSSetupError(f"TLS session: {e}") from None
            except Exception as e:  # noqa: BLE001 - expansion errors in TLS options
                raise TLSSetupError(f"TLS session: {e}") from None
            try:
                stream = handshake(conn, sock, timeout)
            except TLSHandshakeError as e:
                raise TLSSetupError(f"TLS session: (SSL_connect): {e}") from None
            found = session_facts(conn)
            if policy.require_alpn and not found.alpn:
                # Exim's words; like any failed TLS, tried in clear unless TLS is required
                stream.close()
                raise TLSSetupError("TLS session: (handshake): ALPN required but not "
                                    "negotiated")
            too_short = self._dh_too_short(conn)
            if too_short:
                stream.close()
                raise TLSSetupError(f"TLS session: (SSL_connect): {too_short}")
            if req is not None and req.verify == "dane":
                verdict = req.check_peer(conn.get_peer_cert_chain(as_cryptography=True) or [])
                if not verdict.ok:
                    stream.close()
                    raise TLSSetupError(f"TLS session: (SSL_connect): DANE verification "
                                        f"failed: {verdict.reason}", EximErrno.TLSREQUIRED)
                found = dataclasses.replace(found, dane=True)
            facts.append(found)
            metrics.tls_session("outbound", found.version)
            return stream

        return wrap, facts

    def _dh_too_short(self, conn: SSL.Connection) -> str:
        """Why the server's DH prime is shorter than tls_dh_min_bits ("" when it is
        not, or the exchange was not finite-field DH)."""
        minimum = int(self.t.opt("tls_dh_min_bits") or 0)
        if minimum <= 0:
            return ""
        try:
            bits = peer_dh_bits(conn)
        except HiddenFunctionUnavailable as exc:
            return f"cannot check tls_dh_min_bits: {exc}"
        if bits is None or bits >= minimum:
            return ""
        return (f"the Diffie-Hellman prime sent by the server is not acceptable (not long "
                f"enough): {bits} bits, tls_dh_min_bits is {minimum}")

    def _dane_ciphers(self, req: HostRequirements | None) -> str | None:
        """dane_require_tls_ciphers for a DANE connection (None: tls_require_ciphers)."""
        if req is None or req.ciphers_option != "dane_require_tls_ciphers":
            return None
        return self.t.opt("dane_require_tls_ciphers") or None

    def context_for(self, policy: HostTLS, ctx: Any) -> SSL.Context:
        """The OpenSSL context connections to a host with ``policy`` use (stored
        sessions must be loaded for it)."""
        return self._library(ctx).context_for(policy.variables)


#: How long a stored client session is kept in a shared (Redis) tls database: servers
#: rarely honour a resumption after a day (TLS 1.3 caps tickets at seven).
SESSION_LIFETIME = 86400


class SessionStore:
    """Client TLS sessions kept in the ``tls`` hints database for tls_resumption_hosts,
    keyed by transport, host address, port, SNI and the server name host_name_extract
    found, so any delivery process can resume."""

    def __init__(self, spool_dir: str, transport: str, log: Any = None) -> None:
        self.db = open_hints(spool_dir, "tls", log)
        self.transport = transport

    def key(self, host: Host, port: int, sni: str, server_name: str = "") -> str:
        key = f"{self.transport}:[{host.address}]:{port}:{sni}"
        return f"{key}:{server_name}" if server_name else key

    def load(self, key: str, context: SSL.Context) -> SSL.Session | None:
        data = self.db.get(key)
        if not data:
            return None
        try:
            return session_from_bytes(data, context)
        except ValueError:
            self.db.delete(key)
            return None

    def save(self, key: str, conn: SSL.Connection) -> None:
        session = conn.get_session()
        if session is not None:
            self.db.put(key, session_to_bytes(session), SESSION_LIFETIME)


def out_variables(facts: TLSFacts | None) -> dict[str, str]:
    """``$tls_out_*`` for the expansion context (empty values without TLS)."""
    out = tls_variables(facts, "out")
    out["tls_out_dane"] = "yes" if facts is not None and facts.dane else "no"
    return out


def record_on_addresses(addrs: list, facts: TLSFacts | None) -> None:
    """Keep what the delivery line needs (X=, CV=, DN=) on each address."""
    for a in addrs:
        a.tls_cipher = facts.cipher_exim if facts else ""
        a.tls_certificate_verified = bool(facts and facts.certificate_verified)
        a.tls_peerdn = facts.peerdn if facts else ""
        a.tls_resumed = bool(facts and facts.resumed)
        a.tls_dane = bool(facts and facts.dane)
