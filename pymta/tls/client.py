"""Client TLS contexts for the smtp transport.

:class:`ClientTLS` builds a context from the transport's options (expanded with
``$host``/``$host_address``) and makes client connections that

- send ``tls_sni`` (expanded) as Server Name Indication,
- verify the server certificate when told (``VerifyMode.REQUIRED`` for
  tls_verify_hosts: failure ends the handshake; ``TRY`` for
  tls_try_verify_hosts: the session goes on with CV=no), including the host-name
  check of tls_verify_cert_hostnames (:mod:`.hostcheck`) as part of verification,
- ask for a stapled OCSP response (hosts_request_ocsp) and check it
  (:mod:`.ocspcheck`); with hosts_require_ocsp a missing or bad one ends the handshake,
- offer a stored session for resumption (:func:`session_to_bytes` /
  :func:`session_from_bytes` let the transport keep it in the ``tls`` hints db).
  Call ``conn.shutdown()`` (close_notify) before dropping a connection whose
  session is to be reused: OpenSSL marks the session of a connection freed
  without it not resumable.
"""
from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from .certevent import CertHook, refused_by_event
from .errors import TLSConfigError
from .expander import Expander, expand_option
from .hostcheck import hostname_matches
from .ocspcheck import check_ocsp_response
from .options import (
    apply_crl,
    apply_verify_certificates,
    load_pem_certificates,
    parse_openssl_options,
)
from .server import VerifyMode
from .session import OCSPStatus, state_of


class OCSPMode(Enum):
    """Whether the client asks for a stapled OCSP response."""

    NONE = "none"
    REQUEST = "request"      # hosts_request_ocsp
    REQUIRE = "require"      # hosts_require_ocsp


@dataclass
class ClientTLSOptions:
    """The unexpanded smtp transport TLS options (None = unset)."""

    certificate: str | None = None
    privatekey: str | None = None
    verify_certificates: str | None = "system"
    crl: str | None = None
    require_ciphers: str | None = None
    sni: str | None = None
    openssl_options: str | None = None
    alpn: str | None = None


@dataclass
class _ClientSettings:
    """What one connection was asked to check (kept in the TLS state)."""

    host: str
    verify: VerifyMode
    check_hostname: bool
    ocsp: OCSPMode
    trust: tuple[x509.Certificate, ...]
    on_cert: CertHook | None = None           # the tls:cert event


class ClientTLS:
    """Client TLS for one smtp transport."""

    def __init__(self, options: ClientTLSOptions, expand: Expander) -> None:
        self.options = options
        self.expand = expand
        self.ssl_options = parse_openssl_options(options.openssl_options)
        self._contexts: dict[tuple, tuple[SSL.Context, tuple[x509.Certificate, ...]]] = {}

    def _context(self, variables: Mapping[str, str], ciphers: str | None = None
                 ) -> tuple[SSL.Context, tuple[x509.Certificate, ...]]:
        o = self.options

        def ex(text: str | None) -> str | None:
            return expand_option(self.expand, text, variables)

        # ``ciphers``: dane_require_tls_ciphers, when set and not expanding to nothing
        wanted = ex(ciphers) if ciphers else None
        key = (ex(o.certificate), ex(o.privatekey), ex(o.verify_certificates), ex(o.crl),
               wanted or ex(o.require_ciphers), ex(o.alpn))
        cached = self._contexts.get(key)
        if cached is None:
            cached = self._build(*key)
            self._contexts[key] = cached
        return cached

    def context_for(self, variables: Mapping[str, str] = {}) -> SSL.Context:
        """The context connections with ``variables`` use (for :func:`session_from_bytes`)."""
        return self._context(variables)[0]

    def _build(self, certificate: str | None, privatekey: str | None,
               verify_certificates: str | None, crl: str | None,
               require_ciphers: str | None, alpn: str | None
               ) -> tuple[SSL.Context, tuple[x509.Certificate, ...]]:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_options(self.ssl_options & ~SSL.OP_NO_TICKET)
        ctx.set_min_proto_version(SSL.TLS1_VERSION)
        if certificate:
            try:
                ctx.use_certificate_chain_file(certificate)
                ctx.use_privatekey_file(privatekey or certificate)
                ctx.check_privatekey()
            except (SSL.Error, OSError) as e:
                raise TLSConfigError(f"tls_certificate/tls_privatekey: {e}") from None
        if require_ciphers:
            try:
                ctx.set_cipher_list(require_ciphers.encode())
            except SSL.Error:
                raise TLSConfigError(
                    f"tls_require_ciphers: no usable cipher in {require_ciphers!r}") from None
        apply_verify_certificates(ctx, verify_certificates)
        apply_crl(ctx, crl)
        trust: tuple[x509.Certificate, ...] = ()
        if verify_certificates and verify_certificates != "system":
            try:
                trust = tuple(load_pem_certificates(verify_certificates))
            except (OSError, ValueError):
                trust = ()      # a hashed directory: issuers come from the peer's chain
        if alpn:
            ctx.set_alpn_protos([a.strip().encode() for a in alpn.split(":") if a.strip()])
        ctx.set_ocsp_client_callback(_ocsp_client_callback)
        return ctx, trust

    def connection(self, sock: socket.socket | None, host: str,
                   variables: Mapping[str, str] = {},
                   verify: VerifyMode = VerifyMode.NONE, check_hostname: bool = True,
                   ocsp: OCSPMode = OCSPMode.NONE,
                   session: SSL.Session | None = None,
                   sni: str | None = None, ciphers: str | None = None,
                   on_cert: CertHook | None = None) -> SSL.Connection:
        """A client connection to ``host`` on ``sock`` (None: memory BIOs), ready to handshake.
        ``sni`` overrides tls_sni (DANE sends the host name); ``ciphers`` (unexpanded)
        replaces tls_require_ciphers unless it expands to nothing; ``on_cert`` raises
        the tls:cert event for each chain element verified."""
        ctx, trust = self._context(variables, ciphers)
        conn = SSL.Connection(ctx, sock)
        state = state_of(conn)
        state.extra["client"] = _ClientSettings(host, verify, check_hostname, ocsp, trust,
                                                on_cert)
        if sni is None:
            sni = expand_option(self.expand, self.options.sni, variables)
        if sni:
            conn.set_tlsext_host_name(sni.encode("idna"))
            state.sni = sni
        if verify is not VerifyMode.NONE:
            state.verify_requested = True
            conn.set_verify(SSL.VERIFY_PEER, _verify_callback)
        if ocsp is not OCSPMode.NONE:
            conn.request_ocsp()
        if session is not None:
            conn.set_session(session)
        conn.set_connect_state()
        return conn


