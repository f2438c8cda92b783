"""Accepting a message onto the spool: headers, Received:, local fixups, -H/-D, "<=" log.

The SMTP session (or the local submission front end) collects the envelope and the data
and calls :func:`receive_message`.  It may call :func:`prepare_message` first (to let the
DATA ACL see the final headers and ``$message_exim_id``) and pass the result in.  Only
after :func:`receive_message` returns is the message safe on disk, so only then may the
caller answer 250.  Exceptions before the commit propagate (nothing is left on the spool):
the caller answers 451 and writes the paniclog.  Failures after it are only reported.
"""
from __future__ import annotations

import functools
import os
import pwd
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pymta import rfc2047
from pymta.acl.headers import insert_position, split_placement
from pymta.config.values import expanded_int
from pymta.config.values import main_option as _option
from pymta.debuglog import debug
from pymta.dsn import parse_ret
from pymta.log import log_selected
from pymta.logevents import Arrival
from pymta.logfields import SessionLogFacts

# Envelope is defined in pymta.message.envelope; these names are kept importable here.
from pymta.message.body import FileBody
from pymta.message.envelope import Envelope, RecipientParams  # noqa: F401
from pymta.message.headers import (
    ParsedMessage,
    find_header,
    has_resent_headers,
    header_flag,
    header_name,
    max_line_length,
    split_message,
)
from pymta.message.localfrom import apply_local_sender_rules
from pymta.message.received import build_received, sender_rcvhost, tod_full
from pymta.message.submission import apply_sender_rules, created_from, parse_submission
from pymta.message.transit_headers import mark_transit_headers, removed_transit_names
from pymta.metrics import counters as metrics
from pymta.rewrite import RewriteLog, Where, qualify_domains, rewrite_headers
from pymta.rewrite.reception import CollectedLog, rewrite_envelope
from pymta.rewrite.setup import main_rewriter, main_rules, qualify_recipient
from pymta.spool.files import configured_spool, set_message_queue, write_spool
from pymta.spool.hostaddr import format_address_port
from pymta.spool.ids import new_message_id
from pymta.spool.model import SpoolHeader, SpoolMessage, SpoolRecipient
from pymta.spool.tls import tls_spool_values
from pymta.taint import Tainted


class MessageTooBig(Exception):
    """The message is larger than message_size_limit (SMTP: 552)."""

    def __init__(self, size: int, limit: int):
        self.size = size
        self.limit = limit
        super().__init__(f"message too big: read={size} max={limit}")


@dataclass
class PreparedMessage:
    """The spool image of a message before it is written (see :func:`prepare_message`)."""

    spool: SpoolMessage
    data: bytes | FileBody                 # the message; a FileBody stays on disk
    body_start: int
    message_id_header: str | None          # Message-ID value for id= (None if created)
    size: int
    base_headers: int = 0                  # headers before the ACL-added ones
    # what rewriting logged, ("main"|"panic", text), written once the id is logged
    rewrite_log: list[tuple[str, str]] = field(default_factory=list)
    parsed: ParsedMessage | None = None    # how the data's header block was read

    def visible_headers(self) -> list[str]:
        """Header texts as ACLs see them ($h_, $message_headers): the live headers of
        the spool image, Received: and local fixups included."""
        return [h.text for h in self.spool.headers if h.flag != "*"]


@functools.lru_cache(maxsize=16)
def _login_of(uid: int) -> str:
    # Cached: a receiver asks for the same few uids for every message, and each
    # getpwuid() reads nsswitch.conf and the passwd file again.
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)




def _primary_hostname(config: Any) -> str:
    name = _option(config, "primary_hostname", "")
    if not name:
        import socket
        name = socket.getfqdn()
    return str(name)


def _expand_opt(config: Any, name: str, variables: dict[str, str]) -> str:
    """Expand an optional expandable option; unset, forced failure or error -> ""."""
    text = _option(config, name)
    if not text:
        return ""
    try:
        from pymta.expand import expand_string
        from pymta.expand.context import ExpandContext
        return str(expand_string(text, ExpandContext(config=config, variables=variables)))
    except Exception:
        return ""


