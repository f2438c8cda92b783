"""Mixin for :class:`~pymta.smtp.session.SmtpSession`: the per-message DMARC state and
the forensic reports it sends (:mod:`pymta.dmarc`)."""
from __future__ import annotations

import time
from typing import Any

from pymta.acl.spf import SpfState
from pymta.config.values import main_option
from pymta.dmarc.check import DmarcCheck, set_variables
from pymta.dmarc.evaluate import DkimOutcome, DmarcResult, SpfOutcome
from pymta.dmarc.forensic import build_report
from pymta.expand import expand_string
from pymta.expand.extra_items import AUTHRES_DKIM, AUTHRES_SPF
from pymta.expand.operators import op_addresses
from pymta.message.envelope import Envelope
from pymta.message.notices import dsn_from
from pymta.message.receive import receive_message


class MailAuthGlue:
    """DMARC per message: reset with each message, reports submitted as new messages."""

    config: Any
    log: Any
    ctx: Any
    notify: Any

    def dmarc_reset(self) -> None:
        self.dmarc_check = DmarcCheck()
        self.spf_state = SpfState()
        self.dkim_signatures: list[Any] = []
        for key in (AUTHRES_DKIM, AUTHRES_SPF):
            self.ctx.variables.pop(key, None)
        set_variables(self.ctx.variables, self.dmarc_check)

    # MailAuthFacts, for the DMARC check
    def spf_outcome(self) -> SpfOutcome | None:
        """The message's SPF check (the spf condition's, else spf_guess's), if any."""
        check = self.spf_state.checks.get("spf") or self.spf_state.checks.get("guess")
        return None if check is None else SpfOutcome(check.result, check.domain)

    def dkim_outcomes(self) -> list[DkimOutcome]:
        return [DkimOutcome(s.domain or "", s.selector or "", s.status)
                for s in self.dkim_signatures]

    def send_dmarc_report(self, result: DmarcResult) -> None:
        """Submit the forensic report of a failed check (dmarc_enable_forensic)."""
        v = self.ctx.variables
        if v.get("host_checking"):
            return                                  # -bh sends nothing
        sender, from_header = "", ""
        option = main_option(self.config, "dmarc_forensic_sender", None)
        try:
            if option:
                from_header = expand_string(str(option), self.ctx)
                sender = op_addresses(from_header).split(":")[0].strip()
        except Exception as exc:
            self.log.panic(f"DMARC: failed to expand dmarc_forensic_sender: {exc}")
        from_header = from_header or dsn_from(self.config, self.ctx, self.log)
        received = time.strftime("%a, %d %b %Y %H:%M:%S %z",
                                 time.localtime(self.ctx.clock.time()))
        report = build_report(result, from_header, v.get("sender_host_address", ""),
                              received, list(self.ctx.headers or ()))
        if report is None:
            return
        env = Envelope(sender=sender, recipients=list(report.recipients), protocol="local",
                       is_local_submission=True, sender_set_by_caller=True)
        try:
            msgid = receive_message(self.config, env, report.data, self.log)
        except Exception as exc:
            self.log.panic(f"failure to send DMARC forensic report to "
                           f"{', '.join(report.recipients)}: {exc}")
            return
        if self.notify is not None and msgid:
            self.notify(msgid)
