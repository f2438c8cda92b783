"""Server TLS contexts built from Exim's main TLS options.

:class:`ServerTLS` expands ``tls_certificate``/``tls_privatekey``/``tls_ocsp_file``/
``tls_verify_certificates``/``tls_crl`` with the caller's :class:`Expander`,
builds a pyOpenSSL context for each distinct set of expanded values (cached, so
static options build one context), and wraps sockets in connections that

- present one certificate per key type (lists give RSA and EC side by side; the
  library picks by the negotiated cipher),
- re-expand those options with ``$tls_in_sni`` set when the client sends SNI and
  the certificate option mentions ``tls_in_sni`` (or ``tls_sni``), switching to
  that context (cached per name),
- ask for a client certificate when told (``VerifyMode.TRY`` for
  tls_try_verify_hosts, ``REQUIRED`` for tls_verify_hosts),
- staple the DER OCSP response belonging to the presented certificate,
- accept only the configured ALPN names (a client offering anything else, or more
  than one name, is refused, as Exim does),
- issue session tickets only when resumption is allowed for the peer
  (tls_resumption_hosts); ticket keys belong to the first context and so are
  shared by processes forked after :meth:`ServerTLS.prepare` (see :mod:`.tickets`),
  or are given by the fleet (:meth:`ServerTLS.use_ticket_keys`).
"""
from __future__ import annotations

import base64
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from OpenSSL import SSL, crypto

from ..expand import ExpandError
from ..expand.lists import nonempty_items
from .certevent import CertHook, refused_by_event
from .errors import TLSConfigError
from .expander import Expander, expand_option
from .options import (
    apply_crl,
    apply_dhparam,
    apply_eccurve,
    apply_verify_certificates,
    parse_openssl_options,
)
from .session import OCSPStatus, state_of
from .ticketkeys import TicketKeysUnavailable, set_ticket_keys

# Session id context: OpenSSL refuses to resume a session whose peer was
# verified unless this is set.
_SESSION_ID_CONTEXT = b"pymta-smtp"

_SNI_VARIABLES = ("tls_in_sni", "tls_sni")


class VerifyMode(Enum):
    """How a client certificate is asked for."""

    NONE = "none"          # not requested
    TRY = "try"            # tls_try_verify_hosts: requested, the session goes on without
    REQUIRED = "required"  # tls_verify_hosts: no verified certificate, no session


class ALPNRefused(Exception):
    """The client offered ALPN names the server does not accept."""


@dataclass
class ServerTLSOptions:
    """The unexpanded main-section TLS options (None = unset)."""

    certificate: str | None = None
    privatekey: str | None = None
    require_ciphers: str | None = None
    openssl_options: str | None = None
    dhparam: str | None = None
    dh_max_bits: int = 0
    eccurve: str | None = "auto"
    verify_certificates: str | None = "system"
    crl: str | None = None
    alpn: str | None = "smtp : esmtp"
    ocsp_file: str | None = None

    def mentions_sni(self) -> bool:
        """True when the certificate option depends on the client's SNI."""
        text = self.certificate or ""
        return any(v in text for v in _SNI_VARIABLES)


@dataclass(frozen=True)
class _Expanded:
    """The expanded values a context is built from (the cache key)."""

    certificates: tuple[str, ...]
    privatekeys: tuple[str, ...]
    ocsp_files: tuple[str, ...]
    require_ciphers: str | None
    dhparam: str | None
    eccurve: str | None
    verify_certificates: str | None
    crl: str | None


