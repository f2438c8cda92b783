"""Message submission from the command line: ``pymta -bm``, ``-t`` and ``sendmail``.

The message comes on standard input.  Unless ``-i``/``-oi`` was given, a line holding a
single dot ends it.  With ``-t`` the recipients come from To:/Cc:/Bcc: (or the Resent-
versions when any Resent- header is present), Bcc: is removed, and addresses given on the
command line are taken out of that list (``extract_addresses_remove_arguments``).
"""
from __future__ import annotations

import email.utils
import os
import pwd
import re
import sys
from typing import Any, BinaryIO, Iterable

from pymta import rfc2047
from pymta.caller import (  # noqa: F401  (re-exported)
    caller_is_trusted,
    qualify,
    qualify_domains,
    untrusted_may_set_sender,
)
from pymta.cli.receive_timeout import ABANDONED, LOGGED, ReceiveTimeout, deadline, receive_timeout
from pymta.config.values import main_opt
from pymta.message.uucp_from import take_from_line
from pymta.originator import caller_originator
from pymta.smtp.limits import header_refusal
from pymta.smtp.server import address_too_long, too_long_message
from pymta.spool.hostaddr import split_leniently
from pymta.spool.ids import new_message_id
from pymta.taint import taint


def read_message(stream: BinaryIO, dot_ends: bool) -> bytes:
    """Standard input as LF-terminated bytes; stops at a lone "." line when ``dot_ends``."""
    out: list[bytes] = []
    for line in iter(stream.readline, b""):
        if line.endswith(b"\r\n"):
            line = line[:-2] + b"\n"
        if dot_ends and line in (b".\n", b"."):
            break
        out.append(line)
    data = b"".join(out)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def split_header_block(data: bytes) -> tuple[list[bytes], bytes]:
    """(header fields with their continuation lines, rest of message)."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        if line in (b"\n", b""):
            return fields, data[pos:]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif re.match(rb"^[!-9;-~]+:", line):
            fields.append(line)
        else:
            # Not a header line: the body starts here (Exim inserts a blank line).
            return fields, data[pos:]
        pos = end
    return fields, b""


def _field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].decode("ascii", "replace").strip().lower()


def extract_recipients(data: bytes, exclude: Iterable[str] = (),
                       remove_arguments: bool = True) -> tuple[list[str], bytes]:
    """-t: (recipients from the headers, message with Bcc: removed)."""
    fields, rest = split_header_block(data)
    names = [_field_name(f) for f in fields]
    resent = any(n.startswith("resent-") for n in names)
    wanted = ({"resent-to", "resent-cc", "resent-bcc"} if resent else {"to", "cc", "bcc"})
    bcc = "resent-bcc" if resent else "bcc"
    values: list[str] = []
    kept: list[bytes] = []
    for f, n in zip(fields, names):
        if n in wanted:
            text = f.split(b":", 1)[1].decode("utf-8", "replace")
            values.append(re.sub(r"\r?\n[ \t]", " ", text))
        if n != bcc:
            kept.append(f)
    recipients: list[str] = []
    for _name, addr in email.utils.getaddresses(values):
        addr = addr.strip()
        if addr and addr not in recipients:
            recipients.append(addr)
    excluded = {e.lower() for e in exclude}
    if remove_arguments:
        recipients = [r for r in recipients if r.lower() not in excluded]
    else:
        recipients += [e for e in exclude if e not in recipients]
    return recipients, b"".join(kept) + rest


def submit(config: Any, opts: Any, stdin: BinaryIO, log: Any) -> tuple[str | None, str]:
    """Read, build the envelope and spool the message.  Returns (msgid, error text)."""
    from pymta.message.receive import receive_message
    try:
        with deadline(receive_timeout(config)):
            data = read_message(stdin, opts.dot_ends)
    except ReceiveTimeout:
        log.main(LOGGED, new_message_id())
        return None, ABANDONED
    data, from_line_sender = take_from_line(config, data, log,
                                            want_sender=opts.sender is None)
    too_long = header_refusal(config, data)
    if too_long is not None:
        # as Exim: the message is refused, with Exim's mainlog line and error text
        why, limit = too_long
        try:
            who = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            who = str(os.getuid())
        what = "ridiculously long message header" if why == "long" \
            else "overlong message header line"
        log.main(f"{what} received from {who} (more than {limit} characters): "
                 "message abandoned")
        return None, (f"message header{'' if why == 'long' else ' line'} longer than "
                      f"{limit} characters received: message not accepted")
    qd, qr = qualify_domains(config)
    arg_addrs = _split_args(opts.args)
    for a in arg_addrs:
        if address_too_long(a):
            # As Exim: a bad address on the command line refuses the whole message.
            return None, f'bad recipient address "{a}": {too_long_message(a)}'
    args = [qualify(a, qr) for a in arg_addrs]
    if opts.extract:
        remove = bool(main_opt(config, "extract_addresses_remove_arguments", True))
        recipients, data = extract_recipients(data, args, remove)
        for r in [r for r in recipients if address_too_long(r)]:
            # As Exim: a bad address in the headers is reported and left out.
            recipients.remove(r)
            sys.stderr.write(f"pymta: invalid address: {r}: {too_long_message(r)}\n")
        recipients = [qualify(r, qr) for r in recipients]
    else:
        recipients = args
    if not recipients:
        return None, "no recipients found in message" if opts.extract else "no recipients given"
    # -f wins over a "From " line's sender; either is taken as the caller may set it
    env = local_envelope(config, opts,
                         opts.sender if opts.sender is not None else from_line_sender,
                         recipients)
    refusal = run_not_smtp_acl(config, env, data, log)
    if refusal is not None:
        return None, refusal
    try:
        msgid = receive_message(config, env, data, log)
    except PermissionError as exc:
        return None, spool_refused(exc)
    return msgid, ""


def spool_refused(exc: PermissionError) -> str:
    """Why a caller who may not write to the spool cannot submit on the command line
    (Exim's setuid binary always can; pymta's commands run as the caller)."""
    return (f"Failed to create spool file {exc.filename}: {exc.strerror}\n"
            "pymta: pymta is not setuid root: on the command line only root, exim_user "
            "and users who may write to the spool can submit mail; others can send it "
            "by SMTP to the local daemon")


def local_envelope(config: Any, opts: Any, given_sender: str | None,
                   recipients: list[str]) -> Any:
    """The envelope of a message submitted by the calling user: the sender is the
    caller's own address unless ``given_sender`` (-f, or MAIL in -bS) comes from a
    trusted caller, is empty, or is allowed by untrusted_set_sender; the protocol is
    -oMr/-p's or "local"."""
    from pymta.message.receive import Envelope
    qd, _qr = qualify_domains(config)
    uid, gid = os.getuid(), os.getgid()
    originator = caller_originator(config, uid, gid)
    login = originator.login
    sender = qualify(login, qd)
    set_by_caller = False
    trusted = caller_is_trusted(config, uid)
    if given_sender is not None:
        given = given_sender.strip()
        candidate = "" if given in ("<>", "") else qualify(given.strip("<>"), qd)
        if trusted or untrusted_may_set_sender(config, candidate, login):
            # Only a trusted caller's sender changes the headers' rules: an untrusted
            # one still gets Sender: and a From: made from the login (Exim 48.16).
            sender, set_by_caller = candidate, trusted
    fullname = opts.fullname if opts.fullname is not None else originator.name
    host_address, host_port = (split_leniently(opts.sender_host_address)
                               if opts.sender_host_address and trusted else (None, None))
    if host_address:
        host_address = taint(host_address)       # the caller's word (-oMa)
    # The other -oM options: only a trusted caller may describe a remote origin (Exim).
    host = dict(getattr(opts, "host_overrides", {}) or {}) if trusted else {}
    interface, interface_port = split_leniently(host["-oMi"]) if "-oMi" in host \
        else (None, None)
    if interface:
        interface = taint(interface)
    env = Envelope(
        sender=sender, recipients=recipients,
        protocol=opts.received_protocol or "local", local_user=login,
        originator_login=login, originator_uid=uid, originator_gid=gid,
        originator_name=fullname, is_local_submission=True,
        sender_set_by_caller=set_by_caller, trusted_caller=trusted, host_address=host_address,
        host_port=host_port,
        # Exim: a sender given with -f gets the -F name (never the gecos one) in From:
        sender_fullname=opts.fullname if set_by_caller else None,
        suppress_local_fixups=opts.suppress_local_fixups and trusted,
        host_name=host.get("-oMs"), ident=host.get("-oMt"), interface_address=interface,
        interface_port=interface_port, authenticator=host.get("-oMaa"),
        authenticated_id=host.get("-oMai"), authenticated_sender=host.get("-oMas"))
    return env


