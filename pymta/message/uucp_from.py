"""The UUCP "From " line that some programs put before a message given on standard
input to pass its envelope sender (Exim's uucp_from_pattern and uucp_from_sender), and
that some broken SMTP clients send before the headers (ignore_fromline_hosts,
ignore_fromline_local).

A first line that matches uucp_from_pattern is taken off the message; uucp_from_sender
is expanded with ``$1``... from the match to give the sender, which the caller then
uses as it would a -f address (a trusted caller's always, an untrusted caller's only
when untrusted_set_sender allows it; -f itself wins).  A first line that starts with
"From " but does not match stays: it begins the body, as in Exim.
"""
from __future__ import annotations

from typing import Any, overload

from pymta.config.values import main_opt
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError, ExpandFail
from pymta.match import compiled_regex
from pymta.message.body import FileBody
from pymta.taint import captures, taint

#: how much of a message in a file is read to find its first line
_HEAD = 16384


@overload
def take_from_line(config: Any, data: bytes, log: Any,
                   want_sender: bool = True) -> tuple[bytes, str | None]: ...
@overload
def take_from_line(config: Any, data: FileBody, log: Any,
                   want_sender: bool = True) -> tuple[FileBody, str | None]: ...


def take_from_line(config: Any, data: bytes | FileBody, log: Any,
                   want_sender: bool = True) -> tuple[bytes | FileBody, str | None]:
    """``data`` without a leading line that matches uucp_from_pattern, and the sender
    uucp_from_sender makes of it (None when there is no such line, when the sender is
    not wanted (-f gave one), or when the expansion failed: that is logged as Exim
    does).  A message in a file loses the line in place."""
    head = data[:_HEAD] if isinstance(data, bytes) else data.ends(0, _HEAD)[0]
    if not head.startswith(b"From "):
        return data, None
    pattern = main_opt(config, "uucp_from_pattern")
    if not pattern:
        return data, None
    end = head.find(b"\n")
    if end < 0 and len(head) < len(data):
        return data, None             # a first line too long to be a "From " line
    line = (head if end < 0 else head[:end]).decode("utf-8", "surrogateescape")
    match = compiled_regex(str(pattern), False).search(line)
    if match is None:
        return data, None
    cut = len(data) if end < 0 else end + 1
    rest: bytes | FileBody
    if isinstance(data, bytes):
        rest = data[cut:]
    else:
        data.drop_head(cut)
        rest = data
    if not want_sender:
        return rest, None
    template = str(main_opt(config, "uucp_from_sender") or "")
    ctx = ExpandContext(config=config)
    ctx.numbered = captures(match, taint(line), whole=line)     # from the message
    try:
        sender = expand_string(template, ctx)
    except (ExpandError, ExpandFail) as exc:
        log.main(f'expansion of "{template}" failed after matching "From " line: {exc}')
        return rest, None
    return rest, str(sender).strip()
