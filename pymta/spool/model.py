"""In-memory form of a spooled message's -H file (Exim 4.96 format)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SpoolHeader:
    """One header as stored in -H: Exim's one-character flag and the full text.

    ``flag`` is Exim's type letter: ' ' ordinary, '*' deleted, 'B' Bcc, 'C' Cc, 'F' From,
    'I' Message-ID, 'P' Received, 'R' Reply-To, 'S' Sender, 'T' To.  ``text`` is the whole
    header including the name, folded lines, and the final newline (LF line endings).
    """

    flag: str
    text: str


@dataclass
class SpoolRecipient:
    """One envelope recipient line of -H.

    ``errors_to``/``pno`` are set for "one_time" redirection children; ``orcpt`` and
    ``dsn_flags`` carry RFC 3461 DSN parameters (Exim writes them in the ``#3`` form).
    """

    address: str
    errors_to: str | None = None   # Exim's "one-time" errors address, rarely used
    pno: int = -1                  # parent number for one_time redirection
    orcpt: str | None = None       # DSN ORCPT= value
    dsn_flags: int = 0             # DSN NOTIFY= bits as Exim stores them


@dataclass
class SpoolMessage:
    """Everything in a -H file.  ``variables`` holds the ``-name value`` lines Exim writes
    (received_protocol, host_address, helo_name, body_linecount, ...), ``flags`` the bare
    ``-name`` lines (frozen is separate since it carries a time), and ``acl_vars`` the
    ``-aclc``/``-aclm`` variables by name ("acl_c0", "acl_m_foo").

    A variable whose value is a :class:`pymta.taint.Tainted` string is written with Exim's
    double hyphen (``--helo_name x``), and read back as Tainted.
    """

    id: str
    originator_login: str
    originator_uid: int
    originator_gid: int
    sender: str                                  # "" for the null sender (bounces)
    received_time: int
    warning_count: int = 0
    received_time_usec: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)  # e.g. "local", "deliver_firsttime", "manual_thaw"
    frozen_at: int | None = None
    acl_vars: dict[str, str] = field(default_factory=dict)
    nonrecipients: set[str] = field(default_factory=set)   # done: delivered or failed
    recipients: list[SpoolRecipient] = field(default_factory=list)
    headers: list[SpoolHeader] = field(default_factory=list)

    def pending_recipients(self) -> list[SpoolRecipient]:
        return [r for r in self.recipients if r.address not in self.nonrecipients]

    def header_text(self) -> str:
        """The live (not deleted) headers as they are delivered."""
        return "".join(h.text for h in self.headers if h.flag != "*")

    def message_size(self, body_size: int) -> int:
        """Exim's $message_size: live headers, the blank line, and ``body_size`` bytes."""
        return sum(len(h.text.encode("utf-8", "surrogateescape"))
                   for h in self.headers if h.flag != "*") + 1 + body_size
