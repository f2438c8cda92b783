"""``pymta -brw <address>``: how the rewrite section would change an address in each
place it can appear in an incoming message, printed as exim -brw prints it."""
from __future__ import annotations

from typing import Any

from pymta.acl.addrlist import parse_one_address
from pymta.rewrite import RewriteLog, Rewriter, Where, rewrite_header_text
from pymta.rewrite.setup import main_rewriter, qualify_recipient

# The header places in exim -brw's order, then the two envelope fields.
_HEADER_PLACES = (("sender", Where.SENDER), ("from", Where.FROM), ("to", Where.TO),
                  ("cc", Where.CC), ("bcc", Where.BCC), ("reply-to", Where.REPLY_TO))


def _has_at(text: str) -> bool:
    """An "@" outside double quotes (a quoted local part may contain one)."""
    quote = False
    for c in text:
        if c == '"':
            quote = not quote
        elif c == "@" and not quote:
            return True
    return False


def _header_lines(rewriter: Rewriter, text: str) -> list[str]:
    out = []
    for name, _where in _HEADER_PLACES:
        new = rewrite_header_text(rewriter, f"{name}: {text}")
        value = new.split(":", 1)[1].strip() if new is not None else text
        out.append(f"{name:>8}: {value}")
    return out


def rewrite_test(config: Any, args: list[str], log: RewriteLog | None = None
                 ) -> tuple[str, int]:
    """The text exim -brw prints for ``args[0]`` and the exit status."""
    if not args:
        return "-brw needs an address argument\n", 1
    rewriter = main_rewriter(config, log)
    if rewriter is None:
        return "No rewrite rules are defined\n", 0
    text = args[0]
    out: list[str] = []
    smtp_changed = False
    if rewriter.has_smtp_rules:
        new = rewriter.smtp(text, sender=True)
        if new != text:
            # shown as the address it yields, without the command's angle brackets
            shown = new[1:-1] if new.startswith("<") and new.endswith(">") else new
            out.append(f"    SMTP: {shown}")
            smtp_changed = True
    if not rewriter.has_other_rules:
        return "".join(line + "\n" for line in out), 0
    if not _has_at(text):
        text = f"{text}@{qualify_recipient(config)}"
    parsed = parse_one_address(text)
    if parsed.address is None:
        if not smtp_changed:
            error = parsed.error or "malformed address"
            out.append(f"Syntax error in {text}")
            out.append(error[:1].upper() + error[1:])
        return "".join(line + "\n" for line in out), 0
    out.extend(_header_lines(rewriter, text))
    out.append(f"env-from: {rewriter.address(parsed.address, Where.ENV_FROM).address}")
    out.append(f"  env-to: {rewriter.address(parsed.address, Where.ENV_TO).address}")
    return "".join(line + "\n" for line in out), 0