def _message_id_header(config: Any, msgid: str, resent: bool,
                       variables: dict[str, str]) -> str:
    domain = _expand_opt(config, "message_id_header_domain", variables)
    domain = re.sub(r"[^A-Za-z0-9.-]", "-", domain) if domain else _primary_hostname(config)
    text = _expand_opt(config, "message_id_header_text", variables)
    extra = "." + re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", "-", text) if text else ""
    name = "Resent-Message-Id" if resent else "Message-Id"
    return f"{name}: <E{msgid}{extra}@{domain}>\n"


def _quote_phrase(name: str, config: Any) -> str:
    """The user's full name as the phrase of a created From: or Sender: line: quoted
    if need be, RFC 2047 encoded in headers_charset when it has characters outside
    printable ASCII (as Exim does, whatever print_topbitchars says)."""
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+", name):
        return name
    if not (name.isascii() and name.isprintable()):
        return rfc2047.encode(name, str(_option(config, "headers_charset", "") or "UTF-8"))
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _qualify_domain(config: Any) -> str:
    """qualify_domain (by default the primary host name)."""
    return str(_option(config, "qualify_domain", "") or _primary_hostname(config))


def reception_variables(config: Any, env: Envelope, msgid: str) -> dict[str, str]:
    """The Exim variables describing the message while it is received (for Received:
    and ACL expansions): sender_rcvhost, received_protocol, received_for, ..."""
    log_port = log_selected(config, "incoming_port")
    v: dict[str, str] = {
        "message_exim_id": msgid,
        "message_id": msgid,
        "received_protocol": env.protocol,
        "sender_address": env.sender,
        "primary_hostname": _primary_hostname(config),
    }
    if env.host_address:
        v["sender_host_address"] = env.host_address
        v["sender_rcvhost"] = sender_rcvhost(env.host_address, env.host_name, env.helo_name,
                                             env.ident, env.host_port, log_port)
        if env.host_port is not None:
            v["sender_host_port"] = str(env.host_port)
    if env.host_name:
        v["sender_host_name"] = env.host_name
    if env.helo_name:
        v["sender_helo_name"] = env.helo_name
    ident = env.ident
    if ident is None and env.is_local_submission:
        ident = env.originator_login or env.local_user
    if ident:
        v["sender_ident"] = ident
    if len(env.recipients) == 1:
        v["received_for"] = env.recipients[0]
    if env.authenticated_id:
        v["authenticated_id"] = env.authenticated_id
    if env.authenticated_sender:
        v["authenticated_sender"] = env.authenticated_sender
    if env.authenticator:
        v["sender_host_authenticated"] = env.authenticator
    if env.tls_cipher:
        v["tls_in_cipher"] = env.tls_cipher
    if env.tls_ver:
        v["tls_in_ver"] = env.tls_ver
    if env.tls_cipher_std:
        v["tls_in_cipher_std"] = env.tls_cipher_std
    if env.interface_address:
        v["received_ip_address"] = env.interface_address
        if env.interface_port is not None:
            v["received_port"] = str(env.interface_port)
    return v


def dsn_spool_values(mail_params: dict[str, str | None]) -> dict[str, str]:
    """The -dsn_envid and -dsn_ret lines for MAIL's ENVID= and RET= (Exim writes both
    with a single hyphen: they are never expanded)."""
    out: dict[str, str] = {}
    envid = mail_params.get("ENVID")
    if envid:
        out["dsn_envid"] = str(envid)
    ret = parse_ret(mail_params.get("RET") or "")
    if ret:
        out["dsn_ret"] = str(ret)
    return out


def spool_recipients(env: Envelope) -> list[SpoolRecipient]:
    """The envelope's recipients with their DSN NOTIFY bits and ORCPT."""
    out = []
    for i, address in enumerate(env.recipients):
        params = env.recipient_params[i] if i < len(env.recipient_params) else None
        if params is None:
            out.append(SpoolRecipient(address))
        else:
            out.append(SpoolRecipient(address, orcpt=params.orcpt,
                                      dsn_flags=params.dsn_flags))
    return out