def _verify_callback(conn: SSL.Connection, cert, errno: int, depth: int, ok: int) -> bool:
    state = state_of(conn)
    settings: _ClientSettings = state.extra["client"]
    state.peer_presented = True
    if refused_by_event(conn, settings.on_cert, cert, depth):
        return False
    if ok and depth == 0 and settings.check_hostname:
        ok = hostname_matches(cert.to_cryptography(), settings.host)
    if not ok:
        state.verify_failed = True
    return bool(ok) or settings.verify is not VerifyMode.REQUIRED


def _ocsp_client_callback(conn: SSL.Connection, der: bytes, data: object) -> bool:
    state = state_of(conn)
    settings: _ClientSettings = state.extra["client"]
    if settings.ocsp is OCSPMode.NONE:
        return True
    leaf = conn.get_peer_certificate(as_cryptography=True)
    chain = conn.get_peer_cert_chain(as_cryptography=True) or []
    if leaf is None:
        state.ocsp = OCSPStatus.NO_RESPONSE
    else:
        state.ocsp = check_ocsp_response(der, leaf, [*chain, *settings.trust])
    return state.ocsp is OCSPStatus.VERIFIED or settings.ocsp is not OCSPMode.REQUIRE


def session_to_bytes(session: SSL.Session) -> bytes:
    """DER of a client session, for the ``tls`` hints database."""
    length = _lib.i2d_SSL_SESSION(session._session, _ffi.NULL)
    buf = _ffi.new("unsigned char[]", length)
    ptr = _ffi.new("unsigned char **", buf)
    _lib.i2d_SSL_SESSION(session._session, ptr)
    return bytes(_ffi.buffer(buf, length))


def session_from_bytes(data: bytes, context: SSL.Context) -> SSL.Session:
    """A client session from :func:`session_to_bytes` output, for connections made
    with ``context`` (:meth:`ClientTLS.context_for`); ValueError if unusable."""
    buf = _ffi.new("unsigned char[]", data)
    ptr = _ffi.new("unsigned char **", buf)
    raw = _lib.d2i_SSL_SESSION(_ffi.NULL, ptr, len(data))
    if raw == _ffi.NULL:
        raise ValueError("not a TLS session")
    session = SSL.Session.__new__(SSL.Session)
    session._session = _ffi.gc(raw, _lib.SSL_SESSION_free)
    session._context = context      # pyOpenSSL only resumes with the same context
    return session