def load_ocsp_response(path: str) -> bytes:
    """A DER OCSP response from ``path`` (DER, or PEM/base64 text); checked to parse."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TLSConfigError(f"tls_ocsp_file: cannot open {path}: {e.strerror}") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        body = b"".join(line for line in data.splitlines() if not line.startswith(b"-----"))
        data = base64.b64decode(body)
    try:
        ocsp.load_der_ocsp_response(data)
    except ValueError as e:
        raise TLSConfigError(f"tls_ocsp_file: {path} is not an OCSP response: {e}") from None
    return data


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


class ServerTLS:
    """Server TLS for one configuration: contexts, SNI switching, OCSP, ALPN."""

    def __init__(self, options: ServerTLSOptions, expand: Expander) -> None:
        self.options = options
        self.expand = expand
        self.ssl_options = parse_openssl_options(options.openssl_options)
        self.alpn = [a.encode() for a in nonempty_items(options.alpn)] if options.alpn else []
        self._contexts: dict[_Expanded, SSL.Context] = {}
        # Session-ticket keys shared by a fleet (None: each context's own random keys).
        self.ticket_keys: bytes | None = None
        self._staples: dict[bytes, bytes] = {}
        # Options without "$" or "\\" expand to themselves whatever the session: then
        # they are expanded once, not twice in every STARTTLS.
        texts = (options.certificate, options.privatekey, options.ocsp_file,
                 options.require_ciphers, options.dhparam, options.eccurve,
                 options.verify_certificates, options.crl)
        self._constant = all(t is None or ("$" not in t and "\\" not in t) for t in texts)
        self._constant_values: _Expanded | None = None

    # -- building -----------------------------------------------------------

    def _expand(self, variables: Mapping[str, str]) -> _Expanded:
        if self._constant_values is not None:
            return self._constant_values
        values = self._expand_options(variables)
        if self._constant:
            self._constant_values = values
        return values

    def _expand_options(self, variables: Mapping[str, str]) -> _Expanded:
        o = self.options

        def ex(text: str | None) -> str | None:
            return expand_option(self.expand, text, variables)

        certs = tuple(nonempty_items(ex(o.certificate)))
        if not certs:
            raise TLSConfigError("tls_certificate is not set (or expanded to nothing)")
        keys = tuple(nonempty_items(ex(o.privatekey))) or certs
        if len(keys) != len(certs):
            raise TLSConfigError("tls_privatekey must name one key for each tls_certificate")
        staples = tuple(nonempty_items(ex(o.ocsp_file)))
        if staples and len(staples) != len(certs):
            raise TLSConfigError("tls_ocsp_file must name one file for each tls_certificate")
        return _Expanded(certs, keys, staples, ex(o.require_ciphers), ex(o.dhparam),
                         ex(o.eccurve), ex(o.verify_certificates), ex(o.crl))

    def context_for(self, variables: Mapping[str, str] = {}) -> SSL.Context:
        """The context for ``variables`` (built once per distinct expansion)."""
        values = self._expand(variables)
        ctx = self._contexts.get(values)
        if ctx is None:
            ctx = self._build(values)
            self._contexts[values] = ctx
        return ctx

    def prepare(self, variables: Mapping[str, str] = {}) -> SSL.Context:
        """Build the context in the master before forking: OpenSSL makes a context's
        ticket keys when it creates it, so every handler forked afterwards shares them."""
        return self.context_for(variables)

    def rotate_ticket_keys(self) -> None:
        """Forget all contexts: the next ones get fresh session-ticket keys.

        Tickets issued before no longer decrypt; those clients make a full handshake.
        """
        self._contexts.clear()

    def use_ticket_keys(self, keys: bytes | None) -> None:
        """Encrypt tickets with ``keys`` (80 bytes, see :mod:`.ticketkeys`) in every
        context built from now on; None: each new context makes its own."""
        if keys != self.ticket_keys:
            self.ticket_keys = keys
            self._contexts.clear()

    def _build(self, v: _Expanded) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_options(self.ssl_options & ~SSL.OP_NO_TICKET)
        ctx.set_min_proto_version(SSL.TLS1_VERSION)
        ctx.set_session_id(_SESSION_ID_CONTEXT)
        # Stateless tickets only: a server-side cache would not be shared between the
        # processes that handle connections.
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        if self.ticket_keys is not None:
            try:
                set_ticket_keys(ctx, self.ticket_keys)
            except TicketKeysUnavailable as exc:
                raise TLSConfigError(f"session-ticket keys: {exc}") from None
        for cert, key in zip(v.certificates, v.privatekeys):
            try:
                ctx.use_certificate_chain_file(cert)
            except (SSL.Error, OSError) as e:
                raise TLSConfigError(f"tls_certificate: cannot load {cert}: {e}") from None
            try:
                ctx.use_privatekey_file(key)
                ctx.check_privatekey()
            except (SSL.Error, OSError) as e:
                raise TLSConfigError(f"tls_privatekey: cannot use {key} with {cert}: {e}") \
                    from None
        for cert_path, staple_path in zip(v.certificates, v.ocsp_files):
            with open(cert_path, "rb") as f:
                leaf = x509.load_pem_x509_certificate(f.read())
            self._staples[_fingerprint(leaf)] = load_ocsp_response(staple_path)
        if v.require_ciphers:
            try:
                ctx.set_cipher_list(v.require_ciphers.encode())
            except SSL.Error:
                raise TLSConfigError(
                    f"tls_require_ciphers: no usable cipher in {v.require_ciphers!r}") from None
        apply_dhparam(ctx, v.dhparam, self.options.dh_max_bits)
        apply_eccurve(ctx, v.eccurve)
        apply_verify_certificates(ctx, v.verify_certificates)
        apply_crl(ctx, v.crl)
        if v.ocsp_files:
            ctx.set_ocsp_server_callback(self._ocsp_staple)
        if self.alpn:
            ctx.set_alpn_select_callback(self._alpn_select)
        ctx.set_tlsext_servername_callback(self._servername)
        return ctx

    # -- callbacks ------------------------------------------------------------

    def _ocsp_staple(self, conn: SSL.Connection, data: object) -> bytes:
        """Called when the client asks for certificate status: the presented cert's staple."""
        cert = conn.get_certificate(as_cryptography=True)
        staple = self._staples.get(_fingerprint(cert), b"") if cert is not None else b""
        state_of(conn).ocsp = OCSPStatus.VERIFIED if staple else OCSPStatus.NO_RESPONSE
        return staple

    def _alpn_select(self, conn: SSL.Connection, offered: list[bytes]) -> bytes:
        if len(offered) == 1 and offered[0] in self.alpn:
            state_of(conn).alpn = offered[0].decode("ascii")
            return offered[0]
        raise ALPNRefused(f"ALPN {b','.join(offered)!r} not acceptable")

    def _servername(self, conn: SSL.Connection) -> None:
        """Record the client's SNI; re-expand the certificate options with it when they use it."""
        name = conn.get_servername()
        if not name:
            return
        sni = name.decode("ascii", "replace")
        state = state_of(conn)
        state.sni = sni
        if not self.options.mentions_sni():
            return
        variables = state.extra.get("variables", {})
        try:
            ctx = self.context_for({**variables, "tls_in_sni": sni, "tls_sni": sni})
        except (TLSConfigError, ExpandError) as e:
            # $tls_in_sni is whatever the client sent: an unusable name keeps the
            # default certificate; the caller logs state.extra["sni_error"].
            state.extra["sni_error"] = str(e)
            return
        if ctx is not conn.get_context():
            conn.set_context(ctx)

    @staticmethod
    def _verify_callback(required: bool, on_cert: CertHook | None = None):
        def callback(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                     ok: int) -> bool:
            state = state_of(conn)
            state.peer_presented = True
            if refused_by_event(conn, on_cert, cert, depth):
                return False
            if not ok:
                state.verify_failed = True
            # tls_try_verify_hosts: carry on and let the ACLs see CV=no.
            return bool(ok) or not required
        return callback

    # -- connections ----------------------------------------------------------

    def connection(self, sock: socket.socket | None,
                   variables: Mapping[str, str] = {},
                   verify: VerifyMode = VerifyMode.NONE,
                   resumption: bool = False,
                   on_cert: CertHook | None = None) -> SSL.Connection:
        """A server-side connection on ``sock`` (None: memory BIOs), ready to handshake;
        ``on_cert`` raises the tls:cert event for each chain element verified."""
        conn = SSL.Connection(self.context_for(variables), sock)
        # The SNI callback re-expands with the same variables plus $tls_in_sni.
        state_of(conn).extra["variables"] = dict(variables)
        if not resumption:
            conn.set_options(SSL.OP_NO_TICKET)
        state_of(conn).verify_requested = verify is not VerifyMode.NONE
        if verify is VerifyMode.REQUIRED:
            conn.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                            self._verify_callback(True, on_cert))
        elif verify is VerifyMode.TRY:
            conn.set_verify(SSL.VERIFY_PEER, self._verify_callback(False, on_cert))
        conn.set_accept_state()
        return conn
