"""The ``dmarc_status`` ACL condition: one DMARC check per message, in the DATA ACL.

As in Exim, the check runs when the first ``dmarc_status`` condition is met (the
``spf`` condition should have run before it) and is not repeated for the message.
It is skipped, with ``$dmarc_status`` ``off``, after ``control = dmarc_disable_verify``
or without ``dmarc_tld_file``; an authenticated client's messages are not checked
(``none``).  Messages whose domain publishes a record are logged in
``dmarc_history_file``; with ``control = dmarc_enable_forensic`` a failure is reported
to the record's ``ruf=`` mailto: addresses.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from pymta.config.values import main_option
from pymta.dmarc.evaluate import DkimOutcome, DmarcResult, SpfOutcome, evaluate, txt_records
from pymta.dmarc.history import append_history, history_entry
from pymta.dmarc.suffixes import load_suffix_list
from pymta.expand import expand_string
from pymta.expand.extra_items import AUTHRES_DMARC
from pymta.expand.lists import split_list
from pymta.expand.operators import op_addresses


class MailAuthFacts(Protocol):
    """What the SPF and DKIM checks of the message found (the SMTP session)."""

    def spf_outcome(self) -> SpfOutcome | None: ...

    def dkim_outcomes(self) -> list[DkimOutcome]: ...


ForensicSender = Callable[[DmarcResult], None]


@dataclass
class DmarcCheck:
    """The DMARC state of one message."""

    disabled: bool = False                  # control = dmarc_disable_verify
    forensic: bool = False                  # control = dmarc_enable_forensic
    result: DmarcResult | None = None
    notes: list[str] = field(default_factory=list)

    def default_status(self) -> str:
        return "off" if self.disabled else "none"


def from_domain(headers: Iterable[str]) -> str | None:
    """The RFC 5322.From domain: exactly one From: header naming one address."""
    froms = [h for h in headers if h.split(":", 1)[0].strip().lower() == "from"]
    if len(froms) != 1:
        return None
    addresses = split_list(op_addresses(froms[0].split(":", 1)[1].strip()))
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    return addresses[0].rpartition("@")[2].lower() or None


def set_variables(variables: dict[str, Any], check: DmarcCheck) -> None:
    """$dmarc_status and friends from the check (its defaults before it ran)."""
    r = check.result
    if r is None:
        variables.pop(AUTHRES_DMARC, None)
        variables.update(dmarc_status=check.default_status(), dmarc_status_text="",
                         dmarc_used_domain="", dmarc_domain_policy="")
    else:
        variables.update(dmarc_status=r.status, dmarc_status_text=r.status_text,
                         dmarc_used_domain=r.used_domain, dmarc_domain_policy=r.domain_policy)


def run_check(config: Any, ctx: Any, check: DmarcCheck, facts: MailAuthFacts | None,
              log: Any = None, forensic: ForensicSender | None = None) -> str:
    """The message's DMARC status, checking it on first use."""
    v = ctx.variables
    if check.result is not None:
        return check.result.status
    tld_file = str(main_option(config, "dmarc_tld_file", "") or "")
    if check.disabled or not tld_file:
        check.disabled = True
        set_variables(v, check)
        return "off"
    if v.get("sender_host_authenticated"):
        set_variables(v, check)
        return "none"
    try:
        suffixes = load_suffix_list(tld_file)
    except OSError as exc:
        if log is not None:
            log.panic(f"DMARC: cannot read dmarc_tld_file {tld_file}: {exc.strerror}")
        check.result = DmarcResult("temperror")
        set_variables(v, check)
        return "temperror"
    check.result = evaluate(from_domain(ctx.headers or ()),
                            facts.spf_outcome() if facts is not None else None,
                            facts.dkim_outcomes() if facts is not None else [],
                            txt_records, suffixes)
    set_variables(v, check)
    v[AUTHRES_DMARC] = f";\n\tdmarc={check.result.pass_fail}" + (
        f" header.from={check.result.header_from}" if check.result.header_from else "")
    if check.result.record is not None:
        _write_history(config, ctx, check.result, log)
        if check.forensic and forensic is not None and check.result.pass_fail == "fail":
            forensic(check.result)
    return check.result.status


def _write_history(config: Any, ctx: Any, result: DmarcResult, log: Any) -> None:
    option = main_option(config, "dmarc_history_file", None)
    if not option or ctx.variables.get("host_checking"):
        return
    try:
        path = expand_string(str(option), ctx)
    except Exception as exc:
        if log is not None:
            log.panic(f"DMARC: failed to expand dmarc_history_file: {exc}")
        return
    if not path:
        return
    v = ctx.variables
    entry = history_entry(result, v.get("message_exim_id", ""),
                          str(main_option(config, "primary_hostname", "") or ""),
                          int(time.time()), v.get("sender_host_address", ""),
                          v.get("sender_address_domain", ""))
    try:
        append_history(path, entry)
    except OSError as exc:
        if log is not None:
            log.panic(f"failure to create DMARC history file: {path}: {exc.strerror}")