def run_not_smtp_acl(config: Any, env: Any, data: bytes, log: Any) -> str | None:
    """Run the non-SMTP ACLs (acl_not_smtp_start, acl_not_smtp_mime, acl_not_smtp)
    for a command-line message, as Exim does before spooling.

    Returns None to go on (headers the ACLs added are put on the envelope), or the text
    of the refusal: deny, defer and drop refuse the message, which is then not spooled.
    A discard empties the recipient list, so nothing is delivered.
    """
    if not any(main_opt(config, o) for o in ("acl_not_smtp", "acl_not_smtp_mime",
                                              "acl_not_smtp_start")):
        return None
    from pymta.acl.content import ContentScan
    from pymta.acl.notsmtp import run_not_smtp_acls
    from pymta.acl.spam import spool_spam_variables
    from pymta.expand.context import ExpandContext
    from pymta.message.headers import split_message
    from pymta.message.receive import rewritten_view
    from pymta.spool.ids import new_message_id
    parsed = split_message(data)
    env.msgid = env.msgid or new_message_id()      # names the files decode= writes
    # the ACLs see the message as rewritten (Exim rewrites as soon as the header is in)
    sender, recipients, headers = rewritten_view(config, env, parsed.headers, log)
    ctx = ExpandContext(config=config, acl_vars=env.acl_vars, headers=headers, variables={
        "sender_address": sender, "recipients": ", ".join(recipients),
        "recipients_count": str(len(recipients)), "received_protocol": env.protocol,
        "message_size": str(len(data)), "authenticated_id": env.local_user or "",
        "message_id": env.msgid, "message_exim_id": env.msgid})
    ctx.recipients = list(recipients)
    scan = ContentScan(headers, data[parsed.body_start:], env.msgid,
                       str(main_opt(config, "spool_directory") or ""),
                       check_rfc2047_length=rfc2047.check_length_of(config))
    result = run_not_smtp_acls(config, ctx, scan, log)
    spool_spam_variables(ctx.variables, env.spam_vars)
    if result.verdict == "accept":
        env.extra_headers.extend(result.add_headers)
        env.remove_headers.extend(result.remove_headers)
        return None
    if result.verdict == "discard":
        env.recipients.clear()
        return None
    text = result.message or ("temporarily rejected" if result.verdict == "defer"
                              else "rejected")
    from pymta.acl.logtargets import write_to
    write_to(log, result.log_reject_target or ("main", "reject"),
             f"F=<{env.sender}> rejected by non-SMTP ACL: {result.log_message or text}")
    return text


def _split_args(args: list[str]) -> list[str]:
    """Command-line recipients: each argument may hold a comma-separated list."""
    out: list[str] = []
    for a in args:
        for _name, addr in email.utils.getaddresses([a]):
            if addr:
                out.append(addr)
    return out
