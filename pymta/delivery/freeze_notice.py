"""freeze_tell: the notice sent to administrators when a message is frozen, as Exim
writes it ("Subject: Message frozen")."""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_option
from pymta.expand.lists import nonempty_items
from pymta.message.notices import dsn_from
from pymta.spool.model import SpoolMessage


def freeze_tell_recipients(config: Any) -> list[str]:
    """The comma-separated freeze_tell addresses (none when unset)."""
    text = main_option(config, "freeze_tell", None)
    return [a.strip() for a in nonempty_items(str(text), ",")] if text else []


def build_freeze_notice(config: Any, msg: SpoolMessage, recipients: list[str],
                        pending: list[str], reason: str | None, by_filter: bool,
                        log: Any = None) -> bytes:
    """The notice: which message, why (a system filter's text), who sent it, and the
    addresses still to be delivered."""
    out = ["Auto-Submitted: auto-replied\n",
           f"From: {dsn_from(config, log=log)}\n",
           f"To: {', '.join(recipients)}\n"]
    for h in msg.headers:
        if h.flag != "*" and h.text.lower().startswith("message-id:"):
            out.append(f"References: {' '.join(h.text.split(':', 1)[1].split())}\n")
            break
    out.append("Subject: Message frozen\n\n")
    if by_filter:
        out.append(f"Message {msg.id} has been frozen by the system filter.\n")
        if reason:
            out.append(f"{reason}.\n")
    else:
        out.append(f"Message {msg.id} has been frozen{reason or ''}.\n")
    out.append(f"The sender is <{msg.sender}>.\n\n"
               "The following address(es) have yet to be delivered:\n")
    out += [f"  {a}\n" for a in pending]
    return "".join(out).encode("utf-8", "surrogateescape")