def _header_qualify(config: Any, env: Envelope) -> dict[Where, str]:
    """Unqualified header addresses are qualified (then rewritten) when the sender may
    use unqualified addresses: local messages, hosts in *_unqualified_hosts."""
    return qualify_domains(
        _qualify_domain(config) if env.is_local_submission or env.allow_unqualified_sender
        else None,
        qualify_recipient(config)
        if env.is_local_submission or env.allow_unqualified_recipient else None)


def rewritten_view(config: Any, env: Envelope, headers: list[SpoolHeader],
                   log: RewriteLog | None = None) -> tuple[str, list[str], list[str]]:
    """The sender, recipients and live header texts as reception's rewriting and
    qualification will make them, without changing ``env``: what an ACL that runs
    before the message is prepared (acl_not_smtp) sees.  The rewrites are logged to
    ``log`` here (with env.msgid), and not again when the message is prepared."""
    rewriter = main_rewriter(config, log, reception_variables(config, env, env.msgid or ""),
                             env.msgid)
    env.rewrites_logged = log is not None
    sender, recipients = env.sender, list(env.recipients)
    if rewriter is not None:
        rewritten = rewrite_envelope(rewriter, sender, recipients,
                                     rewrite_sender=not env.sender_rewritten)
        sender, recipients = rewritten.sender, rewritten.recipients
    qualify = _header_qualify(config, env)
    if rewriter is not None or qualify:
        headers = rewrite_headers(rewriter, headers, qualify=qualify)
    return sender, recipients, [h.text for h in headers if h.flag != "*"]


def _keep_taint(source: str, text: str) -> str:
    """``text`` made from ``source``, tainted when ``source`` was."""
    return Tainted(text) if isinstance(source, Tainted) else text


