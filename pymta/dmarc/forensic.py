"""DMARC failure (forensic) reports, sent only after ``control = dmarc_enable_forensic``
to the ``ruf=`` mailto: addresses of the failing domain's record.

The report is a plain text message: what failed, for which domain and client, and the
headers of the message (not its body, which may be private).  Its From: is
``dmarc_forensic_sender`` (expanded) if set, else ``dsn_from``; the envelope sender
is the address in ``dmarc_forensic_sender``, else empty (as for bounces).
"""
from __future__ import annotations

from dataclasses import dataclass

from pymta.dmarc.evaluate import DmarcResult


@dataclass(frozen=True)
class ForensicReport:
    """A report ready to be submitted."""

    recipients: tuple[str, ...]
    data: bytes


def report_recipients(result: DmarcResult) -> tuple[str, ...]:
    """The mailto: addresses of the record's ruf= (size limits "!10m" dropped)."""
    record = result.record
    out = []
    for uri in record.ruf if record is not None else ():
        if uri.lower().startswith("mailto:"):
            address = uri[7:].split("!", 1)[0].strip()
            if "@" in address and not any(c in address for c in "\r\n<>,"):
                out.append(address.lower())
    return tuple(out)


def build_report(result: DmarcResult, from_header: str, client_ip: str, received: str,
                 headers: list[str]) -> ForensicReport | None:
    """The report for a failed check; None when the record names nobody to send to."""
    recipients = report_recipients(result)
    if not recipients:
        return None
    fields = [("Sender Domain", result.header_from), ("Sender IP Address", client_ip),
              ("Received Date", received),
              ("SPF Alignment", "yes" if result.spf_aligned else "no"),
              ("DKIM Alignment", "yes" if result.dkim_aligned else "no"),
              ("DMARC Results", result.status_text)]
    lines = [f"From: {from_header}", f"To: {', '.join(recipients)}",
             f"Subject: DMARC Forensic Report for {result.used_domain} from IP {client_ip}",
             "Auto-Submitted: auto-generated", "",
             f"A message with a From: address in {result.header_from} did not pass the",
             f"DMARC policy published for {result.used_domain}.", ""]
    lines += [f"{name}: {value}" for name, value in fields]
    lines += ["", "The headers of the message:", ""]
    lines += [h.rstrip("\n") for h in headers]
    return ForensicReport(recipients, ("\n".join(lines) + "\n").encode("utf-8",
                                                                     "surrogateescape"))
