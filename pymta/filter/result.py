"""What running a filter produces, shared by the Exim and Sieve interpreters."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# The outcomes of a filter run (Exim's FF_* codes).
DELIVERED = "delivered"          # at least one significant delivery: the address is done
NOT_DELIVERED = "not_delivered"  # normal delivery goes on (generated items still happen)
DEFER = "defer"
FAIL = "fail"
FREEZE = "freeze"

_FIRST_LINE = re.compile(r"\A\s*#\s*(exim|sieve)\s+filter", re.IGNORECASE)


def bare_address(text: str) -> str:
    """The address in ``Name <address>`` -- what is between the last angle brackets --
    or the (stripped) text itself."""
    text = text.strip()
    lt, gt = text.rfind("<"), text.rfind(">")
    return text[lt + 1:gt].strip() if 0 <= lt < gt else text


def filter_kind(text: str) -> str | None:
    """"exim" or "sieve" when ``text`` starts with a filter's first line, else None."""
    m = _FIRST_LINE.match(text)
    return m.group(1).lower() if m else None


class FilterError(Exception):
    """A syntax or run-time error in a filter file; ``line`` is where it was noticed."""

    def __init__(self, message: str, line: int | None = None, where: str = "filter file",
                 tail: str = ""):
        self.message = message
        self.line = line
        self.where = where
        self.tail = tail
        super().__init__(self.text())

    def text(self) -> str:
        """The message as Exim writes it (with "near line N of filter file")."""
        if self.line is None:
            return self.message + self.tail
        where = f" of {self.where}" if self.where else ""
        return f"{self.message} near line {self.line}{where}{self.tail}"


@dataclass
class ReplySpec:
    """A ``mail``/``vacation`` command's message (or a Sieve vacation), already expanded.

    The autoreply transport builds the reply from these instead of its own options.
    ``file`` is read when the reply is sent (relative names are in the user's home);
    ``file_expand`` expands its lines.  ``to`` None means "to $reply_address".
    """

    to: str | None = None
    cc: str | None = None
    bcc: str | None = None
    from_: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    headers: str | None = None
    text: str | None = None
    file: str | None = None
    file_expand: bool = False
    return_message: bool = False
    log: str | None = None
    once: str | None = None
    once_repeat: str | None = None


@dataclass
class FilterAction:
    """One delivery set up by a filter.

    ``kind`` is "address", "file", "directory", "pipe" or "reply"; ``target`` is the
    address, path (for Sieve, the folder name: "inbox" is the user's mailbox) or
    command (a pipe command from an Exim filter is expanded word by word when it runs,
    ``expand_pipe``).  ``significant`` says whether it counts as
    delivering the message (``seen``/``unseen``); ``noerror`` makes its failures
    ignored; ``errors_to`` redirects them; ``mode`` is a ``save`` file's mode.
    """

    kind: str
    target: str
    significant: bool = True
    noerror: bool = False
    errors_to: str | None = None
    mode: int | None = None
    reply: ReplySpec | None = None
    expand_pipe: bool = False


@dataclass
class FilterResult:
    """The outcome of one run: ``status`` (DELIVERED, NOT_DELIVERED, DEFER, FAIL or
    FREEZE), its text for defer/fail/freeze, the actions in the order they were obeyed,
    the user variables $n0-$n9 as left, and (system filter) header changes."""

    status: str = NOT_DELIVERED
    message: str | None = None
    actions: list[FilterAction] = field(default_factory=list)
    user_vars: list[int] = field(default_factory=lambda: [0] * 10)
    headers_add: list[str] = field(default_factory=list)
    headers_remove: list[str] = field(default_factory=list)