def prepare_message(config: Any, envelope: Envelope,
                    data: bytes | FileBody) -> PreparedMessage:
    """Check the size, parse the headers, add Received: and the local fixups, and build
    the SpoolMessage (not yet written).  Raises MessageTooBig.  ``data`` may be a
    :class:`FileBody`: only its header block is read into memory."""
    env = envelope
    limit = env.size_limit
    if limit is None:
        limit = expanded_int(config, "message_size_limit")
    if limit and len(data) > limit:
        raise MessageTooBig(len(data), limit)

    now = time.time()
    started = env.received_time if env.received_time is not None else now
    msgid = env.msgid or new_message_id()
    parsed: ParsedMessage
    if isinstance(data, FileBody):
        _head, parsed = data.header_block()
        newlines, zeros, longest = data.scan(parsed.body_start)
        ends_open = not data.endswith_newline()
    else:
        parsed = split_message(data)
        newlines = data.count(b"\n", parsed.body_start)
        zeros = data.count(b"\0", parsed.body_start)
        longest = max_line_length(data)
        ends_open = not data.endswith(b"\n")
    # Delivery-date:, Envelope-to:, Return-path: are marked deleted as they are read
    headers = mark_transit_headers(parsed.headers, removed_transit_names(config))
    body_start = parsed.body_start

    # The rewrite section: the envelope for good, then the headers that came with the
    # message (before Received: is built, which names the rewritten sender).
    rewrite_log = CollectedLog()
    rewriter = main_rewriter(config, rewrite_log,
                             reception_variables(config, env, msgid), msgid) \
        if main_rules(config) else None
    if rewriter is not None and env.rewrites_logged:
        rewriter.log_rewrites = False       # rewritten_view logged them already
    rewrite_marks: list[SpoolHeader] = []
    if rewriter is not None:
        rewritten = rewrite_envelope(rewriter, env.sender, list(env.recipients),
                                     rewrite_sender=not env.sender_rewritten)
        env.sender, env.recipients = rewritten.sender, rewritten.recipients
        rewrite_marks = rewritten.marks
    header_qualify = _header_qualify(config, env)
    if rewriter is not None or header_qualify:
        headers = rewrite_headers(rewriter, headers, qualify=header_qualify)

    variables = reception_variables(config, env, msgid)
    received = build_received(config, variables, env.acl_vars, when=started)

    # Exim's "the" Message-Id is the first Resent-Message-Id of a message with resent-
    # headers, else the first Message-Id: only that one is flagged 'I' and logged (id=)
    resent = has_resent_headers(headers)
    id_name = "resent-message-id" if resent else "message-id"
    mid_hdr = find_header(headers, id_name)
    for h in headers:
        if h.flag == "I" or header_name(h.text).lower() in ("message-id", "resent-message-id"):
            h.flag = "I" if h is mid_hdr else " "
    # Message-ID value for the log's id= field (only when the message brought one)
    message_id_value = None
    if mid_hdr is not None:
        message_id_value = mid_hdr.text.split(":", 1)[1].strip()
        if message_id_value.startswith("<") and message_id_value.endswith(">"):
            message_id_value = message_id_value[1:-1]
        message_id_value = " ".join(message_id_value.split())

    final: list[SpoolHeader] = []
    if received is not None:
        final.append(SpoolHeader("P", received))
    final.extend(headers)
    primary = variables["primary_hostname"]
    qualify = str(_option(config, "qualify_domain", "") or primary)
    if (env.is_local_submission or env.submission_mode) and not env.suppress_local_fixups:
        submission = parse_submission(env.submission_control)
        # With resent- headers Exim adds Resent-Message-Id:, Resent-Date: (both put at the
        # top, after Received:, as RFC 5322 has a resent- set prepended) and Resent-From:
        # when the message lacks them, whatever Message-Id:, Date: or From: it has.
        top = 1 if received is not None else 0
        if mid_hdr is None:
            created_id = SpoolHeader("I", _message_id_header(config, msgid, resent, variables))
            if resent:
                final.insert(top, created_id)
            else:
                final.append(created_id)
        if find_header(headers, "resent-from" if resent else "from") is None:
            from_hdr = None
            login = env.originator_login or env.local_user
            if env.is_local_submission and login and not env.sender_set_by_caller:
                addr = f"{login}@{qualify}"
                name = env.originator_name
                from_hdr = f"From: {_quote_phrase(name, config)} <{addr}>\n" if name else \
                    f"From: {addr}\n"
            elif env.sender:
                name = env.sender_fullname
                from_hdr = f"From: {_quote_phrase(name, config)} <{env.sender}>\n" if name else \
                    f"From: {env.sender}\n"
            elif env.submission_mode:
                from_hdr = created_from(env.authenticated_id, submission, qualify)
            elif env.authenticated_id:
                from_hdr = f"From: {env.authenticated_id}@{qualify}\n"
            if from_hdr:
                created = [SpoolHeader("F", "Resent-" + from_hdr if resent else from_hdr)]
                # a created From: is rewritten like one that came with the message
                final.extend(created if rewriter is None
                             else rewrite_headers(rewriter, created))
        login = env.originator_login or env.local_user
        if (env.is_local_submission and not env.trusted_caller and login
                and not env.sender_set_by_caller):
            addr = f"{login}@{qualify}"
            name = env.originator_name
            apply_local_sender_rules(
                final, login, qualify,
                f"Sender: {_quote_phrase(name, config)} <{addr}>\n" if name
                else f"Sender: {addr}\n",
                bool(_option(config, "local_from_check", True)),
                _option(config, "local_from_prefix"), _option(config, "local_from_suffix"),
                retain=bool(_option(config, "local_sender_retain", False)))
        # the old envelope addresses follow the created Message-Id and From:, before
        # Date: (where Exim 4.96 has them)
        final.extend(rewrite_marks)
        rewrite_marks = []
        if not resent and find_header(headers, "date") is None:
            final.append(SpoolHeader(" ", f"Date: {tod_full(started)}\n"))
        elif resent and find_header(headers, "resent-date") is None:
            final.insert(top, SpoolHeader(" ", f"Resent-Date: {tod_full(started)}\n"))
        if env.submission_mode and not env.is_local_submission:
            return_path = apply_sender_rules(final, env.authenticated_id, submission, qualify,
                                             _option(config, "local_from_prefix"),
                                             _option(config, "local_from_suffix"))
            if return_path is not None:
                env.sender = return_path
                variables["sender_address"] = return_path
                rebuilt = build_received(config, variables, env.acl_vars, when=started)
                if received is not None and rebuilt is not None:
                    final[0] = SpoolHeader("P", rebuilt)    # envelope-from: the new one
    final.extend(rewrite_marks)
    base = len(final)
    _acl_header_changes(final, base, env.extra_headers, env.remove_headers)

    # -H variables in the order Exim writes them (files.py sorts known names anyway)
    svars: dict[str, str] = {}
    if env.helo_name:
        svars["helo_name"] = Tainted(env.helo_name) if env.host_address else env.helo_name
    # The client's and our own address come from the kernel, not from what the client
    # sent: untainted, as Exim writes them, unless a caller gave them (-oMa, -oMi).
    if env.host_address:
        svars["host_address"] = _keep_taint(
            env.host_address, format_address_port(env.host_address, env.host_port))
    if env.host_name:
        svars["host_name"] = Tainted(env.host_name)
    if env.authenticator:
        svars["host_auth"] = env.authenticator
    if env.interface_address:
        svars["interface_address"] = _keep_taint(
            env.interface_address,
            format_address_port(env.interface_address, env.interface_port))
    if variables.get("sender_ident"):
        ident = variables["sender_ident"]
        svars["ident"] = Tainted(ident) if env.host_address else ident
    svars["received_protocol"] = env.protocol
    linecount = newlines
    if len(data) > body_start and ends_open:
        linecount += 1
    svars["body_linecount"] = str(linecount)
    if zeros:
        svars["body_zerocount"] = str(zeros)
    svars["max_received_linelength"] = str(longest)
    svars.update(env.spam_vars)          # what a non-SMTP ACL's spam condition found
    auth_id = env.authenticated_id
    auth_sender = env.authenticated_sender
    local_sender = env.is_local_submission and not env.sender_set_by_caller
    if local_sender:
        login = env.originator_login or env.local_user
        auth_id = auth_id or login
        auth_sender = auth_sender or (f"{login}@{qualify}" if login else None)
    if auth_id:
        svars["auth_id"] = auth_id
    if auth_sender:
        svars["auth_sender"] = auth_sender
    if env.tls_cipher:
        svars.update(tls_spool_values(
            env.tls_cipher, env.tls_ver, env.tls_resumption,
            {"peercert": env.tls_peercert, "peerdn": env.tls_peerdn, "sni": env.tls_sni,
             "ourcert": env.tls_ourcert}))

    svars.update(dsn_spool_values(env.mail_params))

    flags = {"deliver_firsttime"}
    if local_sender:
        flags.add("local")
    if env.bounce_reference:
        # made while delivering another message (bounce, warning, autoreply): Exim's
        # child process for it gets -E, which marks it -localerror in -H
        flags.add("localerror")
    if env.is_local_submission or env.allow_unqualified_sender:
        flags.add("allow_unqualified_sender")
    if env.is_local_submission or env.allow_unqualified_recipient:
        flags.add("allow_unqualified_recipient")
    if env.tls_cipher and env.tls_certificate_verified:
        flags.add("tls_certificate_verified")
    if env.smtputf8:
        flags.add("smtputf8")
    if env.utf8_downconvert is not None:
        # Exim's spool names for control = utf8_downconvert (1 and -1; 0 is no line)
        flags |= {1: {"utf8_downcvt"}, -1: {"utf8_optdowncvt"}}.get(env.utf8_downconvert,
                                                                    set())

    uid = env.originator_uid if env.originator_uid is not None else os.getuid()
    gid = env.originator_gid if env.originator_gid is not None else os.getgid()
    login = env.originator_login or env.local_user or _login_of(uid)
    sec = int(started)
    usec = int(round((started - sec) * 1_000_000))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    done = time.time()
    svars = {"received_time_complete": f"{int(done)}.{int((done % 1) * 1_000_000):06d}",
             **svars}
    spool = SpoolMessage(
        id=msgid, originator_login=login, originator_uid=uid, originator_gid=gid,
        sender=env.sender, received_time=sec, received_time_usec=usec,
        variables=svars, flags=flags, acl_vars=dict(env.acl_vars),
        recipients=spool_recipients(env), headers=final,
        frozen_at=int(done) if env.frozen else None)
    size = spool.message_size(len(data) - body_start)
    return PreparedMessage(spool, data, body_start, message_id_value, size, base,
                           rewrite_log.entries, parsed)


