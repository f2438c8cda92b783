"""What DANE and MTA-STS demand of one outgoing connection: the smtp transport's hook.

The transport calls :func:`host_requirements` once per host, before connecting, and
obeys the :class:`HostRequirements` it gets:

- ``use_host`` False: do not connect; defer the addresses with ``message`` and
  ``errno`` (Exim's ERRNO_DNSDEFER for DANE, as Exim; ERRNO_TLSREQUIRED for an MX
  an MTA-STS policy refuses);
- ``tls_required``: no clear-text fallback (hosts_require_tls in effect);
- ``verify``: ``"dane"`` -- handshake without PKIX verification, then
  :meth:`HostRequirements.check_peer` on the chain the server sent; a failure ends
  the connection and defers, as a failed verification does; ``"pkix"`` -- verify
  the certificate against the trusted CAs and check it names the host (MTA-STS
  enforce); ``"try"`` -- MTA-STS testing: verify as for ``"pkix"`` but go on when it
  fails (or TLS is not offered) and log :meth:`HostRequirements.pkix_failed`;
  ``"none"`` -- whatever the transport's own TLS options say;
- ``sni``: the SNI to send instead of tls_sni (DANE: the host name, as Exim does);
- ``ciphers_option``: the option giving the cipher list (dane_require_tls_ciphers
  under DANE, falling back to tls_require_ciphers when it expands empty);
- ``log_lines``: main-log lines to write (insecure TLSA answers, MTA-STS testing
  reports);
- after the handshake, ``$tls_out_dane``/``$tls_out_tlsa_usage`` come from
  :meth:`HostRequirements.variables` and the `=>` line's ``CV=`` from
  :func:`pymta.tls.session.cv_field` with ``dane=verdict.ok``.

Precedence (RFC 8461 section 2 leaves it to the sender; pymta follows Postfix): a
host with a DNSSEC-secure TLSA RRset is verified by DANE only; MTA-STS still decides
which MX hosts of an enforced policy may be used at all.  Under a testing policy a
failed PKIX check is logged and delivery goes on (:attr:`HostRequirements.sts_testing`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from pymta.errnos import EximErrno

from .dane import DanePlan, DaneVerdict, Outcome, plan, reference_names, verify_chain
from .mtasts import Policy, decide, testing_report


@dataclass
class HostRequirements:
    """The demands on one connection (see the module docstring)."""

    host: str
    use_host: bool = True
    message: str = ""
    errno_kind: str = ""                 # "dane" / "mta-sts" when use_host is False
    tls_required: bool = False
    verify: str = "none"                 # "none" | "try" | "pkix" | "dane"
    sni: str | None = None
    ciphers_option: str = "tls_require_ciphers"
    dane: DanePlan | None = None
    sts_testing: bool = False            # report failures instead of deferring
    sts_domain: str = ""
    log_lines: list[str] = field(default_factory=list)

    @property
    def errno(self) -> EximErrno:
        """The error number for addresses deferred because the host may not be used."""
        return EximErrno.DNSDEFER if self.errno_kind == "dane" else EximErrno.TLSREQUIRED

    def check_peer(self, chain: Sequence[x509.Certificate]) -> DaneVerdict:
        """DANE verification of the chain the server sent (``verify == "dane"``)."""
        if self.dane is None:
            return DaneVerdict(False, reason="DANE not in use")
        if not self.dane.authenticate:      # only unusable records: TLS, unauthenticated
            return DaneVerdict(False, reason="no usable TLSA records")
        return verify_chain(chain, self.dane.usable, reference_names(self.host, self.dane))

    def pkix_failed(self, what: str) -> str:
        """The log line for a failed PKIX check under an MTA-STS testing policy."""
        return testing_report(self.sts_domain, self.host, what)

    def variables(self, verdict: DaneVerdict | None) -> dict[str, str]:
        """$tls_out_dane and $tls_out_tlsa_usage for this connection."""
        usage = self.dane.tlsa_usage if self.dane is not None else 0
        return {"tls_out_dane": "yes" if verdict is not None and verdict.ok else "no",
                "tls_out_tlsa_usage": str(usage)}


def host_requirements(host: str, port: int, *, domain: str = "",
                      try_dane: bool = False, require_dane: bool = False,
                      host_secure: bool = False, dnssec_ok: bool = False,
                      sts_policy: Policy | None = None,
                      resolver: Any = None) -> HostRequirements:
    """Combine the DANE plan for ``host``:``port`` and the MTA-STS policy of the
    recipient ``domain`` into the requirements of one connection."""
    req = HostRequirements(host)
    if sts_policy is not None:
        decision = decide(sts_policy, domain, host)
        req.sts_domain = domain
        if not decision.allowed:
            req.use_host, req.message, req.errno_kind = False, decision.report, "mta-sts"
            return req
        if decision.report:
            req.log_lines.append(decision.report)
        if decision.require_tls:
            req.tls_required, req.verify = True, "pkix"
        elif sts_policy.mode == "testing":
            req.sts_testing, req.verify = True, "try"
    dane = plan(host, port, try_dane=try_dane, require_dane=require_dane,
                host_secure=host_secure, dnssec_ok=dnssec_ok, resolver=resolver)
    req.log_lines.extend(dane.notes)
    if dane.outcome is Outcome.DEFER:
        req.use_host, req.message, req.errno_kind = False, dane.message, "dane"
        req.dane = dane
    elif dane.outcome is Outcome.DANE:
        req.dane = dane
        req.tls_required = True
        req.sni = host
        req.ciphers_option = "dane_require_tls_ciphers"
        if dane.authenticate:
            req.verify, req.sts_testing = "dane", False
        # else (only unusable records): encrypted, and verified as MTA-STS says
    return req
