"""Facts of an established TLS session, and the strings Exim makes of them.

:class:`TLSState` is attached to a pyOpenSSL connection (``set_app_data``) by the
context callbacks and collects what only the handshake sees (verification
result, SNI, OCSP status).  :func:`session_facts` adds what the finished
connection reports.  The remaining functions are pure: they turn
:class:`TLSFacts` into ``$tls_in_*``/``$tls_out_*`` values, the log fields
``X=``, ``CV=``, ``DN=``, ``SNI=`` and the Received: header phrase, in the
format of Exim 4.96 built with OpenSSL (``X=TLS1.3:TLS_AES_256_GCM_SHA384:256``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from cryptography import x509
from OpenSSL import SSL
from OpenSSL._util import ffi as _openssl_ffi
from OpenSSL._util import lib as _openssl_lib  # for SSL_session_reused (no public API)

from .certinfo import distinguished_name
from .ciphernames import IANA_NAMES


class OCSPStatus(IntEnum):
    """Values of $tls_in_ocsp / $tls_out_ocsp."""

    NOT_REQUESTED = 0
    NO_RESPONSE = 1
    NOT_VERIFIED = 2
    FAILED = 3
    VERIFIED = 4


@dataclass
class TLSState:
    """What the callbacks learn during one handshake (kept as the connection's app data)."""

    sni: str = ""
    verify_requested: bool = False       # the peer's certificate was to be verified
    verify_failed: bool = False          # some chain element failed verification
    peer_presented: bool = False
    ocsp: OCSPStatus = OCSPStatus.NOT_REQUESTED
    alpn: str = ""
    extra: dict = field(default_factory=dict)


def state_of(conn: SSL.Connection) -> TLSState:
    """The :class:`TLSState` of ``conn``, created on first use."""
    state = conn.get_app_data()
    if not isinstance(state, TLSState):
        state = TLSState()
        conn.set_app_data(state)
    return state


@dataclass(frozen=True)
class TLSFacts:
    """One side's view of an established session (inbound or outbound)."""

    version: str                          # "TLS1.3" (Exim drops OpenSSL's "v")
    cipher: str                           # OpenSSL cipher name
    bits: int
    certificate_verified: bool
    peer_cert: x509.Certificate | None = None
    our_cert: x509.Certificate | None = None
    sni: str = ""
    ocsp: OCSPStatus = OCSPStatus.NOT_REQUESTED
    resumed: bool = False
    alpn: str = ""
    dane: bool = False                    # outbound: the chain was verified by DANE

    @property
    def cipher_exim(self) -> str:
        """$tls_in_cipher: ``version:cipher:bits``."""
        return f"{self.version}:{self.cipher}:{self.bits}"

    @property
    def cipher_std(self) -> str:
        """$tls_in_cipher_std: the RFC (IANA) name of the cipher suite."""
        return standard_cipher_name(self.cipher)

    @property
    def peerdn(self) -> str:
        """$tls_in_peerdn: the peer certificate's subject, empty when none."""
        return distinguished_name(self.peer_cert.subject) if self.peer_cert else ""


def exim_version(openssl_version: str) -> str:
    """OpenSSL's protocol name ("TLSv1.3") as Exim shows it ("TLS1.3")."""
    return "TLS" + openssl_version[4:] if openssl_version.startswith("TLSv") \
        else openssl_version


def session_facts(conn: SSL.Connection) -> TLSFacts:
    """The facts of ``conn`` after a completed handshake.

    $tls_*_certificate_verified is 1 only when verification was asked for, the
    peer sent a certificate and no element of its chain failed.
    """
    state = state_of(conn)
    peer = conn.get_peer_certificate(as_cryptography=True)
    ours = _our_certificate(conn)
    verified = state.verify_requested and peer is not None and not state.verify_failed
    alpn = conn.get_alpn_proto_negotiated() or b""
    return TLSFacts(
        version=exim_version(conn.get_protocol_version_name()),
        cipher=conn.get_cipher_name() or "",
        bits=conn.get_cipher_bits() or 0,
        certificate_verified=verified,
        peer_cert=peer, our_cert=ours,
        sni=state.sni or (conn.get_servername() or b"").decode("ascii", "replace"),
        ocsp=state.ocsp,
        resumed=_session_reused(conn),
        alpn=alpn.decode("ascii", "replace"))


#: Our certificates as cryptography objects, by the address of OpenSSL's X509; the
#: pyOpenSSL wrapper kept with each holds a reference, so no address is reused while
#: it is here.  A receiver presents the same one or two certificates session after
#: session, and converting one cost as much as the rest of the session's facts.
_OUR_CERTIFICATES: dict[int, tuple[object, x509.Certificate]] = {}
_OUR_CERTIFICATES_MAX = 32


def _our_certificate(conn: SSL.Connection) -> x509.Certificate | None:
    """The certificate we presented on ``conn`` (None when none)."""
    cert = conn.get_certificate()
    if cert is None:
        return None
    address = int(_openssl_ffi.cast("uintptr_t", cert._x509))
    known = _OUR_CERTIFICATES.get(address)
    if known is not None:
        return known[1]
    if len(_OUR_CERTIFICATES) >= _OUR_CERTIFICATES_MAX:   # contexts were rebuilt
        _OUR_CERTIFICATES.clear()
    converted = cert.to_cryptography()
    _OUR_CERTIFICATES[address] = (cert, converted)
    return converted


def _session_reused(conn: SSL.Connection) -> bool:
    # pyOpenSSL has no public SSL_session_reused(); its binding exposes it.
    return bool(_openssl_lib.SSL_session_reused(conn._ssl))


def tls_variables(facts: TLSFacts | None, direction: str) -> dict[str, str]:
    """``$tls_<direction>_*`` values (direction "in" or "out"); empty values when no TLS."""
    p = f"tls_{direction}_"
    if facts is None:
        return {p + "cipher": "", p + "cipher_std": "", p + "ver": "", p + "bits": "0",
                p + "certificate_verified": "0", p + "peerdn": "", p + "sni": "",
                p + "ocsp": "0", p + "resumption": "0"}
    return {
        p + "cipher": facts.cipher_exim,
        p + "cipher_std": facts.cipher_std,
        p + "ver": facts.version,
        p + "bits": str(facts.bits),
        p + "certificate_verified": "1" if facts.certificate_verified else "0",
        p + "peerdn": facts.peerdn,
        p + "sni": facts.sni,
        p + "ocsp": str(int(facts.ocsp)),
        # Bits: 0 support built, 4 resume used (the bits we can observe).
        p + "resumption": str(1 | (16 if facts.resumed else 0)),
    }


def x_field(facts: TLSFacts, resumption_selector: bool = False) -> str:
    """The log field ``X=ver:cipher:bits`` (``*`` appended for a resumed session when
    the tls_resumption log selector is set)."""
    star = "*" if resumption_selector and facts.resumed else ""
    return f"X={facts.cipher_exim}{star}"


def cv_field(facts: TLSFacts, dane: bool = False) -> str:
    """The log field ``CV=yes``/``CV=no`` (``CV=dane`` for a DANE-verified peer)."""
    if dane:
        return "CV=dane"
    return "CV=yes" if facts.certificate_verified else "CV=no"


def dn_field(facts: TLSFacts) -> str:
    """The log field ``DN="..."``, empty when the peer sent no certificate."""
    return f'DN="{facts.peerdn}"' if facts.peer_cert is not None else ""


def sni_field(facts: TLSFacts) -> str:
    """The log field ``SNI=name``, empty when the client sent no SNI."""
    return f"SNI={facts.sni}" if facts.sni else ""


def received_protocol(esmtp: bool, tls: bool, authenticated: bool) -> str:
    """$received_protocol for an SMTP reception: smtp, esmtp, esmtps, esmtpa, esmtpsa."""
    if not esmtp:
        return "smtps" if tls else "smtp"
    return "esmtp" + ("s" if tls else "") + ("a" if authenticated else "")


def received_tls_phrase(facts: TLSFacts | None) -> str:
    """The TLS part of Exim's default Received: header, after "with <protocol> ".

    Exim's default received_header_text adds `` ($tls_in_ver)`` and
    `` tls $tls_in_cipher_std`` followed by a folded line, giving
    ``with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\\n\\t`` (two spaces).
    """
    if facts is None:
        return ""
    return f" ({facts.version}) tls {facts.cipher_std}\n\t"


def standard_cipher_name(openssl_name: str) -> str:
    """The IANA name of an OpenSSL cipher suite name (itself for TLS 1.3 or when unknown)."""
    return IANA_NAMES.get(openssl_name, openssl_name)
