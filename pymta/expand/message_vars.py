"""The message variables ($message_body, $reply_address, $body_linecount, ...) from a
message's header lines and body, for -bem, filter testing (-bf) and delivery."""
from __future__ import annotations

from email.utils import getaddresses
from typing import Any

from ..taint import Tainted

BODY_VISIBLE = 500      # message_body_visible's default


def body_visible(config: Any) -> tuple[int, bool]:
    """(message_body_visible, message_body_newlines) of ``config``."""
    main = getattr(config, "main", None)
    visible = getattr(main, "message_body_visible", BODY_VISIBLE) if main is not None \
        else BODY_VISIBLE
    newlines = bool(getattr(main, "message_body_newlines", False)) if main is not None \
        else False
    return max(0, int(visible if visible is not None else BODY_VISIBLE)), newlines


def body_variables(head: bytes, tail: bytes, body_size: int, visible: int = BODY_VISIBLE,
                   keep_newlines: bool = False) -> dict[str, str]:
    """$message_body / $message_body_end from the first and last bytes of the body: at
    most ``visible`` bytes each, NULs as spaces, and newlines as spaces too unless
    ``keep_newlines`` (message_body_newlines)."""
    def flat(data: bytes) -> str:
        text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        if not keep_newlines:
            text = text.replace("\n", " ")
        return text.replace("\x00", " ")
    return {"message_body": Tainted(flat(head[:visible])),
            "message_body_end": Tainted(flat(tail[-visible:] if visible else b"")),
            "message_body_size": str(body_size)}


def reply_address(headers: list[str]) -> str:
    """$reply_address: the Reply-To: header's contents, else From:'s, trimmed."""
    found: dict[str, str] = {}
    for h in headers:
        name, _, value = h.partition(":")
        key = name.strip().lower()
        if key in ("reply-to", "from") and key not in found:
            found[key] = " ".join(value.split())
    return Tainted(found.get("reply-to") or found.get("from") or "")


def header_addresses(headers: list[str], name: str) -> list[str]:
    """The addresses in every ``name`` header (for To:/Cc: checks)."""
    name = name.lower()
    values = [h.partition(":")[2] for h in headers
              if h.partition(":")[0].strip().lower() == name]
    return [a for _n, a in getaddresses(values) if a]


def split_message_file(raw: bytes) -> tuple[str | None, list[str], str]:
    """A message file as given to -bem/-bf: (sender from a leading "From " line,
    header lines with their newlines, body)."""
    text = raw.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    lines = text.split("\n")
    sender = None
    if lines and lines[0].startswith("From "):
        parts = lines.pop(0).split()
        if len(parts) > 1:
            sender = parts[1]
    headers: list[str] = []
    i = 0
    while i < len(lines) and lines[i] != "":
        if lines[i][:1] in (" ", "\t") and headers:
            headers[-1] += lines[i] + "\n"
        else:
            headers.append(lines[i] + "\n")
        i += 1
    return sender, headers, "\n".join(lines[i + 1:])


def message_file_variables(headers: list[str], body: str,
                           visible: int = BODY_VISIBLE) -> dict[str, str]:
    """Every message variable for a message read from a file (-bem, -bf).  Newlines in
    $message_body are spaces here whatever message_body_newlines says (as exim4 -bem
    shows them)."""
    raw_body = body.encode("utf-8", "surrogateescape")
    variables = body_variables(raw_body, raw_body, len(raw_body), visible)
    variables["body_zerocount"] = str(body.count("\x00"))
    size = sum(len(h.encode("utf-8", "surrogateescape")) for h in headers) + 1 + len(raw_body)
    variables["message_size"] = str(size)
    # exim4 -bem counts only the body lines that are not empty (checked with 4.96)
    body_lines = sum(1 for line in body.split("\n") if line)
    variables["message_linecount"] = str(len(headers) + 1 + body_lines)
    variables["body_linecount"] = str(body_lines)
    variables["reply_address"] = reply_address(headers)
    return variables
