"""What DKIM verification shows: the ``$dkim_*`` variables of one signature, the
``$dkim_verify_reason`` words and the log lines, in Exim 4.96's words (as its daemon
writes them: "DKIM: d=... s=... c=... a=... b=... [verification succeeded]")."""
from __future__ import annotations

from pymta.dkim.verify import UNLIMITED, Detail, Signature

#: $dkim_verify_reason for each detail (others: "").
REASONS = {Detail.PUBKEY_UNAVAILABLE: "pubkey_unavailable",
           Detail.PUBKEY_DNS_SYNTAX: "pubkey_dns_syntax",
           Detail.PUBKEY_DER_SYNTAX: "pubkey_der_syntax",
           Detail.KEYSIZE: "pubkey_too_short",
           Detail.BODY: "bodyhash_mismatch",
           Detail.MESSAGE: "signature_incorrect"}

_INVALID = {Detail.PUBKEY_UNAVAILABLE: "public key record (currently?) unavailable",
            Detail.PUBKEY_OVERLONG: "overlong public key record",
            Detail.PUBKEY_DNS_SYNTAX: "syntax error in public key record",
            Detail.PUBKEY_DER_SYNTAX: "syntax error in public key record",
            Detail.SIGNATURE_SYNTAX: "signature tag missing or invalid",
            Detail.VERSION: "unsupported DKIM version"}
_FAIL = {Detail.BODY: "body hash mismatch (body probably modified in transit)",
         Detail.MESSAGE: "signature did not verify (headers probably modified in transit)",
         Detail.KEYSIZE: "signature invalid (key too short)"}

_UNSET = "<UNSET>"

#: The per-signature variables and their values when no signature is current.
EMPTY_VARIABLES = {
    "dkim_verify_status": "none", "dkim_verify_reason": "", "dkim_domain": "",
    "dkim_identity": "", "dkim_selector": "", "dkim_algo": "", "dkim_canon_body": "",
    "dkim_canon_headers": "", "dkim_copiedheaders": "",
    "dkim_bodylength": str(UNLIMITED), "dkim_created": "0",
    "dkim_expires": str(UNLIMITED), "dkim_headernames": "", "dkim_key_testing": "0",
    "dkim_key_nosubdomains": "0", "dkim_key_srvtype": "*", "dkim_key_granularity": "*",
    "dkim_key_notes": "", "dkim_key_length": "0"}


def reason(sig: Signature) -> str:
    """$dkim_verify_reason of a signature."""
    return REASONS.get(sig.detail, "")


def signature_variables(sig: Signature) -> dict[str, str]:
    """The $dkim_* values (without the dkim_ prefix's siblings dkim_cur_signer and
    dkim_signers) while the DKIM ACL looks at ``sig``."""
    key = sig.key
    return {
        "dkim_verify_status": sig.status, "dkim_verify_reason": reason(sig),
        "dkim_domain": sig.domain, "dkim_identity": sig.identity,
        "dkim_selector": sig.selector, "dkim_algo": sig.algo,
        "dkim_canon_body": sig.canon_body, "dkim_canon_headers": sig.canon_headers,
        "dkim_copiedheaders": sig.copiedheaders,
        "dkim_bodylength": str(UNLIMITED if sig.bodylength is None else sig.bodylength),
        "dkim_created": str(sig.created),
        "dkim_expires": str(sig.expires or UNLIMITED),
        "dkim_headernames": ":".join(sig.headernames),
        "dkim_key_testing": "1" if key is not None and key.testing else "0",
        "dkim_key_nosubdomains": "1" if key is not None and key.nosubdomains else "0",
        "dkim_key_srvtype": key.srvtype if key is not None else "*",
        "dkim_key_granularity": key.granularity if key is not None else "*",
        "dkim_key_notes": key.notes if key is not None else "",
        "dkim_key_length": str(sig.key_bits)}


