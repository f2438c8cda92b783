"""The ACLs of a message received without SMTP (``sendmail``, ``-bm``, ``-t``): in
Exim's order ``acl_not_smtp_start``, ``acl_not_smtp_mime`` once per MIME part (when
the message has a Content-Type: header), then ``acl_not_smtp``.

pymta has read the message before the first of them runs (Exim runs
``acl_not_smtp_start`` before reading it); the start ACL is given the envelope only,
not the message.
"""
from __future__ import annotations

from typing import Any

from pymta.acl.content import ContentScan, run_mime_acl
from pymta.acl.engine import AclResult, run_acl
from pymta.acl.ratelimit import RatelimitCache
from pymta.config.values import main_option
from pymta.expand.context import ExpandContext

_MESSAGE_VARIABLES = ("message_size", "message_linecount", "message_body_size")


class NotSmtpSession:
    """What the ACL engine may ask of the receiving process: the log, the message's
    content (for regex, mime_regex and decode) and the ratelimit results so far."""

    log_prefix = ""

    def __init__(self, log: Any, scan: ContentScan):
        self.log = log
        self.content_scan: ContentScan | None = scan
        self.ratelimit_cache = RatelimitCache()


def run_not_smtp_acls(config: Any, ctx: ExpandContext, scan: ContentScan,
                      log: Any) -> AclResult:
    """Run the non-SMTP ACLs that are set; the first result other than "accept" (or
    the last "accept"), with the header changes of every ACL that accepted."""
    session = NotSmtpSession(log, scan)
    added: list[str] = []
    removed: list[str] = []

    def run(option: str, where: str, context: ExpandContext) -> AclResult:
        res = run_acl(config, main_option(config, option), where, context, session)
        if res.verdict == "accept":
            added.extend(res.add_headers)
            removed.extend(res.remove_headers)
        return res

    try:
        if main_option(config, "acl_not_smtp_start"):
            start_ctx = ExpandContext(config=config, acl_vars=ctx.acl_vars, variables={
                k: v for k, v in ctx.variables.items() if k not in _MESSAGE_VARIABLES})
            res = run("acl_not_smtp_start", "notsmtp_start", start_ctx)
            if res.verdict != "accept":
                return res
        if main_option(config, "acl_not_smtp_mime"):
            mime = run_mime_acl(scan, ctx.variables,
                                lambda: run("acl_not_smtp_mime", "notsmtp_mime", ctx))
            if mime is not None:
                return mime
        else:
            ctx.variables["mime_part_count"] = "-1"
        res = run("acl_not_smtp", "notsmtp", ctx) if main_option(config, "acl_not_smtp") \
            else AclResult("accept")
    finally:
        scan.cleanup()
        session.content_scan = None
    if res.verdict == "accept":
        res.add_headers, res.remove_headers = added, removed
    return res
