"""What some ACL controls mean beyond their name (spec 44.19 "control"): where each may
be used, how long it lasts, and the reply ``fakereject``/``fakedefer`` stand for.

The session applies them (pymta.smtp.checks); the engine only checks the place.
"""
from __future__ import annotations

from pymta.acl.verify import WHERE_NAMES

_NOT_SMTP = frozenset(("notsmtp", "notsmtp_mime", "notsmtp_start"))
_MESSAGE = frozenset(("mail", "rcpt", "predata", "mime", "data"))

#: Controls that may be used only in some ACLs (None: any SMTP ACL).
CONTROL_WHERES: dict[str, frozenset[str] | None] = {
    "allow_auth_unadvertised": frozenset(("connect", "helo")),
    "caseful_local_part": frozenset(("rcpt",)),
    "caselower_local_part": frozenset(("rcpt",)),
    "fakedefer": _MESSAGE,
    "fakereject": _MESSAGE,
    "enforce_sync": None,
    "no_enforce_sync": None,
    "no_multiline_responses": None,
    "wellknown": frozenset(("wellknown",)),
}

#: Controls whose effect lasts the rest of the connection, whichever ACL sets them.
CONNECTION_CONTROLS = frozenset(("allow_auth_unadvertised", "enforce_sync",
                                 "no_callout_flush", "no_delay_flush", "no_enforce_sync",
                                 "no_multiline_responses"))

#: fakereject's (and fakedefer's) text when the control gives none (Exim 4.96's lines).
FAKE_TEXT = ("Your message has been rejected but is being kept for evaluation.\n"
             "If it was a legitimate message, it may still be delivered to the target\n"
             "recipient(s).")


class ControlPlaceError(Exception):
    """A control used in an ACL where it cannot apply (an ACL error: 451)."""


def check_control_place(name: str, where: str) -> None:
    """ACL error (as Exim's) for a control used in an ACL where it means nothing."""
    if name not in CONTROL_WHERES:
        return
    allowed = CONTROL_WHERES[name]
    if where in _NOT_SMTP if allowed is None else where not in allowed:
        place = {"notsmtp_start": "non-SMTP-start", "notsmtp_mime": "non-SMTP-MIME"}.get(
            where, WHERE_NAMES.get(where, where))
        raise ControlPlaceError(f'cannot use "control={name}" in {place} ACL')


def fake_reply(control: str) -> tuple[int, str] | None:
    """The reply a ``fakereject/<text>`` or ``fakedefer/<text>`` control asks for."""
    name, _, text = control.partition("/")
    name = name.strip()
    if name not in ("fakereject", "fakedefer"):
        return None
    return (550 if name == "fakereject" else 450), (text or FAKE_TEXT)
