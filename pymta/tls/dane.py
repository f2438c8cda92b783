"""DANE for the smtp transport (RFC 7672, RFC 7671; Exim 4.96 section "DANE").

Three steps, each a function the transport calls:

1. :func:`host_is_secure` -- was the host's address lookup DNSSEC-validated?
   (Exim: ``host->dnssec == DS_YES``.)  DANE applies only to such hosts.
2. :func:`plan` -- from hosts_try_dane / hosts_require_dane (already matched by
   the caller), the host's DNSSEC status and a TLSA lookup for
   ``_<port>._tcp.<host>``, decide what the connection must do
   (:class:`DanePlan`): nothing special, DANE-verified TLS, or defer.
3. :func:`verify_chain` -- after the TLS handshake, does the certificate chain the
   server sent match one of the usable TLSA records?

A DNS answer counts as secure only when ``dns_dnssec_ok`` is 1 (the resolver is
asked for DNSSEC data: EDNS0 with DO) and the answer comes back with the AD flag
(the validating resolver vouches for it).  Usable records have usage DANE-TA(2)
or DANE-EE(3); PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 3.1.3)
and ignored.  A host whose secure TLSA RRset has no usable record still gets TLS
made mandatory, without authentication (RFC 7672 2.2).

Name checks: none for DANE-EE (RFC 7672 3.1.1, and no expiry check either); for
DANE-TA the server certificate must name the host (the MX host name, or the
TLSA base domain) and be valid now (RFC 7672 3.1.2, 3.2.2).
"""
from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import crypto

from pymta import dns as pdns

from .hostcheck import hostname_matches

DANE_TA = 2
DANE_EE = 3
USABLE_USAGES = (DANE_TA, DANE_EE)


