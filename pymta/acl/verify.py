"""The message-header and client-host ``verify =`` conditions (spec 44.x "verify").

Each check returns ``None`` when it passes or the failure text Exim logs.  They work on
header lines as kept in :class:`~pymta.expand.context.ExpandContext` ``headers`` (full
texts ``"Name: value\\n"``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from pymta.acl.addrlist import NO_STRIP, AddressSyntax, ParsedAddress, parse_address_list

# Header lines that hold address lists, and which "unqualified" host option covers them.
SENDER_HEADERS = ("sender", "from", "reply-to", "resent-sender", "resent-from",
                  "resent-reply-to")
RECIPIENT_HEADERS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")
# The headers not_blind looks in (spec: To:/Cc: and their Resent- forms).
NOT_BLIND_HEADERS = ("to", "cc", "resent-to", "resent-cc")
# The headers header_sender takes candidate senders from (Exim also looks at the
# Resent- forms).
#: verify = header_sender looks at these, a group at a time (all Sender: lines, then
#: Reply-To:, then From:), each group in message order, as exim4 4.96 does
HEADER_SENDER_GROUPS = (("sender", "resent-sender"), ("reply-to",), ("from", "resent-from"))

# Exim's names for ACLs in error messages.
WHERE_NAMES = {"rcpt": "RCPT", "mail": "MAIL", "predata": "PREDATA", "mime": "MIME",
               "dkim": "DKIM", "data": "DATA", "prdr": "PRDR", "notsmtp": "non-SMTP",
               "auth": "AUTH", "connect": "connection", "etrn": "ETRN", "expn": "EXPN",
               "helo": "EHLO or HELO", "notquit": "NOTQUIT", "quit": "QUIT",
               "starttls": "STARTTLS", "vrfy": "VRFY", "wellknown": "WELLKNOWN",
               "mailauth": "MAILAUTH"}
# ACLs that run after the message (and so have headers to check).
MESSAGE_WHERES = {"data", "notsmtp", "mime", "dkim", "prdr"}


def split_header(line: str) -> tuple[str, str]:
    """(name, value) of one header line; the value keeps its folding."""
    name, _, value = str(line).partition(":")
    return name.strip(), value.rstrip("\n")


def _headers(headers: Iterable[str] | None, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for line in headers or ():
        name, value = split_header(line)
        if name.lower() in wanted:
            out.append((name, value))
    return out


def check_header_syntax(headers: Iterable[str] | None,
                        unqualified_ok: Callable[[str], bool],
                        strip: AddressSyntax = NO_STRIP) -> str | None:
    """``verify = header_syntax``: every address header must parse.

    ``unqualified_ok(kind)`` says whether unqualified addresses are allowed for ``kind``
    "sender" (Sender:/From:/Reply-To:) or "recipient" (To:/Cc:/Bcc:).
    """
    for name, value in _headers(headers, SENDER_HEADERS + RECIPIENT_HEADERS):
        kind = "sender" if name.lower() in SENDER_HEADERS else "recipient"
        for pa in parse_address_list(value, strip):
            error = pa.error
            if error is None and not pa.qualified and pa.address and not unqualified_ok(kind):
                error = "unqualified address not permitted"
            if error is not None:
                return f"{error}: failing address in \"{name}:\" header is: {pa.raw.strip()}"
    return None


def check_header_names_ascii(headers: Iterable[str] | None) -> str | None:
    """``verify = header_names_ascii``: header names are printable ASCII (33..126)."""
    for line in headers or ():
        name, _ = split_header(line)
        if any(not 33 <= ord(c) <= 126 for c in name):
            return f"Invalid character in header \"{name}\" found"
    return None


def _split_recipient(addr: str, case_insensitive: bool) -> tuple[str, str]:
    local, at, domain = str(addr).rpartition("@")
    if not at:
        local, domain = str(addr), ""
    return (local.lower() if case_insensitive else local), domain.lower()


def check_not_blind(headers: Iterable[str] | None, recipients: Iterable[str],
                    case_insensitive: bool = False, qualify_domain: str = "") -> str | None:
    """``verify = not_blind``: every envelope recipient appears in To:/Cc: (or Resent-)."""
    seen: set[tuple[str, str]] = set()
    for _, value in _headers(headers, NOT_BLIND_HEADERS):
        for pa in parse_address_list(value):
            if pa.address:
                addr = pa.address if "@" in pa.address or not qualify_domain \
                    else f"{pa.address}@{qualify_domain}"
                seen.add(_split_recipient(addr, case_insensitive))
    for rcpt in recipients:
        if _split_recipient(rcpt, case_insensitive) not in seen:
            return "bcc recipient detected"
    return None


def header_sender_candidates(headers: Iterable[str] | None
                             ) -> list[tuple[str, ParsedAddress]]:
    """(header name, address) for each address of Sender:, Reply-To: and From: (and
    Resent-Sender:, Resent-From:) in the order of :data:`HEADER_SENDER_GROUPS`; syntax
    errors are included (``error``)."""
    out: list[tuple[str, ParsedAddress]] = []
    for group in HEADER_SENDER_GROUPS:
        for name, value in _headers(headers, group):
            out.extend((name, pa) for pa in parse_address_list(value))
    return out


def header_sender_syntax_error(name: str, pa: ParsedAddress) -> str:
    """Exim's text for a header_sender address that does not parse."""
    return (f"syntax error in '{name}:' header when scanning for sender: "
            f"{pa.error} in \"{pa.raw.strip()}\"")


def recipients_of(ctx: Any, session: Any) -> list[str]:
    """The envelope recipients the DATA/non-SMTP ACL is deciding on."""
    rcpts = getattr(session, "accepted_rcpts", None)
    if rcpts is None:
        rcpts = ctx.recipients
    if rcpts is None:
        text = str(ctx.variables.get("recipients", "") or "")
        rcpts = [r.strip() for r in text.split(",") if r.strip()]
    return [str(r) for r in rcpts]
