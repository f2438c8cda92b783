"""An address in the middle of routing and delivery (Exim's address_item).

A shared type: routers, transports, the ACL engine and delivery all pass these around, so
it lives below all of them and imports nothing from pymta but the leaf module pymta.dsn.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymta.dsn import NOTIFY_SUCCESS


def dequote_local_part(local_part: str) -> str:
    """A local part as routers and ACLs see it ($local_part): without double quotes,
    and a backslash standing for the character after it, inside quotes or not (``"a b"``
    is ``a b``, ``a\\@b`` is ``a@b``), as Exim splits an address."""
    if '"' not in local_part and "\\" not in local_part:
        return local_part
    out, i = [], 0
    while i < len(local_part):
        c = local_part[i]
        if c == "\\" and i + 1 < len(local_part):
            i += 1
            out.append(local_part[i])
        elif c != '"':
            out.append(c)
        i += 1
    return "".join(out)


_ATOM_SPECIALS = set('()<>@,;:\\".[] \t')


def quote_local_part(local_part: str) -> str:
    """A dequoted local part made fit for an address again: quoted (with backslashes
    before quotes and backslashes) when it is not a dot-atom."""
    words = local_part.split(".")
    if local_part and all(w and not any(c in _ATOM_SPECIALS or c < " " for c in w)
                          for w in words):
        return local_part
    return '"' + local_part.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Host:
    name: str
    address: str | None = None
    port: int | None = None
    mx: int = -1
    dnssec: bool = False        # its MX/SRV and address lookups were DNSSEC-authenticated


@dataclass
class Address:
    """One recipient being routed/delivered.

    ``address`` is the full address; ``local_part``/``domain`` its halves (lower-cased domain).
    ``parent`` points at the address this one was redirected from; ``unique`` is what goes
    into the -J journal and the -H non-recipients list (the original recipient for
    top-level addresses).  After routing, ``router`` and ``transport`` name the drivers and
    ``hosts`` the remote hosts; ``local_part_data``/``domain_data`` hold lookup results
    (untainted).  ``message`` and ``basic_errno`` describe the last failure or deferral.
    """

    address: str
    local_part: str = ""
    domain: str = ""
    parent: "Address | None" = None
    unique: str = ""
    router: Any = None
    transport: Any = None
    hosts: list[Host] = field(default_factory=list)
    local_part_data: str | None = None
    domain_data: str | None = None
    address_data: str | None = None
    errors_address: str | None = None
    prefix: str = ""
    suffix: str = ""
    message: str | None = None
    basic_errno: int = 0
    more_errno: int = 0
    special_action: str | None = None
    # What a bounce says about this address when it is not ``message`` (a pipe failure
    # bounces as "local delivery failed"; the details stay in the log), and the output
    # a pipe command produced that goes into the bounce (return_output).
    user_message: str | None = None
    returned_output: str | None = None
    extra_headers: list[str] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    # How many unseen routers made a copy of this address (-bt shows each copy as a
    # parent of the same name, as Exim does).
    unseen_level: int = 0
    # The last router deferred it for bad data it was given (Exim's router ERROR).
    router_error: bool = False
    # Set by the transport: "ok" | "defer" | "fail"; the host actually used (for H= in the
    # log) and the remote's final reply (for C= / bounce text).
    result: str | None = None
    host_used: Host | None = None
    # True when the smtp transport sent this message down a connection kept open from
    # an earlier message (Exim marks such deliveries with "*" after the IP address).
    continued_connection: bool = False
    smtp_confirmation: str | None = None
    sent_as: str = ""                   # the envelope form sent, when not ``address``
    chunking_used: bool = False         # the smtp transport sent it with BDAT (K)
    # For log_selector's delivery items: the bytes the transport wrote (S=, as Exim's
    # transport_count: an smtp delivery counts CRLFs, dot-stuffing and the final dot),
    # the local address and port of the smtp connection (I=), and the seconds the
    # transport took (DT=).
    delivered_size: int | None = None
    sending_interface: tuple[str, int] | None = None
    sending_proxy: tuple[str, int] | None = None          # socks_proxy used: PRX=
    delivery_time: float | None = None
    return_path: str | None = None      # the envelope sender the transport used (P=)
    # Set by the smtp transport for X=, CV=, DN= and A= on the delivery line: the
    # outgoing TLS session ($tls_out_cipher, ..._certificate_verified, ..._peerdn; empty
    # cipher: no TLS) and the client authenticator that succeeded (its name and the
    # expanded client_set_id).
    tls_cipher: str = ""
    tls_certificate_verified: bool = False
    tls_peerdn: str = ""
    tls_resumed: bool = False
    tls_dane: bool = False               # CV=dane: verified by DANE
    authenticator: str = ""
    auth_id: str = ""
    # Routing extras (routing engineer): "address" | "file" | "pipe" | "directory" for
    # redirect targets; $home from check_local_user / router_home_directory; whether the
    # router asked for the message to be frozen (self = freeze, host_find_failed = freeze);
    # the index of the router where routing of this address starts (redirect_router,
    # pass_router, unseen); the key used in the retry database for routing errors.
    kind: str = "address"
    home: str | None = None
    freeze: bool = False
    start_router: int = 0
    retry_key: str | None = None
    # It failed because its retry period ran out (Exim's af_retry_timedout): a bounce
    # message's address failing so is discarded ("error ignored"), not frozen.
    retry_timedout: bool = False
    # The transport deferred it for a fault of the configuration (Exim's PANIC return,
    # e.g. a pipe command that does not expand): no retry hint, so it waits on the
    # queue, never timing out into a bounce, and the deferral goes to the panic log.
    panic: bool = False
    # The addresses routed to the same place that were dropped as duplicates of this
    # one (Exim's dupof): Envelope-to: names them too.
    duplicates: list["Address"] = field(default_factory=list)
    # The user/group a local transport runs as when its own ``user`` is unset: set from
    # the passwd entry found by check_local_user (Exim's uid/gid "set by router").
    uid: int | None = None
    gid: int | None = None
    # Why a transport deferred/failed, as an Exim retry-rule error name ("refused",
    # "timeout", "rcpt_4xx", "quota", ...); set by transports when they know it.
    error_kind: str | None = None
    # From a filter file: the reply a mail/vacation command asked for (a
    # pymta.filter.ReplySpec, used by the autoreply transport instead of its options);
    # a pipe command to expand word by word when it runs; a save command's file mode.
    reply: Any = None
    expand_pipe: bool = False
    file_mode: int | None = None
    # From the router's generic options: the home and current directory a local
    # transport runs with (transport_home_directory, transport_current_directory), and
    # initgroups for the uid it gives.
    transport_home: str | None = None
    transport_cwd: str | None = None
    initgroups: bool = False
    # hide_child_in_errmsg: bounces name "an address generated from <top>" instead
    hide_in_errmsg: bool = False
    # shadow_transport: "ST=<name>" (and its error) for the end of the => line
    shadow_note: str = ""
    # RFC 3461 DSN: a recipient's NOTIFY bits and ORCPT (set on top-level addresses from
    # the spool; see dsn_request()), and whether the host that took it offered DSN
    # ("yes"/"no"; "" for local deliveries), which decides on a "relayed" success report.
    dsn_flags: int = 0
    dsn_orcpt: str | None = None
    dsn_aware: str = ""

    def dsn_request(self) -> tuple[int, str | None]:
        """The NOTIFY bits and ORCPT that apply to this address: its original
        recipient's.  A generated address does not pass SUCCESS on (as Exim, the
        report is made for the original recipient instead)."""
        top = self.top_parent()
        if top is self:
            return self.dsn_flags, self.dsn_orcpt
        return top.dsn_flags & ~NOTIFY_SUCCESS, top.dsn_orcpt

    def __post_init__(self) -> None:
        if not self.local_part and not self.domain:
            lp, at, dom = self.address.rpartition("@")
            if at:
                self.local_part, self.domain = dequote_local_part(lp), dom.lower()
            else:
                self.local_part = self.address
        if not self.unique:
            self.unique = self.address

    def top_parent(self) -> "Address":
        """The original recipient this address descends from."""
        addr = self
        while addr.parent is not None:
            addr = addr.parent
        return addr

    def unaffixed_local_part(self) -> str:
        """The local part in the case it was written in, less the affixes a router took
        off it."""
        whole = str(self.local_part)
        return whole[len(self.prefix):len(whole) - len(self.suffix)]

    def rcpt_address(self, include_affixes: bool = False) -> str:
        """The address an SMTP, LMTP or BSMTP envelope names (RCPT TO, a callout): as
        it came, case kept, less the affixes a router took off its local part unless
        ``include_affixes`` (the transport's rcpt_include_affixes), as Exim does."""
        address = str(self.address)
        at = address.rfind("@")
        if include_affixes or not (self.prefix or self.suffix) or at < 0:
            return address
        local = address[:at]
        return local[len(self.prefix):len(local) - len(self.suffix)] + address[at:]

    def log_name(self) -> str:
        """The address as Exim writes it after ``=>``: with ``<parent>`` when generated."""
        if self.parent is None:
            return self.address
        return f"{self.address} <{self.top_parent().address}>"