def headers_after_removal(headers: list[SpoolHeader], remove: list[str]) -> list[SpoolHeader]:
    """A copy of ``headers`` with those an ACL's remove_header names marked deleted
    (for the rejectlog of a message that is refused, whose spool image never changes)."""
    copy = list(headers)
    _acl_header_changes(copy, len(copy), [], remove)
    return copy


def _acl_header_changes(headers: list[SpoolHeader], base: int, add: list[str],
                        remove: list[str]) -> None:
    """ACL remove_header marks matching headers among the first ``base`` (those the
    message brought, Received: and fixups) deleted; add_header texts go where their
    placement prefix says (the end by default), an identical line only once."""
    if remove:
        doomed = {n.strip().rstrip(":").lower() for n in remove}
        for i, h in enumerate(headers[:base]):
            if header_name(h.text).lower() in doomed:
                headers[i] = SpoolHeader("*", h.text)
    seen: set[str] = set()
    for line in add:
        placement, text = split_placement(line)
        if not text.endswith("\n"):
            text += "\n"
        if text in seen:
            continue
        seen.add(text)
        live = [i for i, h in enumerate(headers) if h.flag != "*"]   # deleted ones aside
        at = insert_position([headers[i] for i in live], placement,
                             lambda h: header_name(h.text))
        index = live[at] if at < len(live) else len(headers)
        headers.insert(index, SpoolHeader(header_flag(header_name(text)), text))


