"""The session's side of ``callout=hold``: the slot where recipient callouts keep their
connection, given up at the end of each message, or handed to the immediate delivery
(see :mod:`pymta.acl.callout_hold`)."""
from __future__ import annotations

from typing import Any

from pymta.acl.callout_hold import CalloutHoldSlot, HoldDeliverer
from pymta.spool.files import configured_spool

#: MAIL parameters the held transaction did not carry (nor any DSN request of a RCPT):
#: such a message takes the normal way (as for cutthrough delivery).
_NOT_ON_HELD_MAIL = frozenset(("PRDR", "SMTPUTF8", "RET", "ENVID"))


class CalloutHoldGlue:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`."""

    config: Any
    log: Any
    ctx: Any
    envelope: Any
    server: Any
    host_checking: bool
    hold_deliverer: HoldDeliverer | None = None
    _callout_hold: CalloutHoldSlot | None = None

    @property
    def callout_hold(self) -> CalloutHoldSlot:
        """Where ``verify = recipient/callout=...,hold`` keeps its connection."""
        if self._callout_hold is None:
            self._callout_hold = CalloutHoldSlot()
        return self._callout_hold

    def hold_release(self) -> None:
        """The end of a message (or of the session): QUIT a held connection."""
        if self._callout_hold is not None:
            self._callout_hold.release()

    def hold_deliver(self, msgid: str) -> bool:
        """The message ``msgid`` is spooled and due for immediate delivery: send it on
        the held connection when there is one that fits.  True when it was delivered."""
        slot = self._callout_hold
        if slot is None or slot.held is None:
            return False
        env = self.envelope
        if self.hold_deliverer is None or self.host_checking or env is None or \
                _NOT_ON_HELD_MAIL.intersection(env.mail_params or {}) or any(
                    p.dsn_flags or p.orcpt for p in env.recipient_params):
            slot.release()
            return False
        held = slot.take()
        assert held is not None
        if getattr(self.server, "rcpt_count", 0) != len(held.recipients):
            # As Exim: a message with a refused (or uncalled) RCPT is not sent on it.
            held.close()
            return False
        return self.hold_deliverer(self.config, self.log, configured_spool(self.config),
                                   self.ctx, msgid, held)
