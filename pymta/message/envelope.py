"""The envelope of a message being received: one object from the SMTP edge to the spool.

The SMTP session fills it as the dialogue goes (MAIL: sender and parameters; RCPT: each
accepted recipient with its parameters; peer, TLS and AUTH facts; ACL variables and
controls), local submission fills it from the command line, and
:func:`pymta.message.receive.prepare_message` turns it plus the data into the spool
image.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pymta.dsn import parse_notify


@dataclass
class RecipientParams:
    """RCPT parameters of one recipient (RFC 3461 DSN): ``dsn_flags`` are NOTIFY= as
    Exim's bits (:mod:`pymta.dsn`), ``orcpt`` the ORCPT= value as sent (xtext)."""

    dsn_flags: int = 0
    orcpt: str | None = None

    @classmethod
    def from_rcpt(cls, params: dict[str, str | None]) -> "RecipientParams":
        """From the parameters the SMTP server parsed off a RCPT command (NOTIFY= in the
        canonical form the server hands on)."""
        notify = params.get("NOTIFY")
        return cls(dsn_flags=parse_notify(notify) or 0 if notify else 0,
                   orcpt=params.get("ORCPT"))


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
    each recipient's RCPT parameters (DSN NOTIFY/ORCPT, written to the spool);
    ``mail_params`` are MAIL's (SIZE, BODY, RET, ENVID, ...).  The TLS and AUTH facts are filled in
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
    host_dnssec: bool = False           # $sender_host_dnssec: the name came by DNSSEC
    helo_name: str | None = None
    interface_address: str | None = None
    interface_port: int | None = None
    proxy_local_address: str | None = None  # the PROXY-protocol proxy the client came through
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
    spam_vars: dict[str, str] = field(default_factory=dict)   # -spam_* lines of -H
    extra_headers: list[str] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)   # ACL remove_header names
    body_type: str | None = None           # MAIL BODY= parameter (7BIT/8BITMIME)
    smtputf8: bool = False                 # MAIL SMTPUTF8 (RFC 6531): -smtputf8 in -H
    utf8_downconvert: int | None = None    # control = utf8_downconvert (1, 0, -1)
    prdr: bool = False                     # per-recipient replies were given (PRDR)
    size_limit: int | None = None          # message_size_limit already expanded by caller
    local_user: str | None = None          # login of the local caller (U= on <= lines)
    originator_login: str | None = None
    originator_uid: int | None = None
    originator_gid: int | None = None
    originator_name: str | None = None
    sender_fullname: str | None = None     # -F with -f: the phrase of a constructed From:
    is_local_submission: bool = False
    sender_set_by_caller: bool = False
    sender_rewritten: bool = False         # verify = sender already applied the rewrite rules
    rewrites_logged: bool = False          # the non-SMTP ACL's view logged the rewrites
    trusted_caller: bool = False           # a local caller Exim trusts (no Sender: rules)
    submission_mode: bool = False          # control = submission: local fixups for SMTP
    submission_control: str = "submission"  # with its options (/domain=, /name=, ...)
    suppress_local_fixups: bool = False
    allow_unqualified_sender: bool = False
    allow_unqualified_recipient: bool = False
    bounce_reference: str | None = None    # R=<id> for locally generated bounces
    frozen: bool = False
    msgid: str | None = None
    arrival_mark: str = "<="              # "(=" for a fakereject arrival
    dkim_domain: str | None = None         # first passing DKIM signer (DKIM= on "<=")
    received_time: float | None = None
    reception_started: float | None = None  # time.monotonic() at DATA/first BDAT: RT=
    pipelining_field: str = ""             # L/L-/L./L*... of the "<=" line (logarrival)
    # the recipients as received, before PRDR refused some ("for ..." on the "<=" line)
    received_recipients: list[str] | None = None
    mail_params: dict[str, str | None] = field(default_factory=dict)
    recipient_params: list[RecipientParams] = field(default_factory=list)

    def retain_recipients(self, keep: list[bool]) -> None:
        """Drop the recipients whose ``keep`` entry is false (PRDR refusals), with their
        parameters."""
        while len(self.recipient_params) < len(self.recipients):
            self.recipient_params.append(RecipientParams())
        pairs = [p for p, k in zip(zip(self.recipients, self.recipient_params), keep) if k]
        self.recipients = [a for a, _ in pairs]
        self.recipient_params = [rp for _, rp in pairs]

    def add_recipient(self, address: str, params: dict[str, str | None] | None = None) -> None:
        """Append a recipient with its RCPT parameters."""
        self.recipients.append(address)
        while len(self.recipient_params) < len(self.recipients) - 1:
            self.recipient_params.append(RecipientParams())
        self.recipient_params.append(RecipientParams.from_rcpt(params or {}))