def apply_data_acl(prepared: PreparedMessage, envelope: Envelope, add: list[str],
                   remove: list[str]) -> None:
    """Put what the DATA ACL decided into the prepared spool image: its add_header and
    remove_header changes, the ACL variables as they are now, and a freeze."""
    envelope.extra_headers.extend(add)
    envelope.remove_headers.extend(remove)
    spool = prepared.spool
    _acl_header_changes(spool.headers, prepared.base_headers, add, remove)
    spool.acl_vars = dict(envelope.acl_vars)
    if envelope.frozen and spool.frozen_at is None:
        spool.frozen_at = int(time.time())
    prepared.size = spool.message_size(len(prepared.data) - prepared.body_start)


def arrival_log_fields(config: Any, env: Envelope, prepared: PreparedMessage) -> str:
    """The part of the "<=" line after the flag: "sender H=... U=... P=... S=... id=..."."""
    local_user = env.local_user or env.originator_login or prepared.spool.originator_login
    interface = (env.interface_address, env.interface_port or 0) \
        if env.interface_address else None
    return Arrival(
        sender=env.sender or "", protocol=env.protocol, size=prepared.size,
        bounce_reference=env.bounce_reference or "", host_address=env.host_address or "",
        host_name=env.host_name or "", host_dnssec=env.host_dnssec,
        helo_name=env.helo_name or "",
        host_port=env.host_port, interface=interface, ident=env.ident or "",
        local_user=local_user or "",
        session=SessionLogFacts(
            cipher=env.tls_cipher or "", certificate_verified=env.tls_certificate_verified,
            peerdn=env.tls_peerdn or "", sni=env.tls_sni or "",
            resumed=bool(env.tls_resumption & 16), authenticator=env.authenticator or "",
            auth_id=env.authenticated_id or "",
            mail_auth=env.authenticated_sender or ""),
        message_id=prepared.message_id_header, queue=env.queue_name,
        prdr=env.prdr, proxy=env.proxy_local_address or "",
        chunking=env.chunking, dkim=env.dkim_domain or "",
        pipelining=env.pipelining_field, body_type=env.body_type,
        receive_seconds=_receive_seconds(env),
        message_id_created=_created_message_id(prepared),
        subject=_live_header(prepared, "subject"),
        original_sender=env.sender or "",
        recipients=tuple(env.recipients if env.received_recipients is None
                         else env.received_recipients)).fields(config)


def _receive_seconds(env: Envelope) -> float:
    """How long the reception took: from DATA (or the first BDAT) for SMTP, from the
    start of reading for a local message."""
    if env.reception_started is not None:
        return time.monotonic() - env.reception_started
    if env.received_time is not None:
        return time.time() - env.received_time
    return 0.0