def signers(sigs: list[Signature]) -> list[str]:
    """$dkim_signers: each signature's domain, and its identity when it has one."""
    out: list[str] = []
    for sig in sigs:
        if sig.domain:
            out.append(sig.domain)
        if sig.identity:
            out.append(sig.identity)
    return out


def matches(sig: Signature, signer: str) -> bool:
    """Whether ``signer`` (an item of dkim_verify_signers) names ``sig``: an identity
    when it has an "@", else a domain; case does not matter."""
    mine = sig.identity if "@" in signer else sig.domain
    return bool(mine) and mine.lower() == signer.lower()


def key_failure_line(sig: Signature) -> str:
    """The main-log line for a key record that could not be used."""
    return f"DKIM: d={sig.domain or _UNSET} s={sig.selector or _UNSET} [failed key import]"


def signature_line(sig: Signature, status: str | None = None,
                   why: str | None = None) -> str:
    """The dkim_verbose line of a signature; ``status``/``why`` are the values an ACL
    set for $dkim_verify_status/_reason, shown when they differ from the verdict."""
    parts = [f"DKIM: d={sig.domain or _UNSET} s={sig.selector or _UNSET}",
             f"c={sig.canon_headers}/{sig.canon_body} a={sig.algo}",
             f"b={len(sig.signature) * 8}"]
    if sig.identity:
        parts.append(f"i={sig.identity}")
    if sig.created:
        parts.append(f"t={sig.created}")
    if sig.expires:
        parts.append(f"x={sig.expires}")
    if sig.bodylength is not None:
        parts.append(f"l={sig.bodylength}")
    if status is not None and (status, why) != (sig.status, reason(sig)):
        parts.append(f"[{status} - {why or ''}]")
    else:
        parts.append(_verdict(sig))
    return " ".join(parts)


def _verdict(sig: Signature) -> str:
    if sig.status == "pass":
        return "[verification succeeded]"
    if sig.status == "invalid":
        return f"[invalid - {_INVALID.get(sig.detail, 'unspecified problem')}]"
    if sig.status == "fail":
        return f"[verification failed - {_FAIL.get(sig.detail, 'unspecified reason')}]"
    return "[not verified]"


#: The Authentication-Results comment for each detail of an invalid or failed signature.
_AUTHRES_INVALID = {Detail.PUBKEY_UNAVAILABLE: "tmperror (pubkey unavailable)",
                    Detail.PUBKEY_OVERLONG: "permerror (overlong public key record)",
                    Detail.PUBKEY_DNS_SYNTAX: "neutral (public key record import problem)",
                    Detail.PUBKEY_DER_SYNTAX: "neutral (public key record import problem)",
                    Detail.SIGNATURE_SYNTAX: "neutral (signature tag missing or invalid)",
                    Detail.VERSION: "neutral (unsupported DKIM version)"}
_AUTHRES_FAIL = {Detail.BODY: "fail (body hash mismatch; body probably modified in transit)",
                 Detail.MESSAGE: "fail (signature did not verify; headers probably "
                                 "modified in transit)"}


def authres(sigs: list[Signature]) -> str:
    """The ``dkim=`` parts of ${authresults} (Exim's wording), one per signature."""
    out = []
    for sig in sigs:
        if sig.status == "pass":
            verdict = "pass"
        elif sig.status == "none":
            verdict = "none"
        elif sig.status == "invalid":
            verdict = _AUTHRES_INVALID.get(sig.detail, "permerror (unspecified problem)")
        elif sig.detail is Detail.KEYSIZE:
            verdict = f"fail (public key too short: {sig.key_bits} bits)"
        else:
            verdict = _AUTHRES_FAIL.get(sig.detail, "fail (unspecified reason)")
        if verdict not in ("pass", "none"):
            verdict += "\n\t\t"
        part = f";\n\tdkim={verdict}"
        for tag, value in (("header.d", sig.domain), ("header.i", sig.identity),
                           ("header.s", sig.selector)):
            if value:
                part += f" {tag}={value}"
        out.append(part + f" header.a={sig.algo or sig.keytype + '-' + sig.hash_name}")
    return "".join(out)
