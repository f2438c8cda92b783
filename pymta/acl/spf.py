"""The ``spf`` and ``spf_guess`` ACL conditions (spec 58.4) and the ``$spf_*`` texts.

The check (pyspf, through :func:`pymta.lookups.spf.check_spf`) runs once per message
and kind; the condition is true when the result is in its list (``!word`` matches any
other result).  The texts are the ones Exim 4.96 writes with libspf2 (recorded from
exim4 -bh): ``$spf_header_comment`` "<host>: domain of <d> designates <ip> as
permitted sender" and so on, ``$spf_received`` a whole Received-SPF: header, and
``$spf_smtp_comment`` spf_smtp_comment_template with its SPF macros expanded and the
reason, for the results that refuse.  Unlike libspf2 (whose results then read
"(invalid)"), a broken record gives permerror and DNS trouble temperror.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pymta.lookups.spf import SpfCheck, check_spf

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")


@dataclass
class SpfState:
    """The SPF checks of one message: "spf" and "guess" results once made."""

    checks: dict[str, SpfCheck] = field(default_factory=dict)
    last: SpfCheck | None = None


def header_comment(check: SpfCheck, hostname: str, ip: str) -> str:
    """$spf_header_comment: what the result means, in libspf2's words."""
    source = f"domain of {check.domain}"
    text = {
        "pass": f"{source} designates {ip} as permitted sender",
        "fail": f"{source} does not designate {ip} as permitted sender",
        "softfail": f"transitioning {source} does not designate {ip} as permitted sender",
        "neutral": f"{ip} is neither permitted nor denied by {source}",
        "none": f"{source} does not provide an SPF record",
        "temperror": f"encountered temporary error during SPF processing of {source}",
        "permerror": f"error in processing during lookup of {source}: {check.explanation}",
    }[check.result]
    return f"{hostname}: {text}"


def received_spf(check: SpfCheck, comment: str, ip: str, helo: str) -> str:
    """$spf_received: the Received-SPF: header for the message."""
    return (f"Received-SPF: {check.result} ({comment}) client-ip={ip}; "
            f"envelope-from={check.envelope_from}; helo={helo};")


def smtp_comment(check: SpfCheck, template: str, ip: str, helo: str) -> str:
    """$spf_smtp_comment: for the results that refuse, the template with its SPF
    macros (%_ %{S} %{L} %{O} %{D} %{I} %{C} %{T} ...) expanded and the reason."""
    if check.result in ("pass", "none"):
        return ""
    import spf
    try:
        q = spf.query(i=ip, s=check.envelope_from, h=helo)
        text = q.expand(template)
    except Exception:       # pyspf's macro errors: the template as written
        text = template.replace("%_", " ")
    reason = "mechanism" if check.mechanism_matched else "default"
    return f"{text} : Reason: {reason}"


def authres_spf(check: SpfCheck, sender_domain: str, helo: str) -> str:
    """The spf part of ${authresults}."""
    part = f";\n\tspf={check.result}"
    if check.guessed:
        part += " (best guess record for domain)"
    if sender_domain:
        return part + f" smtp.mailfrom={sender_domain}"
    return part + (f" smtp.helo={helo}" if helo else " smtp.mailfrom=<>")


def run_spf(kind: str, state: SpfState, variables: dict[str, Any], hostname: str,
            guess_record: str, template: Callable[[], str]) -> str:
    """Check (once per message and kind) and set the ``$spf_*`` variables; the
    result.  ``kind`` is "spf" or "guess"; ``template`` gives spf_smtp_comment_template
    expanded."""
    ip = str(variables.get("sender_host_address") or "")
    helo = str(variables.get("sender_helo_name") or "")
    sender = str(variables.get("sender_address") or "")
    check = state.checks.get(kind)
    if check is None:
        if not ip:
            check = SpfCheck("none", False, sender.rpartition("@")[2] or helo,
                             sender or f"postmaster@{helo}", "no client address", False)
        else:
            check = check_spf(ip, sender, helo, hostname,
                              guess_record if kind == "guess" else None)
        state.checks[kind] = check
    state.last = check
    comment = header_comment(check, hostname, ip)
    variables.update(
        spf_result=check.result, spf_result_guessed="yes" if check.guessed else "no",
        spf_header_comment=comment, spf_received=received_spf(check, comment, ip, helo),
        spf_smtp_comment=smtp_comment(check, template(), ip, helo))
    return check.result
