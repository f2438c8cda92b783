"""The UUCP "From " line that some programs put before a message given on standard
input to pass its envelope sender (Exim's uucp_from_pattern and uucp_from_sender).

A first line that matches uucp_from_pattern is taken off the message; uucp_from_sender
is expanded with ``$1``... from the match to give the sender, which the caller then
uses as it would a -f address (a trusted caller's always, an untrusted caller's only
when untrusted_set_sender allows it; -f itself wins).  A first line that starts with
"From " but does not match stays: it begins the body, as in Exim.
"""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_opt
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError, ExpandFail
from pymta.match import compiled_regex


def take_from_line(config: Any, data: bytes, log: Any,
                   want_sender: bool = True) -> tuple[bytes, str | None]:
    """``data`` without a leading line that matches uucp_from_pattern, and the sender
    uucp_from_sender makes of it (None when there is no such line, when the sender is
    not wanted (-f gave one), or when the expansion failed: that is logged as Exim
    does)."""
    if not data.startswith(b"From "):
        return data, None
    pattern = main_opt(config, "uucp_from_pattern")
    if not pattern:
        return data, None
    end = data.find(b"\n")
    line = (data if end < 0 else data[:end]).decode("utf-8", "surrogateescape")
    match = compiled_regex(str(pattern), False).search(line)
    if match is None:
        return data, None
    rest = b"" if end < 0 else data[end + 1:]
    if not want_sender:
        return rest, None
    template = str(main_opt(config, "uucp_from_sender") or "")
    ctx = ExpandContext(config=config)
    ctx.numbered = [line] + [g or "" for g in match.groups()]
    try:
        sender = expand_string(template, ctx)
    except (ExpandError, ExpandFail) as exc:
        log.main(f'expansion of "{template}" failed after matching "From " line: {exc}')
        return rest, None
    return rest, str(sender).strip()
