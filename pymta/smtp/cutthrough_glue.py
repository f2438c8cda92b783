"""The session's side of cutthrough delivery (``control = cutthrough_delivery``).

RCPT: the first recipient whose ACL sets the control opens the connection (through the
opener the daemon gave the session); further recipients follow it when they route the
same way, otherwise the cutthrough is given up and the message takes the normal way.
A recipient the destination refuses is refused to the client (550 Administrative
prohibition, or 451 for a temporary refusal), as Exim does.  After the data,
:meth:`CutthroughGlue.cutthrough_after_spool` sends the spooled message and turns the
destination's verdict into the client's.  See :mod:`pymta.delivery.cutthrough`.
"""
from __future__ import annotations

from typing import Any, Callable

from pymta.smtp.cutthrough_api import Cutthrough, CutthroughOpener, CutthroughResult
from pymta.smtp.server import Reply
from pymta.spool import files
from pymta.spool.files import configured_spool


class CutthroughGlue:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`."""

    config: Any
    log: Any
    ctx: Any
    host_checking: bool
    host_ident: Callable[..., str]
    cutthrough_opener: CutthroughOpener | None = None
    cutthrough: Cutthrough | None = None
    cutthrough_pass: bool = False        # defer=pass: a 4xx goes back to the client

    def _cutthrough_rcpt(self, sender: str, address: str, controls: list[str],
                         first: bool) -> Reply | None:
        """After the RCPT ACL accepted ``address``: None, or the refusal to send."""
        if self.cutthrough is not None:
            code = self.cutthrough.rcpt(address, self.ctx)
            if code == 0:
                self.cutthrough_cancel()       # another route: the normal way for all
                return None
        else:
            wanted = [c for c in controls if c.split("/")[0] == "cutthrough_delivery"]
            if not wanted or not first or self.cutthrough_opener is None \
                    or self.host_checking:
                return None                    # Exim ignores it after the first recipient
            self.cutthrough_pass = "defer=pass" in wanted[-1].split("/")[1:]
            self.cutthrough, code = self.cutthrough_opener(
                self.config, self.log, configured_spool(self.config), self.ctx, sender,
                address)
        if code // 100 == 5:
            self.log.reject(f"{self.host_ident()} F=<{sender}> rejected RCPT <{address}>")
            return Reply(550, "Administrative prohibition")
        if code // 100 == 4:
            self.log.reject(f"{self.host_ident()} F=<{sender}> temporarily rejected "
                            f"RCPT <{address}>")
            return Reply(451, "Temporary local problem - please try later")
        return None

    def cutthrough_cancel(self) -> None:
        """Give up the cutthrough (RSET, a new MAIL, the end of the session)."""
        cut, self.cutthrough = self.cutthrough, None
        if cut is not None:
            cut.close(quit=True)

    def cutthrough_after_spool(self, msgid: str, sender: str) -> tuple[str, Reply | None]:
        """The message ``msgid`` is on the spool: send it.  Returns what became of it:
        "delivered", "queued" (normal delivery follows), or "gone" with the reply for
        the client (the destination's refusal, or its 4xx with defer=pass)."""
        cut, self.cutthrough = self.cutthrough, None
        if cut is None:
            return "queued", None
        result: CutthroughResult = cut.deliver(msgid)
        first = cut.recipients[0] if cut.recipients else ""
        who = f"{self.host_ident()} {first} F=<{sender}>"
        if result.code // 100 == 2:
            cut.log_delivered(msgid, result.confirmation)
            return "delivered", None
        if result.code // 100 == 5:
            self.log.reject(f"{who} rejected after DATA: {result.details}", msgid)
            self._forget(msgid)
            return "gone", Reply(result.code, result.text)
        self.log.main(f"{who} tmp-reject from cutthrough after DATA: {result.details}",
                      msgid)
        if self.cutthrough_pass:
            self._forget(msgid)
            return "gone", Reply(result.code if result.code // 100 == 4 else 451,
                                 result.text)
        return "queued", None

    def cutthrough_done(self, msgid: str) -> None:
        """After the arrival line: the message went through, so nothing stays queued."""
        self._forget(msgid)
        self.log.main("Completed", msgid)

    def _forget(self, msgid: str) -> None:
        files.remove_message(configured_spool(self.config), msgid)
