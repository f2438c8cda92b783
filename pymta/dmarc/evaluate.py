"""DMARC evaluation (RFC 7489 section 6.6) with Exim's results.

Inputs are what the SPF and DKIM checks found (:class:`SpfOutcome`,
:class:`DkimOutcome`) and the RFC 5322.From domain; the policy record comes from the
DNS through ``lookup_txt``.  The result carries Exim's ``$dmarc_status`` words
(accept, reject, quarantine, none, norecord, nofrom, temperror, off), the texts of
``$dmarc_status_text`` and the Authentication-Results verdict.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import dns.exception
import dns.resolver

from pymta import dns as pdns
from pymta.dmarc.record import BadRecord, DmarcRecord, parse_record
from pymta.dmarc.suffixes import SuffixList

# The numbers opendmarc's tools read in the history file (Exim writes the same).
POLICY_ABSENT, POLICY_PASS, POLICY_REJECT, POLICY_QUARANTINE, POLICY_NONE = 14, 15, 16, 17, 18
ACTION_REJECT, ACTION_ACCEPT, ACTION_TEMPFAIL, ACTION_QUARANTINE = 0, 2, 3, 4
ALIGNMENT_PASS, ALIGNMENT_FAIL = 4, 5

#: status -> ($dmarc_status_text, Authentication-Results verdict, action)
_OUTCOMES = {
    "norecord": ("No DMARC record", "none", ACTION_ACCEPT),
    "nofrom": ("No From: domain found", "temperror", ACTION_ACCEPT),
    "none": ("None, Accept", "none", ACTION_ACCEPT),
    "accept": ("Accept", "pass", ACTION_ACCEPT),
    "reject": ("Reject", "fail", ACTION_REJECT),
    "quarantine": ("Quarantine", "fail", ACTION_QUARANTINE),
    "temperror": ("Internal Policy Error", "temperror", ACTION_TEMPFAIL),
    "off": ("", "none", ACTION_ACCEPT),
}
_POLICY_CODES = {"reject": POLICY_REJECT, "quarantine": POLICY_QUARANTINE, "none": POLICY_NONE}


class DnsTempError(Exception):
    """The policy record could not be looked up now."""


@dataclass(frozen=True)
class SpfOutcome:
    """The SPF check's result and the domain it checked (MAIL FROM's, else HELO's)."""

    result: str                 # pass fail softfail neutral none temperror permerror
    domain: str


@dataclass(frozen=True)
class DkimOutcome:
    """One DKIM signature's verification."""

    domain: str
    selector: str
    status: str                 # pass fail invalid none


@dataclass
class DmarcResult:
    """What a DMARC check found; ``status`` is Exim's ``$dmarc_status``."""

    status: str
    header_from: str = ""
    used_domain: str = ""
    domain_policy: str = ""             # the record's p= (sp= for a subdomain)
    record: DmarcRecord | None = None
    spf_aligned: bool = False
    dkim_aligned: bool = False
    policy_code: int = POLICY_ABSENT
    dkim: list[DkimOutcome] = field(default_factory=list)
    spf: SpfOutcome | None = None

    @property
    def status_text(self) -> str:
        return _OUTCOMES[self.status][0]

    @property
    def pass_fail(self) -> str:
        """The verdict for Authentication-Results (``dmarc=...``)."""
        return _OUTCOMES[self.status][1]

    @property
    def action(self) -> int:
        return _OUTCOMES[self.status][2]


TxtLookup = Callable[[str], list[str]]     # TXT strings at a name; DnsTempError


def txt_records(name: str) -> list[str]:
    """The TXT records at ``name`` through pymta's resolver (none for NXDOMAIN or no
    data); DnsTempError when the DNS cannot answer now."""
    try:
        answer = pdns.resolve(name, "TXT", lifetime=5.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise DnsTempError(str(exc)) from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def aligned(identifier: str, from_domain: str, strict: bool, suffixes: SuffixList) -> bool:
    """RFC 7489 3.1: equal domains (strict), or the same organizational domain."""
    a, b = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if a == b:
        return True
    if strict:
        return False
    org = suffixes.organizational_domain(b)
    return org is not None and org == suffixes.organizational_domain(a)


def _policy_record(from_domain: str, lookup_txt: TxtLookup, suffixes: SuffixList
                   ) -> tuple[DmarcRecord | None, str]:
    """RFC 7489 6.6.3: the record of the From domain, else of its organizational
    domain; (record or None, the domain used)."""
    candidates = [from_domain]
    org = suffixes.organizational_domain(from_domain)
    if org is not None and org != from_domain:
        candidates.append(org)
    for domain in candidates:
        records = [t for t in lookup_txt(f"_dmarc.{domain}")
                   if t.replace(" ", "").startswith("v=DMARC1;") or t.strip() == "v=DMARC1"]
        if len(records) == 1:       # several records count as none (6.6.3 step 5)
            try:
                return parse_record(records[0]), domain
            except BadRecord:
                pass
    return None, from_domain


def evaluate(from_domain: str | None, spf: SpfOutcome | None, dkim: list[DkimOutcome],
             lookup_txt: TxtLookup, suffixes: SuffixList,
             sample: Callable[[], int] = lambda: random.randint(1, 100)) -> DmarcResult:
    """Check the message's From domain against its DMARC policy.  ``sample`` draws
    the 1..100 number that the record's pct= is compared with."""
    if not from_domain:
        return DmarcResult("nofrom", spf=spf, dkim=list(dkim))
    from_domain = from_domain.lower().rstrip(".")
    out = DmarcResult("norecord", header_from=from_domain, used_domain=from_domain,
                      spf=spf, dkim=list(dkim))
    try:
        record, out.used_domain = _policy_record(from_domain, lookup_txt, suffixes)
    except DnsTempError:
        out.status = "temperror"
        return out
    if record is None:
        return out
    out.record = record
    out.dkim_aligned = any(d.status == "pass" and aligned(d.domain, from_domain,
                                                          record.adkim == "s", suffixes)
                           for d in dkim)
    out.spf_aligned = spf is not None and spf.result == "pass" and \
        aligned(spf.domain, from_domain, record.aspf == "s", suffixes)
    subdomain = out.used_domain != from_domain
    policy = (record.sp or record.p) if subdomain else record.p
    out.domain_policy = policy
    if out.dkim_aligned or out.spf_aligned:
        out.status, out.policy_code = "accept", POLICY_PASS
        return out
    if record.pct < 100 and sample() > record.pct:
        # not sampled: the next less strict policy (RFC 7489 6.6.4)
        policy = {"reject": "quarantine", "quarantine": "none"}.get(policy, policy)
    out.status, out.policy_code = policy, _POLICY_CODES[policy]
    return out