def _live_header(prepared: PreparedMessage, name: str) -> str | None:
    """The full text of the first live header called ``name`` in the spool image."""
    for h in prepared.spool.headers:
        if h.flag != "*" and header_name(h.text).lower() == name:
            return h.text
    return None


def _created_message_id(prepared: PreparedMessage) -> str:
    """The Message-ID (without <>) pymta added to a message that had none, else "" (also
    for an added Resent-Message-Id:, which Exim never logs)."""
    if prepared.message_id_header is not None:
        return ""
    text = next((h.text for h in prepared.spool.headers
                 if h.flag == "I" and header_name(h.text).lower() == "message-id"), None)
    if text is None:
        return ""
    value = text.split(":", 1)[1].strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def receive_message(config: Any, envelope: Envelope, data: bytes | FileBody, log: Any,
                    prepared: PreparedMessage | None = None,
                    after_spool: Callable[[str], bool] | None = None) -> str:
    """Spool a message durably, log its arrival, and return its id.

    ``after_spool(msgid)`` runs once the message is safely on the spool, before its
    arrival is logged (a cutthrough delivery); False means the message is gone again
    and its arrival is not logged.

    ``data`` has LF line endings and no dot-stuffing.  Raises MessageTooBig when it
    exceeds message_size_limit; any other exception means nothing was accepted (the
    spool files were removed).  Failures after the -H file is in place (logging the
    arrival) go to the paniclog and the id is returned: the message exists.
    """
    if prepared is None:
        prepared = prepare_message(config, envelope, data)
    spool_dir = configured_spool(config)
    spool = prepared.spool
    if envelope.queue_name:
        set_message_queue(spool_dir, spool.id, envelope.queue_name)
    data = prepared.data
    body = (data, prepared.body_start) if isinstance(data, FileBody) \
        else memoryview(data)[prepared.body_start:]
    if debug.from_control and debug.file_path:
        # "maintained across spool residency": the delivery goes on tracing to the file
        spool.variables["debug_selector"] = f"0x{debug.selector:x}"
        spool.variables["debuglog_name"] = debug.file_path
    write_spool(spool_dir, spool, body)
    if debug.receive:
        debug.printf(f"Data file written for message {spool.id}\n"
                     f"Size of message = {prepared.size}")
    # The -H file is in place: the message exists.  From here on a failure must not
    # reach the caller, who would refuse the message and get it sent again.
    if after_spool is not None:
        try:
            if not after_spool(spool.id):
                return spool.id
        except Exception as exc:
            report_after_commit(log, spool.id, "its cutthrough delivery", exc)
    try:
        fields = arrival_log_fields(config, envelope, prepared)
    except Exception as exc:
        fields = f"{envelope.sender or '<>'} S={prepared.size}"
        report_after_commit(log, spool.id, "building its log line", exc)
    metrics.received(envelope.protocol)
    if log is not None:
        for kind, text in prepared.rewrite_log:
            try:
                (log.panic if kind == "panic" else log.main)(text, spool.id)
            except Exception as exc:
                report_after_commit(log, spool.id, "writing the mainlog", exc)
        try:
            log.main(f"{envelope.arrival_mark} " + fields, spool.id)
        except Exception as exc:
            report_after_commit(log, spool.id, "writing the mainlog", exc)
        try:
            log.msglog(spool_dir, spool.id, "Received from " + fields)
        except Exception as exc:
            report_after_commit(log, spool.id, "writing its msglog", exc)
    return spool.id


def report_after_commit(log: Any, msgid: str, step: str, exc: BaseException) -> None:
    """A step after the message was spooled failed: say so in the paniclog, never raise.

    The message stays accepted (SMTP 250, exit status 0), so the sender does not send it
    again.  If even the paniclog cannot be written, standard error is the last resort.
    """
    text = f"message was received but {step} failed: {exc!r}"
    try:
        log.panic(text, msgid)
        return
    except Exception:
        pass        # Logger.panic writes the paniclog first; the mainlog may be the broken one
    try:
        sys.stderr.write(f"pymta: {msgid} {text}\n")
    except Exception:
        pass
