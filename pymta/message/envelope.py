"""The envelope of a message being received: one object from the SMTP edge to the spool.

The SMTP session fills it as the dialogue goes (MAIL: sender and parameters; RCPT: each
accepted recipient with its parameters; peer, TLS and AUTH facts; ACL variables and
controls), local submission fills it from the command line, and
:func:`pymta.message.receive.prepare_message` turns it plus the data into the spool
image.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecipientParams:
    """RCPT parameters of one recipient (RFC 3461 DSN: NOTIFY=, ORCPT=)."""

    notify: str | None = None
    orcpt: str | None = None

    @classmethod
    def from_rcpt(cls, params: dict[str, str | None]) -> "RecipientParams":
        """From the parameters the SMTP server parsed off a RCPT command."""
        return cls(notify=params.get("NOTIFY"), orcpt=params.get("ORCPT"))


@dataclass
class Envelope:
    """What the receiving side knows about a message besides its data.

    Remote (SMTP) messages fill the host_*/helo/interface fields; local submissions set
    ``is_local_submission`` and the originator (login/uid/gid, ``originator_name`` =
    the gecos full name for a constructed From:).  ``sender_set_by_caller`` is True when
    the sender came from -f (or a From_ line) rather than being the caller's own address.
    ``extra_headers`` are full header texts added by ACLs (add_header), appended at the
    end like Exim.  ``msgid`` may be preallocated by the caller (for $message_exim_id in
    the DATA ACL); ``received_time`` is when reception started (default: now).

    ``recipient_params`` runs parallel to ``recipients`` (use :meth:`add_recipient`):
    each recipient's RCPT parameters (DSN NOTIFY/ORCPT, kept but not yet used);
    ``mail_params`` are MAIL's (SIZE, BODY, ...).  The TLS and AUTH facts are filled in
    by those extensions (certificates as PEM text, as the spool keeps them).
    """

    sender: str
    recipients: list[str]
    protocol: str = "smtp"                 # smtp esmtp esmtpa esmtps esmtpsa local ...
    chunking: bool = False                 # the data came in BDAT chunks (K in the log)
    queue_name: str = ""                   # a named queue (the ACL "queue" modifier)
    host_address: str | None = None
    host_port: int | None = None
    host_name: str | None = None
    helo_name: str | None = None
    interface_address: str | None = None
    interface_port: int | None = None
    ident: str | None = None
    authenticated_id: str | None = None
    authenticated_sender: str | None = None
    authenticator: str | None = None       # $sender_host_authenticated (driver name)
    tls_cipher: str | None = None
    tls_ver: str | None = None
    tls_cipher_std: str | None = None
    tls_certificate_verified: bool = False
    tls_peerdn: str | None = None
    tls_sni: str | None = None
    tls_peercert: str | None = None        # PEM of the client certificate
    tls_ourcert: str | None = None         # PEM of the certificate we presented
    tls_resumption: int = 0                # $tls_in_resumption bits
    acl_vars: dict[str, str] = field(default_factory=dict)
    extra_headers: list[str] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)   # ACL remove_header names
    body_type: str | None = None           # MAIL BODY= parameter (7BIT/8BITMIME)
    size_limit: int | None = None          # message_size_limit already expanded by caller
    local_user: str | None = None          # login of the local caller (U= on <= lines)
    originator_login: str | None = None
    originator_uid: int | None = None
    originator_gid: int | None = None
    originator_name: str | None = None
    sender_fullname: str | None = None     # -F with -f: the phrase of a constructed From:
    is_local_submission: bool = False
    sender_set_by_caller: bool = False
    submission_mode: bool = False          # control = submission: local fixups for SMTP
    submission_control: str = "submission"  # with its options (/domain=, /name=, ...)
    suppress_local_fixups: bool = False
    allow_unqualified_sender: bool = False
    allow_unqualified_recipient: bool = False
    bounce_reference: str | None = None    # R=<id> for locally generated bounces
    frozen: bool = False
    msgid: str | None = None
    received_time: float | None = None
    mail_params: dict[str, str | None] = field(default_factory=dict)
    recipient_params: list[RecipientParams] = field(default_factory=list)

    def add_recipient(self, address: str, params: dict[str, str | None] | None = None) -> None:
        """Append a recipient with its RCPT parameters."""
        self.recipients.append(address)
        while len(self.recipient_params) < len(self.recipients) - 1:
            self.recipient_params.append(RecipientParams())
        self.recipient_params.append(RecipientParams.from_rcpt(params or {}))