@dataclass(frozen=True)
class TLSARecord:
    """One TLSA record: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        """DANE-TA/DANE-EE with a selector and matching type we know."""
        return (self.usage in USABLE_USAGES and self.selector in (0, 1)
                and self.mtype in (0, 1, 2))

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


# --------------------------------------------------------------------------- DNS
class Lookup(Enum):
    """How a DNS lookup ended (Exim's DNS_SUCCEED / DNS_NODATA / DNS_NOMATCH / DNS_AGAIN)."""

    FOUND = "found"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    AGAIN = "again"          # SERVFAIL, timeout, no server: try later


@dataclass
class LookupResult:
    """Records of one lookup and whether the answer is DNSSEC-secure."""

    status: Lookup
    secure: bool = False
    rdatas: list[Any] = field(default_factory=list)
    name: str = ""           # the owner name after CNAMEs (the TLSA base for TLSA)


def secure_lookup(name: str, rtype: str, dnssec_ok: bool, resolver: Any = None) -> LookupResult:
    """Look ``name``/``rtype`` up; ``secure`` is True only when ``dnssec_ok`` and the AD
    flag is set on the answer.  ``resolver`` defaults to :func:`pymta.dns.get_resolver`."""
    import dns.exception
    import dns.flags
    import dns.resolver

    res = resolver if resolver is not None else pdns.get_resolver()
    if dnssec_ok:
        # Ask for DNSSEC (DO) and for the AD bit; a copy so the shared resolver is untouched.
        import copy
        res = copy.copy(res)
        res.cache = None            # an answer cached without DO has no AD
        res.use_edns(0, dns.flags.DO, 1232)
        res.flags = (res.flags or dns.flags.RD) | dns.flags.AD | dns.flags.RD
    try:
        answer = res.resolve(name, rtype, search=False)
    except dns.resolver.NXDOMAIN:
        return LookupResult(Lookup.NXDOMAIN)
    except dns.resolver.NoAnswer:
        return LookupResult(Lookup.NODATA)
    except (dns.exception.DNSException, OSError):
        return LookupResult(Lookup.AGAIN)       # SERVFAIL, timeout, no server
    secure = dnssec_ok and bool(answer.response.flags & dns.flags.AD)
    return LookupResult(Lookup.FOUND, secure, list(answer),
                        answer.canonical_name.to_text(omit_final_dot=True))


def host_is_secure(name: str, dnssec_ok: bool, resolver: Any = None) -> bool:
    """True when ``name``'s address records (A, else AAAA) came back DNSSEC-secure."""
    for rtype in ("A", "AAAA"):
        r = secure_lookup(name, rtype, dnssec_ok, resolver)
        if r.status is Lookup.FOUND:
            return r.secure
    return False


def mx_is_secure(domain: str, dnssec_ok: bool, resolver: Any = None) -> bool:
    """True when ``domain``'s MX RRset came back DNSSEC-secure (RFC 7672 2.2.1)."""
    r = secure_lookup(domain, "MX", dnssec_ok, resolver)
    return r.status is Lookup.FOUND and r.secure


def tlsa_name(host: str, port: int) -> str:
    """The TLSA owner name for a host and port: ``_25._tcp.mx.example.com``."""
    return f"_{port}._tcp.{host.rstrip('.')}"


# --------------------------------------------------------------------------- decision
class Outcome(Enum):
    """What a connection to one host must do."""

    NONE = "none"            # no DANE: TLS as the other options say
    DANE = "dane"            # DANE-verified TLS required; no clear-text fallback
    DEFER = "defer"          # do not use the host now (message in DanePlan.message)


@dataclass
class DanePlan:
    """The decision for one host (see :func:`plan`)."""

    outcome: Outcome
    records: tuple[TLSARecord, ...] = ()
    message: str = ""                    # for the delivery error / log when DEFER
    notes: tuple[str, ...] = ()          # main-log lines (e.g. "TLSA lookup ... not DNSSEC")
    base_domain: str = ""                # the TLSA base domain (after CNAMEs)

    @property
    def usable(self) -> tuple[TLSARecord, ...]:
        """The records DANE verification uses."""
        return tuple(r for r in self.records if r.usable)

    @property
    def tlsa_usage(self) -> int:
        """$tls_out_tlsa_usage: one bit per certificate usage present."""
        bits = 0
        for r in self.records:
            if 0 <= r.usage < 8:
                bits |= 1 << r.usage
        return bits

    @property
    def authenticate(self) -> bool:
        """Whether the peer's chain must match (False: TLS mandatory but unauthenticated,
        when every secure TLSA record is unusable)."""
        return bool(self.usable)


def records_from_rdatas(rdatas: Sequence[Any]) -> tuple[TLSARecord, ...]:
    """TLSARecord objects from dnspython TLSA rdata."""
    return tuple(TLSARecord(int(r.usage), int(r.selector), int(r.mtype), bytes(r.cert))
                 for r in rdatas)


def plan(host: str, port: int, *, try_dane: bool, require_dane: bool, host_secure: bool,
         dnssec_ok: bool, resolver: Any = None) -> DanePlan:
    """Decide DANE for ``host``:``port`` as Exim 4.96's smtp transport does.

    ``try_dane``/``require_dane``: the host matched hosts_try_dane / hosts_require_dane.
    ``host_secure``: the MX and address lookups were DNSSEC-secure.

    - neither option matches, or the host is not secure and DANE is only tried: NONE;
    - DANE required but the host is not secure: DEFER ("DANE error: <host> lookup not
      DNSSEC");
    - a secure TLSA RRset: DANE (records in the plan);
    - no TLSA records, or an insecure TLSA answer: NONE when tried ("DANE error: TLSA
      lookup for <host> not DNSSEC" is logged for the latter), DEFER when required
      ("DANE error: tlsa lookup FAIL");
    - the TLSA lookup cannot be done now (SERVFAIL, timeout): DEFER
      ("DANE error: tlsa lookup DEFER").
    """
    if not (try_dane or require_dane):
        return DanePlan(Outcome.NONE)
    if not (dnssec_ok and host_secure):
        if require_dane:
            return DanePlan(Outcome.DEFER, message=f"DANE error: {host} lookup not DNSSEC")
        return DanePlan(Outcome.NONE)
    r = secure_lookup(tlsa_name(host, port), "TLSA", dnssec_ok, resolver)
    notes: tuple[str, ...] = ()
    if r.status is Lookup.FOUND:
        if r.secure:
            return DanePlan(Outcome.DANE, records_from_rdatas(r.rdatas), base_domain=r.name)
        notes = (f"DANE error: TLSA lookup for {host} not DNSSEC",)
    elif r.status is Lookup.AGAIN:
        return DanePlan(Outcome.DEFER, message="DANE error: tlsa lookup DEFER")
    if require_dane:
        return DanePlan(Outcome.DEFER, message="DANE error: tlsa lookup FAIL", notes=notes)
    return DanePlan(Outcome.NONE, notes=notes)


# --------------------------------------------------------------------------- matching
def _selected(cert: x509.Certificate, selector: int) -> bytes:
    if selector == 0:
        return cert.public_bytes(serialization.Encoding.DER)
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


_DIGESTS: dict[int, Callable[[bytes], bytes]] = {
    0: lambda b: b,
    1: lambda b: hashlib.sha256(b).digest(),
    2: lambda b: hashlib.sha512(b).digest(),
}


def record_matches(record: TLSARecord, cert: x509.Certificate) -> bool:
    """Does ``cert`` match ``record``'s selector, matching type and data?"""
    digest = _DIGESTS.get(record.mtype)
    if digest is None or record.selector not in (0, 1):
        return False
    return digest(_selected(cert, record.selector)) == record.data


@dataclass
class DaneVerdict:
    """The result of :func:`verify_chain`."""

    ok: bool
    record: TLSARecord | None = None     # the record that matched
    depth: int = -1                      # where in the chain (0: the server's certificate)
    reason: str = ""


def verify_chain(chain: Sequence[x509.Certificate], records: Sequence[TLSARecord],
                 names: Sequence[str], now: datetime.datetime | None = None) -> DaneVerdict:
    """Match the server's chain (its certificate first) against the usable TLSA records.

    DANE-EE: the server certificate itself matches; nothing else is checked.
    DANE-TA: a certificate of the chain (or, for a full-certificate ``2 0 0`` record,
    the record's certificate) is the trust anchor; the server certificate must chain to
    it with valid signatures and dates, and name one of ``names``.
    """
    if not chain:
        return DaneVerdict(False, reason="no server certificate")
    usable = [r for r in records if r.usable]
    if not usable:
        return DaneVerdict(False, reason="no usable TLSA records")
    leaf = chain[0]
    for rec in usable:
        if rec.usage == DANE_EE and record_matches(rec, leaf):
            return DaneVerdict(True, rec, 0)
    reasons = []
    for rec in usable:
        if rec.usage != DANE_TA:
            continue
        anchors: list[tuple[int, x509.Certificate]] = [
            (depth, c) for depth, c in enumerate(chain) if depth > 0 and record_matches(rec, c)]
        if not anchors and rec.selector == 0 and rec.mtype == 0:
            try:
                anchors = [(len(chain), x509.load_der_x509_certificate(rec.data))]
            except ValueError:
                anchors = []
        for depth, anchor in anchors:
            why = _chains_to(leaf, list(chain[1:depth]), anchor, now)
            if why:
                reasons.append(why)
                continue
            if not any(hostname_matches(leaf, n) for n in names if n):
                reasons.append("server certificate does not name " + " or ".join(
                    n for n in names if n))
                continue
            return DaneVerdict(True, rec, depth)
    return DaneVerdict(False, reason="; ".join(reasons) or "no TLSA record matched")


def _chains_to(leaf: x509.Certificate, intermediates: list[x509.Certificate],
               anchor: x509.Certificate, now: datetime.datetime | None) -> str:
    """Empty if ``leaf`` chains to ``anchor`` (trusted as is: no need to be self-signed)
    through ``intermediates``; otherwise OpenSSL's reason."""
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(anchor))
    store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    if now is not None:
        store.set_time(now)
    ctx = crypto.X509StoreContext(
        store, crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(c) for c in intermediates])
    try:
        ctx.verify_certificate()
    except crypto.X509StoreContextError as exc:
        return str(exc)
    return ""


def reference_names(host: str, plan_: DanePlan) -> tuple[str, ...]:
    """Names a DANE-TA server certificate may carry: the host name and the TLSA base
    domain (RFC 7672 3.2.2), without duplicates."""
    names = [host.rstrip(".")]
    base = plan_.base_domain
    prefix = "._tcp."
    if base and prefix in base:
        base_host = base.split(prefix, 1)[1]
        if base_host.lower() != names[0].lower():
            names.append(base_host)
    return tuple(names)


def tls_out_dane(verdict: DaneVerdict | None) -> str:
    """$tls_out_dane: "yes" when the connection was DANE-verified."""
    return "yes" if verdict is not None and verdict.ok else "no"
