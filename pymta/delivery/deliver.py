"""Delivering one spooled message (Exim's deliver_message).

Sequence: lock the -D file, read -H and the -J journal, route every pending recipient,
check retry hints, run the transports (local deliveries first, then remote ones grouped by
transport and host list), journal each finished address before logging it, update retry
hints, send bounces, and finally either remove the message ("Completed") or rewrite -H.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import os
import pwd
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from pymta.address import Address
from pymta.config.values import main_option
from pymta.debuglog import debug
from pymta.delivery import lognames, outcome_events, warning
from pymta.delivery import retry as retrymod
from pymta.delivery.bounce import (
    auto_thaw_due,
    bounce_age_limit,
    bounce_recipient,
    bounce_sender_authentication,
    message_age,
    mta_identity,
    send_bounce,
)
from pymta.delivery.freeze_notice import build_freeze_notice, freeze_tell_recipients
from pymta.delivery.job import DeliveryJob
from pymta.delivery.parallel import run_parallel
from pymta.delivery.remote_order import sort_remote_domains
from pymta.delivery.success_dsn import build_success_report
from pymta.delivery.system_filter import SYSTEM_FILTER, SystemFilterOutcome, run_system_filter
from pymta.dsn import DSN_LASTHOP, wants_failure, wants_success
from pymta.errnos import EximErrno
from pymta.expand import ExpandError, ExpandFail, debugprint, expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.message_vars import body_variables, body_visible, reply_address
from pymta.filter.result import DEFER, DELIVERED, FAIL, FREEZE
from pymta.hints.misc import MiscDB
from pymta.hints.retry import RetryDB, host_key
from pymta.hints.wait import WaitDB, host_wait_key
from pymta.log import log_duration, log_selected
from pymta.logevents import Deferral, Delivery, Failure
from pymta.logfields import SessionLogFacts
from pymta.match import match_domain
from pymta.message.queue_policy import queue_only_file_exists
from pymta.metrics import counters as metrics
from pymta.osutil import can_switch_ids, switched_ids
from pymta.routing import address_context, route_address
from pymta.routing.route import HELD, QUEUE_DOMAIN
from pymta.spool import files, lock
from pymta.spool.files import Journal
from pymta.spool.hostaddr import delivery_host_variables
from pymta.spool.model import SpoolMessage, SpoolRecipient
from pymta.spool.tidy import set_aside_corrupt
from pymta.spool.tls import tls_in_variables
from pymta.taint import taint
from pymta.transports.smtp_dsn import passed_on
from pymta.truth import exim_true

# Texts for retry-time skips as Exim 4.96 logs them (checked with exim4).
RETRY_NOT_REACHED = "retry time not reached"
LOCAL_RETRY_NOT_REACHED = "Retry time not yet reached"
# Exim's ERRNO_RETRY_BASE: deferrals with an errno at or below it (retry times not
# reached, a transport's max_parallel, ...) are the ones log_selector's retry_defer covers.
RETRY_BASE = -51
#: Exim 4.96's text for a remote delivery left for the queue run by queue_smtp_domains
QUEUE_SMTP = "first-pass only routing due to -odqs, queue_smtp_domains or control=queue"
NO_HOST_DUE = "retry time not reached for any host"
NO_HOST_DUE_EXPIRED = "retry time not reached for any host after a long failure period"
RETRY_TIMEOUT = "retry timeout exceeded"
MAIL_LOOP = 'Too many "Received" headers - suspected mail loop'
NO_JOURNAL_ROOM = "delivery not attempted: no room to record it in the spool (-J)"


@dataclass
class DeliveryOutcome:
    """What one delivery attempt did.

    ``status``: "completed" (spool removed), "deferred" (something left), "locked"
    (another process holds the message), "frozen" (skipped or newly frozen), "missing",
    "corrupt" (the -H file has a format error: moved aside, see pymta.spool.tidy), or
    "unreadable" (a -H file in Exim's format that pymta cannot read: left where it is).
    """

    status: str
    msgid: str = ""
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    bounce_ids: list[str] = field(default_factory=list)
    #: the first host of each remote delivery not attempted (local_only: -ql, -qq)
    waiting_hosts: list[str] = field(default_factory=list)
    #: (transport, wait key) of hosts this attempt delivered to and left connected:
    #: messages waiting for them can follow down the same connection
    open_hosts: list[tuple[str, str]] = field(default_factory=list)


def deliver_message(config: Any, msgid: str, log: Any, *, forced: bool = False,
                    manual: bool = False, spool_dir: str | None = None,
                    deliver_bounces: bool = True, give_up: bool = False,
                    user: str = "", queue: str | None = None,
                    local_only: bool = False, continued: bool = True,
                    at_reception: bool = False) -> DeliveryOutcome:
    """Deliver (or try to) the message ``msgid``; see the module docstring.

    ``forced`` ignores retry times (-qf, -M); ``manual`` also delivers frozen messages
    (-M).  Bounces generated here are delivered at once unless ``deliver_bounces`` is
    false (the caller then gets their ids in ``bounce_ids``).  ``give_up`` (-Mg, by
    ``user``) fails every undelivered recipient without trying it and bounces them.
    ``queue`` names the named queue the message is in; ``local_only`` (-ql, and the
    first pass of -qq) makes only local deliveries and leaves remote ones untried.
    ``at_reception`` marks the delivery started when the message arrived, which leaves
    addresses in queue_domains for a queue run.
    With ``continued`` (the default), messages waiting for a host this delivery
    reached are delivered next, down the connection the smtp transport keeps open.
    """
    configured = files.configured_spool(config)
    spool_dir = spool_dir or configured
    if queue is not None:
        files.set_message_queue(spool_dir, msgid, queue)
    if not os.path.exists(files.header_path(spool_dir, msgid)):
        return DeliveryOutcome("missing", msgid)
    held = lock.lock_message(spool_dir, msgid)
    if held is None:
        if manual and log_selected(config, "skip_delivery"):
            log.main("Spool file is locked (another process is handling this message)", msgid)
        return DeliveryOutcome("locked", msgid)
    try:
        try:
            msg = files.read_header(spool_dir, msgid)
        except FileNotFoundError:
            return DeliveryOutcome("missing", msgid)
        except files.SpoolFormatError as exc:
            if set_aside_corrupt(spool_dir, msgid, exc, log, held=held):
                return DeliveryOutcome("corrupt", msgid)
            return DeliveryOutcome("unreadable", msgid)    # left for the MTA that wrote it
        journal = files.read_journal(spool_dir, msgid)
        run = MessageDelivery(config, msg, log, spool_dir, forced=forced, manual=manual,
                              journal=journal, give_up=give_up, local_only=local_only,
                              at_reception=at_reception)
        if give_up:
            log.main(f"cancelled by {user}", msgid)
        traced = debug.resume_from_spool(msg.variables.get("debug_selector"),
                                         msg.variables.get("debuglog_name"))
        if debug.deliver:
            debug.printf(f"delivering message {msgid}")
        try:
            outcome = run.run()
        finally:
            run.close()
            if traced:
                debug.end_control()
    finally:
        held.release()
    if continued:
        deliver_waiting(config, outcome, log, spool_dir)
    if deliver_bounces:
        for bid in outcome.bounce_ids:
            try:
                deliver_message(config, bid, log, spool_dir=spool_dir, deliver_bounces=False)
            except Exception as exc:  # the bounce stays queued for the next queue run
                log.panic(f"delivery of bounce {bid} failed: {exc}")
    return outcome


CONTINUE_MAX = 100      # waiting messages delivered after one successful delivery


def deliver_waiting(config: Any, outcome: DeliveryOutcome, log: Any,
                    spool_dir: str | None = None) -> int:
    """Deliver messages recorded in wait-<transport> for the hosts ``outcome`` reached
    (they go down the same, still open, connection); returns how many were tried."""
    spool = spool_dir or files.configured_spool(config)
    tried = 0
    for transport, key in outcome.open_hosts:
        for msgid in WaitDB(spool, transport, log).take(key, CONTINUE_MAX):
            if msgid == outcome.msgid:
                continue
            try:
                deliver_message(config, msgid, log, spool_dir=spool_dir, continued=False)
            except Exception as exc:  # the message stays queued for the next run
                log.panic(f"{msgid} continued delivery failed: {exc!r}")
            tried += 1
    return tried


class MessageDelivery:
    """One delivery attempt for a message that is already locked and read."""

    def __init__(self, config: Any, msg: SpoolMessage, log: Any, spool_dir: str, *,
                 forced: bool = False, manual: bool = False, journal: list[str] | None = None,
                 retry_db: Any = None, now: float | None = None, give_up: bool = False,
                 local_only: bool = False, at_reception: bool = False):
        self.config = config
        self.local_only = local_only
        self.at_reception = at_reception      # queue_domains applies
        self.queue_name = files.message_queue(spool_dir, msg.id)
        self.give_up = give_up
        self.msg = msg
        self.log = log
        self.spool_dir = spool_dir
        self.forced = forced
        self.manual = manual
        self.journal = list(journal or [])
        self.now = int(time.time() if now is None else now)
        self._retry_db = retry_db
        self.first_delivery = "deliver_firsttime" in msg.flags
        self.outcome = DeliveryOutcome("deferred", msg.id)
        self.failed: list[Address] = []
        self.success_reported: list[Address] = []   # NOTIFY=SUCCESS, reported from here
        self.deferred: list[Address] = []
        self.done_uniques: list[str] = []
        # -J: room reserved before any transport runs (see spool.files.Journal)
        self.journal_file = Journal(spool_dir, msg.id)
        self.journal_error: OSError | None = None   # set once a -J write has failed
        self.unjournaled: list[str] = []     # finished, but not yet in -J
        #: set when this delivery freezes the message: what the "Frozen" line adds
        #: (Exim's frozen_info: "" for a router's or transport's freeze)
        self.frozen_info: str | None = None
        self.process_ids = (os.geteuid(), os.getegid())
        self._context: ExpandContext | None = None
        self.ignore_errors = False
        self.timeout_frozen = False
        # received_headers_max: more Received: headers than this means a mail loop, and
        # every recipient fails (and is bounced) instead of being routed again.
        self.mail_loop = received_count(msg) > int(
            main_option(config, "received_headers_max", 30) or 0)
        self.seen: set[tuple[str, Any]] = set()
        self.copies_left: collections.Counter[str] = collections.Counter()
        self.interval_max, self.data_expire = retrymod.config_limits(config)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the -J file, and the retry database if this delivery opened it
        (workers live long)."""
        self.journal_file.close()
        if isinstance(self._retry_db, RetryDB):
            self._retry_db.close()
        self._retry_db = None

    @property
    def retry_db(self) -> RetryDB:
        if self._retry_db is None:
            self._retry_db = RetryDB(self.spool_dir, log=self.log)
        elif not isinstance(self._retry_db, RetryDB):
            self._retry_db = RetryDB(self.spool_dir, self._retry_db)
        return self._retry_db

    def _log(self, text: str, msglog_text: str | None = None,
             about: Address | None = None) -> None:
        """A main-log (and message-log) line; none about an address whose router or
        transport has disable_logging set."""
        if about is not None and self._logging_disabled(about):
            return
        self.log.main(text, self.msg.id)
        self._msglog(text if msglog_text is None else msglog_text)

    def _retry_defer_logged(self, text: str, about: Address | None = None) -> None:
        """A deferral for a retry time not reached (or another errno at or below
        RETRY_BASE), as Exim 4.96 logs it: in the main log unless log_selector has
        -retry_defer, in the message log only on the first delivery attempt."""
        if about is not None and self._logging_disabled(about):
            return
        if log_selected(self.config, "retry_defer"):
            self.log.main("== " + text, self.msg.id)
        if self.first_delivery:
            self._msglog(text)

    def _logging_disabled(self, a: Address) -> bool:
        for obj in (self._router_obj(a.router), self._transport_obj(a.transport)):
            if obj is not None and "disable_logging" in obj.options and \
                    obj.opt("disable_logging") is True:
                return True
        return False

    def _msglog(self, text: str, stamp: bool = True) -> None:
        msglog = getattr(self.log, "msglog", None)
        if msglog is not None:
            try:
                if stamp:
                    msglog(self.spool_dir, self.msg.id, text)
                else:
                    msglog(self.spool_dir, self.msg.id, text, stamp=False)
            except OSError:
                pass

    def _journal(self, unique: str) -> None:
        """Record a finished address in -J (fsynced) before it is logged.

        If the write fails the outcome is kept in memory (and written to -H at the end),
        and no further transport is run for this message (see _hold_for_spool)."""
        self.msg.nonrecipients.add(unique)
        self.done_uniques.append(unique)
        try:
            self.journal_file.append(unique)
        except OSError as exc:
            self.unjournaled.append(unique)
            if self.journal_error is None:
                self.journal_error = exc
                self.log.panic(f"failed to write -J journal: {exc.strerror or exc}: "
                               "no further deliveries in this attempt", self.msg.id)

    def base_context(self) -> ExpandContext:
        m = self.msg
        variables = {
            "message_id": m.id,
            "sender_address": taint(m.sender) if m.sender else "",
            "return_path": taint(m.sender) if m.sender else "",
            "received_protocol": m.variables.get("received_protocol", ""),
            "sender_helo_name": taint(m.variables.get("helo_name", "")),
            "sender_ident": m.variables.get("ident", ""),
            "authenticated_id": m.variables.get("auth_id", ""),
            "authenticated_sender": m.variables.get("auth_sender", ""),
            "message_age": str(message_age(m, self.now)),
            "queue_name": self.queue_name,
            "first_delivery": "yes" if self.first_delivery else "no",
        }
        variables.update(delivery_host_variables(m.variables))
        # what the spam condition found, saved with the message (not $spam_report)
        variables.update({name: m.variables[name] for name in
                          ("spam_bar", "spam_score", "spam_score_int") if name in m.variables})
        variables.update(tls_in_variables(m.variables, m.flags))
        headers = [h.text for h in m.headers if h.flag != "*"]
        variables.update(self._message_variables(headers))
        return ExpandContext(self.config, variables, dict(m.acl_vars), headers,
                             log=self.log)

    def context(self) -> ExpandContext:
        """The message's expansion context for this attempt, built once (it reads the
        -D file) and shared by routing, bounces, warnings and retry keys; the system
        filter's header changes and $sn0-$sn9 live in it."""
        if self._context is None:
            self._context = self.base_context()
        return self._context

    def _message_variables(self, headers: list[str]) -> dict[str, str]:
        """$message_size, $message_body, $reply_address, ... (filters use them)."""
        m = self.msg
        out = {"reply_address": reply_address(headers), "message_exim_id": m.id,
               "manually_thawed": "yes" if "manual_thaw" in m.flags else "no",
               "message_smtputf8": "yes" if "smtputf8" in m.flags else "no"}
        for name in ("body_linecount", "body_zerocount"):
            out[name] = str(m.variables.get(name, "0"))
        visible, newlines = body_visible(self.config)
        try:
            head, tail, size = files.body_ends(self.spool_dir, m.id, visible)
        except OSError:
            return out      # the -D file is checked (and reported) when delivering
        out.update(body_variables(head, tail, size, visible, newlines))
        out["message_size"] = str(m.message_size(size))
        return out

    # ------------------------------------------------------------------ main line
    def run(self) -> DeliveryOutcome:
        msg = self.msg
        if msg.frozen_at is not None:
            if not self._frozen_may_proceed():
                self.outcome.status = "frozen"
                return self.outcome
        for unique in self.journal:      # done before a crash: never deliver twice
            msg.nonrecipients.add(unique)
        ctx = self.context()
        system = run_system_filter(self.config, msg, ctx, self.first_delivery)
        if system.error is not None:
            self._log(f"Error in system filter: {system.error}")
            self.log.panic(f"Error in system filter: {system.error}", msg.id)
            return self._finish()           # as Exim: not frozen, tried again next time
        originals = self._system_filter_decision(system)
        if originals is None:
            return self._finish()
        routed = self._route_all(ctx, system.generated, originals)
        # Like Exim, each routed address goes to the front of the local or remote list,
        # so deliveries run in the reverse of routing order (and, as recipients are
        # routed last-first, top-level recipients are delivered in their own order).
        if (routed or self.failed) and not self._reserve_journal(routed):
            routed = []
        # An ``unseen`` router makes several deliveries of one recipient (same unique):
        # it is finished only when the last of them has succeeded.
        self.copies_left = collections.Counter(a.unique for a in routed)
        local = [a for a in reversed(routed) if self._is_local(a)]
        remote = [a for a in reversed(routed) if not self._is_local(a)]
        remote = sort_remote_domains(remote, main_option(self.config, "remote_sort_domains"),
                                     ctx.child())
        for batch in self._local_batches(local, ctx):
            self._run_transport(batch, ctx)
        remote_batches = self._remote_batches(remote)
        if self.local_only:
            for batch in remote_batches:
                # left for a later run, untried and unlogged; remembered by host so
                # that a two-phase run (-qq) can send them down one connection
                self.deferred.extend(batch)
                if batch[0].hosts:
                    self.outcome.waiting_hosts.append(batch[0].hosts[0].name)
        else:
            self._run_remote(self._queue_smtp(remote_batches, ctx), ctx)
        self._success_reports()
        self._handle_failures()
        return self._finish()

    def _reserve_journal(self, routed: list[Address]) -> bool:
        """Reserve -J room for every address this attempt may finish; on failure (a full
        spool) nothing is delivered: the routed addresses are deferred and failures are
        neither bounced nor recorded, so all of it is tried again later."""
        need = sum(len(a.unique.encode("utf-8", "surrogateescape")) + 1
                   for a in routed + self.failed)
        try:
            self.journal_file.reserve(need)
            return True
        except OSError as exc:
            self.journal_error = exc
        self._hold_for_spool(routed)
        return False

    def _hold_for_spool(self, batch: list[Address]) -> None:
        """Defer addresses because the spool cannot record their delivery; no retry
        hint is written (the destination is not at fault)."""
        exc = self.journal_error
        for a in batch:
            a.result = "defer"
            a.basic_errno = (exc.errno if exc is not None else 0) or -1
            a.message = NO_JOURNAL_ROOM
            self._defer_logged(a)

    def _frozen_may_proceed(self) -> bool:
        """Whether a frozen message is delivered now: by -M, as an old bounce past
        ignore_bounce_errors_after, or once timeout_frozen_after has passed."""
        msg = self.msg
        age = message_age(msg, self.now)
        if msg.sender == "" and age >= bounce_age_limit(self.config):
            self.ignore_errors = True    # old frozen bounce: one more try, then discard
            msg.frozen_at = None
            return True
        if self.manual:
            msg.frozen_at = None
            self._log("Unfrozen by forced delivery")
            return True
        if auto_thaw_due(self.config, msg, self.now):
            msg.frozen_at = None
            self._log("Unfrozen by auto-thaw")
            return True
        limit = main_option(self.config, "timeout_frozen_after", 0)
        if limit and age >= int(limit):
            self.ignore_errors = msg.sender == ""
            msg.frozen_at = None
            self.timeout_frozen = True
            return True
        return False

    # ------------------------------------------------------------------ routing
    def _system_filter_decision(self, system: SystemFilterOutcome) -> bool | None:
        """Act on the system filter's verdict.  True: deliver the original recipients;
        False: they are done ("original recipients ignored"); None: nothing more is
        done in this attempt (frozen or deferred)."""
        result = system.result
        if result is None:
            return True
        if result.status in (FREEZE, DEFER):
            if result.status == FREEZE:
                self.msg.frozen_at = self.now
                self._log_frozen(
                    f"Frozen by the system filter: {result.message or ''}".rstrip(": "))
                self.outcome.status = "frozen"
                self._freeze_tell(result.message, by_filter=True)
            else:
                self._log("Delivery deferred by system filter")
            for rcpt in self.msg.pending_recipients():      # all stay to be delivered
                a = Address(rcpt.address, unique=rcpt.address)
                a.message = result.message
                self.deferred.append(a)
            return None
        if result.status == FAIL:
            text = result.message or ""
            logged, _, bounced = text.partition(">>") if text.startswith("<<") else \
                ("", "", text)
            self._log(f"cancelled by system filter: {logged[2:] if logged else text}")
            if not self.msg.sender:     # a bounce is not bounced: it is just dropped
                for rcpt in self.msg.pending_recipients():
                    self._journal(rcpt.address)
                return False
            for rcpt in self.msg.pending_recipients():
                a = Address(rcpt.address, unique=rcpt.address)
                a.message = a.user_message = bounced or "delivery cancelled by system filter"
                a.result = "fail"
                self.failed.append(a)
            return False
        if result.status == DELIVERED:
            if system.generated:
                self._log("original recipients ignored (system filter)")
            else:
                self._log("=> discarded (system filter)")
            for rcpt in self.msg.pending_recipients():
                self._journal(rcpt.address)
            return False
        return True

    def _route_all(self, ctx: ExpandContext, generated: list[Address] | None = None,
                   originals: bool = True) -> list[Address]:
        """Route every pending recipient; return the routed addresses in routing order.

        Exim routes the recipients last-first and breadth first (all recipients, then all
        their children...), logging failures and deferrals as it goes; the same order is
        reproduced here by sorting the per-recipient results by generation.
        """
        events: list[tuple[str, Address]] = []
        for a in generated or []:
            if a.kind != "address":
                events.append(("accept", a))     # file, pipe, reply: no routing
                continue
            result = self._route(a, ctx, events)
            if result is not None:
                events.extend(result.sequence)
        for rcpt in reversed(self.msg.pending_recipients() if originals else []):
            addr = Address(rcpt.address, unique=rcpt.address,
                           dsn_flags=rcpt.dsn_flags, dsn_orcpt=rcpt.orcpt)
            if rcpt.errors_to:
                addr.errors_address = rcpt.errors_to
            if self.give_up:
                # -Mg: the address fails untried; Exim's bounce lists it with no reason
                # and the log has no "**" line for it.
                addr.user_message = ""
                events.append(("cancel", addr))
                continue
            if self.timeout_frozen or self.mail_loop:
                addr.message = MAIL_LOOP if self.mail_loop else \
                    "delivery cancelled by timeout_frozen_after"
                events.append(("fail", addr))
                continue
            if not self._routing_due(addr):
                addr.basic_errno = EximErrno.RRETRY
                addr.message = RETRY_NOT_REACHED
                events.append(("wait", addr))
                continue
            result = self._route(addr, ctx, events)
            if result is None:
                continue
            if result.freeze:
                self.frozen_info = ""
            events.extend(result.sequence)
            self._router_notes(result)
            if not result.deferred and not result.failed and not self.first_delivery:
                self._clear_retry(self._routing_keys(addr))
        events.sort(key=lambda ev: _depth(ev[1]))

        def dup_key(a: Address) -> tuple[str, Any]:
            return (a.unique if a.kind != "address" else f"{a.local_part}@{a.domain}",
                    a.transport)
        # Of duplicates, Exim keeps the one routed last (the first recipient: they are
        # routed last-first); the others are remembered for its Envelope-to:.
        kept: dict[tuple[str, Any], Address] = {}
        for status, a in reversed(events):
            if status == "accept" and a.unique not in self.msg.nonrecipients:
                key = dup_key(a)
                if key not in self.seen:
                    if key in kept:
                        kept[key].duplicates.append(a)
                    else:
                        kept[key] = a
        routed: list[Address] = []
        for status, a in events:
            if status == "accept":
                # The same address to the same transport is delivered once; an
                # ``unseen`` router's copy goes to another transport and is kept.
                key = dup_key(a)
                if a.unique in self.msg.nonrecipients or key in self.seen \
                        or kept.get(key) is not a:
                    continue     # delivered in an earlier attempt, or a duplicate
                self.seen.add(key)
                self._dsn_lasthop(a)
                routed.append(a)
            elif status == "discard":
                self._journal(a.unique)
                # ":blackhole:" in a redirection list; "discarded" by a filter
                self._log(f"=> {a.message or ':blackhole:'} <{a.address}> R={a.router}",
                          about=a)
            elif status == "fail":
                self._fail(a, routing=True)
            elif status == "cancel":
                a.result = "fail"
                self.failed.append(a)
            elif status == "wait":
                self._routing_wait_logged(a)
            elif status == HELD[0]:
                self._held_logged(a)
            elif status == QUEUE_DOMAIN[0]:
                # left for a queue run; no retry hint
                self.deferred.append(a)
                text = f"{self._log_address(a)} routing defer ({a.basic_errno}): {a.message}"
                self._log("== " + text, text, about=a)
            else:
                self._routing_deferred(a)
        return routed

    def _dsn_lasthop(self, a: Address) -> None:
        """dsn_lasthop on the router that accepted an original recipient: its DSN
        requests stop here (a redirect router's children never pass them on)."""
        router = self._router_obj(a.router)
        if a.parent is None and router is not None and router.flag("dsn_lasthop"):
            a.dsn_flags |= DSN_LASTHOP

    def _route(self, addr: Address, ctx: ExpandContext,
               events: list[tuple[str, Address]]) -> Any:
        """route_address for one address; None (the address deferred, in ``events``)
        when routing crashed -- a bug or bad data must leave the address queued."""
        try:
            return route_address(self.config, addr, ctx, held=self._held_check())
        except Exception as exc:
            self.log.panic(f"routing {addr.address} failed unexpectedly: {exc!r}",
                           self.msg.id)
            addr.message, addr.basic_errno = f"routing error: {exc}", -1
            events.append(("defer", addr))
            return None

    def _held_check(self) -> Callable[[Address], tuple[str, int, str] | None] | None:
        """hold_domains and, for the delivery started at reception, queue_domains: which
        addresses are not routed in this attempt.  A forced delivery (-M, -qf) ignores
        both, as Exim does."""
        hold = main_option(self.config, "hold_domains")
        queue = main_option(self.config, "queue_domains") if self.at_reception else None
        if self.forced or not (hold or queue):
            return None
        ctx = self.context()

        def held(a: Address) -> tuple[str, int, str] | None:
            ctx.variables["domain"] = a.domain
            if hold and match_domain(a.domain, str(hold), ctx, data_var=""):
                return HELD
            if queue and match_domain(a.domain, str(queue), ctx, data_var=""):
                return QUEUE_DOMAIN
            return None
        return held

    def _held_logged(self, a: Address) -> None:
        """An address deferred by hold_domains: no retry hint (the destination is not at
        fault), logged every time the message is looked at."""
        self.deferred.append(a)
        metrics.deferred("")
        text = Deferral(self._log_address(a), a.basic_errno, f": {a.message}").text()
        self._log("== " + text, text, about=a)

    def _router_notes(self, result: Any) -> None:
        """Log what the routers noted (skip_syntax_errors) and send their reports
        (syntax_errors_to), with the null sender, like a bounce."""
        for text, _address in result.self_frozen:
            self._log(text)
        for text in result.notes:
            self._log(text)
        for to, text in result.reports:
            try:
                self._submit_generated(text.encode("utf-8", "surrogateescape"), [to],
                                       self.msg.id)
            except Exception as exc:  # the routing stands; only the report is lost
                self.log.panic(f"failed to send syntax error report: {exc!r}", self.msg.id)

    def _routing_wait_logged(self, a: Address) -> None:
        self.deferred.append(a)
        self._retry_defer_logged(
            f"{self._log_address(a)} routing defer ({EximErrno.RRETRY}): {RETRY_NOT_REACHED}")

    def _routing_keys(self, addr: Address) -> list[str]:
        return [f"R:{addr.domain}", f"R:{addr.address}"]

    def _routing_due(self, addr: Address) -> bool:
        if self.forced or self.first_delivery:
            return True
        for key in self._routing_keys(addr):
            rec = self.retry_db.get(key)
            if rec is not None and not retrymod.is_due(rec, self.now, self.data_expire):
                return self._message_older_than_cutoff(addr.address, None)
        return True

    def _message_older_than_cutoff(self, subject: str, error: str | None) -> bool:
        """A message older than the final cutoff of its rule is tried regardless."""
        rule = retrymod.find_retry_rule(self.config, subject, error, self.msg.sender)
        return rule is not None and message_age(self.msg, self.now) > retrymod.final_cutoff(rule)

    def _routing_deferred(self, a: Address) -> None:
        if not a.basic_errno:
            a.basic_errno = -1
        key = a.retry_key or f"R:{a.domain}"
        subject = key[2:]
        timed_out = self._apply_retry(a, key, subject, a.domain)
        self.deferred.append(a)
        metrics.deferred("")
        text = Deferral(self._log_address(a), a.basic_errno, f": {a.message}",
                        router=str(a.router) if a.router else "").text()
        self._log("== " + text, text, about=a)
        if timed_out:
            self._retry_timed_out(a)

    # ------------------------------------------------------------------ retry hints
    def _apply_retry(self, a: Address, key: str, subject: str, alt_domain: str | None) -> bool:
        """Record a temporary failure under ``key``; True if the address must now fail
        (no retry rule, or the retry period is over: see :meth:`_retry_timed_out`)."""
        error = retrymod.error_name(a)
        rule = retrymod.find_retry_rule(self.config, subject, error, self.msg.sender,
                                        alt_domain=alt_domain)
        if rule is None:
            return True     # no retry rule: temporary errors are permanent
        old = self.retry_db.get(key)
        rec = retrymod.compute_next(rule, old, self.now, basic_errno=a.basic_errno,
                                    more_errno=a.more_errno, text=a.message or "",
                                    interval_max=self.interval_max, data_expire=self.data_expire)
        self.retry_db.put(key, rec)
        if rec.expired or message_age(self.msg, self.now) > retrymod.final_cutoff(rule):
            if old is not None or not rule.rules or rec.expired:
                return True
        return False

    def _clear_retry(self, keys: list[str]) -> None:
        for key in keys:
            try:
                if self.retry_db.get(key) is not None:
                    self.retry_db.delete(key)
            except Exception:   # hints are hints: never let them stop a delivery
                pass

    # ------------------------------------------------------------------ transports
    def _router_obj(self, name: str | None) -> Any:
        for inst in getattr(self.config, "routers", []):
            if inst.name == name:
                return inst.obj
        return None

    def _transport_obj(self, name: str | None) -> Any:
        inst = getattr(self.config, "transports", {}).get(name) if name else None
        return None if inst is None else inst.obj

    def _is_local(self, a: Address) -> bool:
        obj = self._transport_obj(a.transport)
        if obj is not None and hasattr(obj, "is_local"):
            return bool(obj.is_local)
        inst = getattr(self.config, "transports", {}).get(a.transport)
        return inst is None or inst.driver != "smtp"

    def _local_batches(self, local: list[Address],
                       ctx: ExpandContext | None = None) -> list[list[Address]]:
        """Local addresses, one per delivery unless the transport's batch_max allows more
        (Exim's local batching): then addresses for the same transport, domain, user,
        home and errors address -- and the same expanded batch_id -- share a run, up to
        batch_max of them, in order."""
        batches: list[list[Address]] = []
        open_batch: dict[tuple, list[Address]] = {}
        for a in local:
            obj = self._transport_obj(a.transport)
            limit = int(obj.opt("batch_max") or 1) if obj is not None and \
                "batch_max" in getattr(obj, "options", {}) else 1
            if limit <= 1 or a.kind != "address":
                batches.append([a])
                continue
            key = (a.transport, a.domain, a.uid, a.gid, a.home, a.errors_address,
                   self._batch_id(obj, a, ctx))
            batch = open_batch.get(key)
            if batch is None or len(batch) >= limit:
                batch = open_batch[key] = []
                batches.append(batch)
            batch.append(a)
        return batches

    def _batch_id(self, obj: Any, a: Address, ctx: ExpandContext | None) -> str | None:
        text = obj.opt("batch_id") if "batch_id" in obj.options else None
        if not text or ctx is None:
            return None
        try:
            return str(expand_string(str(text), self._job_context(a, ctx)))
        except ExpandError:
            return None

    def _remote_batches(self, remote: list[Address]) -> list[list[Address]]:
        """Remote addresses delivered together: same transport, same hosts, and the
        same domain when the transport's multi_domain is false for the address."""
        groups: dict[tuple, list[Address]] = {}
        for a in remote:
            hosts = tuple((h.name, h.address, h.port) for h in a.hosts)
            domain = None if self._multi_domain(a) else a.domain
            groups.setdefault((a.transport, hosts, domain), []).append(a)
        return list(groups.values())

    def _multi_domain(self, a: Address) -> bool:
        """The smtp transport's multi_domain, expanded for this address."""
        obj = self._transport_obj(a.transport)
        if obj is None or "multi_domain" not in obj.options:
            return True
        value = obj.opt("multi_domain")
        if isinstance(value, str):
            try:
                value = exim_true(str(expand_string(
                    value, self._job_context(a, self.context()))))
            except ExpandError as exc:
                self.log.main(f"failed to expand multi_domain for {a.address}: {exc}",
                              self.msg.id)
                value = True
        return value is not False

    def _host_key(self, a: Address, h: Any) -> str:
        """The retry key of a host: ``T:name:ip[:port]``, or ``T:name`` when the
        transport's retry_include_ip_address is false."""
        obj = self._transport_obj(a.transport)
        if obj is not None and "retry_include_ip_address" in obj.options:
            value = obj.opt("retry_include_ip_address")
            if isinstance(value, str):
                try:
                    value = exim_true(str(expand_string(value, self.context())))
                except ExpandError:
                    value = True
            if value is False:
                return f"T:{h.name}" + (f":{h.port}" if h.port not in (None, 25) else "")
        return host_key(h.name, h.address, h.port)

    def _wait_for_hosts(self, a: Address, hosts: list[Any]) -> None:
        """Record in wait-<transport> that this message waits for these hosts."""
        if not a.transport:
            return
        db = WaitDB(self.spool_dir, str(a.transport), self.log)
        for h in hosts:
            if h is not None and h.address:
                db.add(host_wait_key(h.name, h.address, h.port), self.msg.id)

    def _address_key(self, a: Address) -> str:
        """The retry key of a recipient that got a 4xx to RCPT: with the sender, or
        without it when the transport's address_retry_include_sender is false."""
        obj = self._transport_obj(a.transport)
        if obj is not None and "address_retry_include_sender" in obj.options and \
                obj.opt("address_retry_include_sender") is False:
            return f"R:{a.address}"
        return f"R:{a.address}:<{self.msg.sender}>"

    def _local_key(self, a: Address) -> str:
        if a.kind != "address":
            return f"T:{a.unique}"
        return f"T:{a.local_part}@{a.domain}"

    def _job_context(self, a: Address, ctx: ExpandContext) -> ExpandContext:
        c = address_context(self.config, a, ctx)
        extra = {
            "local_part_data": a.local_part_data, "domain_data": a.domain_data,
            "address_data": a.address_data, "home": a.home,
            # affixes are pieces of the client's address: tainted, as in Exim
            "local_part_prefix": taint(a.prefix) if a.prefix else "",
            "local_part_suffix": taint(a.suffix) if a.suffix else "",
        }
        if a.kind == "pipe":
            extra["address_pipe"] = a.address
        elif a.kind in ("file", "directory"):
            extra["address_file"] = a.address
        if a.kind == "address":
            # transports see the local part as the router did: affixes removed and, unless
            # caseful_local_part, lower-cased
            r = self._router_obj(a.router)
            lp = a.local_part if r is not None and r.flag("caseful_local_part") \
                else a.local_part.lower()
            if a.prefix and lp.startswith(a.prefix):
                lp = lp[len(a.prefix):]
            if a.suffix and lp.endswith(a.suffix):
                lp = lp[:len(lp) - len(a.suffix)]
            extra["local_part"] = taint(lp)
        if a.kind != "address" and a.parent is not None:
            # a file, pipe or reply delivery is made for the address that generated it
            extra["local_part"] = taint(a.parent.local_part)
            extra["domain"] = taint(a.parent.domain)
            for name, value in (("local_part_data", a.parent.local_part_data),
                                ("domain_data", a.parent.domain_data)):
                if extra.get(name) is None:
                    extra[name] = value
        c.variables.update({k: v for k, v in extra.items() if v is not None})
        return c

    def _run_transport(self, batch: list[Address], ctx: ExpandContext) -> None:
        ready = self._ready(batch, ctx)
        if ready is None:
            return
        obj, local, slot = ready
        try:
            self._run_job(obj, batch, ctx, local)
        finally:
            self._release_slot(slot)

    def _ready(self, batch: list[Address],
               ctx: ExpandContext) -> tuple[Any, bool, Any] | None:
        """Whether the transport may run for ``batch`` now: (transport, is local,
        max_parallel slot), or None when the batch was deferred or failed instead."""
        if self.journal_error is not None:
            self._hold_for_spool(batch)
            return None
        first = batch[0]
        obj = self._transport_obj(first.transport)
        if obj is None:
            why = "No transport set by router" if not first.transport else \
                f'transport "{first.transport}" not found'
            for a in batch:
                a.result, a.message, a.basic_errno = "defer", why, -1
            self._after_transport(batch)
            return None
        local = self._is_local(first)
        if not self._retry_allows(batch, local):
            return None
        slot = self._parallel_slot(obj, batch, ctx)
        if slot is False:
            return None
        return obj, local, slot

    def _queue_smtp(self, batches: list[list[Address]],
                    ctx: ExpandContext) -> list[list[Address]]:
        """queue_smtp_domains, in the delivery started at reception: a batch whose first
        address is in these domains is left for the queue run -- with every other
        address in it, whatever its domain, as Exim 4.96 does -- and is recorded as
        waiting for its hosts.  Returns the batches to deliver now."""
        if not self.at_reception or self.forced:
            return batches
        # an existing "smtp/path" of queue_only_file stands for queue_smtp_domains = *
        text = "*" if queue_only_file_exists(self.config, smtp=True) \
            else main_option(self.config, "queue_smtp_domains")
        if not text:
            return batches
        check = ctx.child()
        now: list[list[Address]] = []
        for batch in batches:
            first = batch[0]
            check.variables["domain"] = first.domain
            if not match_domain(first.domain, str(text), check, data_var=""):
                now.append(batch)
                continue
            for a in batch:
                a.result, a.basic_errno, a.message = "defer", -1, QUEUE_SMTP
                self._wait_for_hosts(a, a.hosts)
                self._defer_logged(a)
        return now

    def _release_slot(self, slot: Any) -> None:
        if slot:
            MiscDB(self.spool_dir, self.log).release(slot)

    def _run_remote(self, batches: list[list[Address]], ctx: ExpandContext) -> None:
        """The remote deliveries: one by one, or up to remote_max_parallel of them at
        once in child processes (see pymta.delivery.parallel)."""
        try:
            limit = int(main_option(self.config, "remote_max_parallel", 2) or 0)
        except (TypeError, ValueError):
            limit = 1
        if limit < 2 or len(batches) < 2:
            for batch in batches:
                self._run_transport(batch, ctx)
            return

        def ready() -> Iterator[tuple[tuple[Any, Any, DeliveryJob], list[Address]]]:
            for batch in batches:
                prepared = self._ready(batch, ctx)
                if prepared is not None:
                    obj, _local, slot = prepared
                    yield (obj, slot, self._make_job(obj, batch, ctx)), batch

        def work(task: tuple[Any, Any, DeliveryJob], batch: list[Address]) -> None:
            obj, _slot, job = task
            self._invoke(obj, batch, job)
            if hasattr(obj, "close_connections"):
                obj.close_connections()     # the child's connections end with it

        def done(task: tuple[Any, Any, DeliveryJob], batch: list[Address],
                 error: str | None) -> None:
            obj, slot, job = task
            self._release_slot(slot)
            if error is not None:
                self.log.panic(f"{obj.name} transport: {error}", self.msg.id)
                for a in batch:
                    a.result, a.message, a.basic_errno = "defer", error, -1
            self._shadow(obj, [a for a in batch if a.result == "ok"], job)
            self._after_transport(batch)

        run_parallel(ready(), limit, work, done)

    def _parallel_slot(self, obj: Any, batch: list[Address], ctx: ExpandContext) -> Any:
        """max_parallel: take a slot for this transport (its key), or defer the batch
        when all are taken (False); None when the transport has no limit."""
        text = obj.opt("max_parallel")
        if not text:
            return None
        try:
            limit = int(str(expand_string(str(text), self._job_context(batch[0], ctx))))
        except (ExpandError, ValueError):
            limit = 0
        if limit <= 0:
            return None
        key = f"tpt-max-parallel-{obj.name}"
        if MiscDB(self.spool_dir, self.log).acquire(key, limit):
            return key
        for a in batch:
            a.result, a.basic_errno = "defer", EximErrno.TRETRY
            a.message = "concurrency limit reached for transport"
        self._after_transport(batch)
        return False

    def _run_job(self, obj: Any, batch: list[Address], ctx: ExpandContext,
                 local: bool) -> None:
        job = self._make_job(obj, batch, ctx)
        self._invoke(obj, batch, job)
        self._shadow(obj, [a for a in batch if a.result == "ok"], job)
        self._after_transport(batch)

    def _make_job(self, obj: Any, batch: list[Address], ctx: ExpandContext) -> DeliveryJob:
        return DeliveryJob(message=self.msg, spool_dir=self.spool_dir,
                           data_path=files.data_path(self.spool_dir, self.msg.id),
                           addresses=batch, ctx=self._job_context(batch[0], ctx),
                           log=self.log, config=self.config, submit=self._submit_generated)

    def _invoke(self, obj: Any, batch: list[Address], job: DeliveryJob) -> None:
        """Run the transport for ``batch``; every address ends with a result."""
        first = batch[0]
        for a in batch:
            a.result = None
        if debug.transport:
            debug.printf(f"{first.transport} transport entered for "
                         + ", ".join(a.address for a in batch))
        text = obj.opt("debug_print")
        if text is not None and job.ctx is not None and debugprint.wanted():
            debugprint.debug_print(str(text), job.ctx.child(
                transport_name=obj.name, router_name=first.router or ""),
                f"{obj.name} transport")
        started = time.monotonic()
        try:
            obj.deliver(job)
        except Exception as exc:  # a transport bug must not lose the message
            self.log.panic(f"transport {first.transport} failed unexpectedly: {exc!r}",
                           self.msg.id)
            for a in batch:
                if a.result is None:
                    a.result, a.message, a.basic_errno = "defer", str(exc), -1
        elapsed = time.monotonic() - started
        for a in batch:
            a.delivery_time = elapsed            # DT=: the whole transport run
            if a.result is None:
                a.result, a.message = "defer", a.message or "transport gave no result"
            if debug.transport:
                debug.printf(f"{first.transport} transport returned {a.result.upper()} for "
                             f"{a.address}" + (f": {a.message}" if a.message else ""))

    def _shadow(self, obj: Any, delivered: list[Address], job: DeliveryJob) -> None:
        """shadow_transport: after a successful local delivery, the same addresses go to
        the shadow transport too (one level only); its result only adds "ST=name" --
        with its error in parentheses -- to the delivery line."""
        name = obj.opt("shadow_transport") if "shadow_transport" in obj.options else None
        if not name or not delivered or not obj.is_local:
            return
        condition = obj.opt("shadow_condition")
        if condition and job.ctx is not None:
            try:
                if not exim_true(str(expand_string(str(condition), job.ctx))):
                    return
            except ExpandFail:
                return
            except ExpandError as exc:
                self.log.main(f"shadow_condition of {obj.name} transport failed: {exc}",
                              self.msg.id)
                return
        shadow = self._transport_obj(str(name))
        if shadow is None or not shadow.is_local:
            return
        copies = [copy.copy(a) for a in delivered]
        for c in copies:
            c.result, c.message, c.transport = None, None, shadow.name
        sjob = DeliveryJob(message=self.msg, spool_dir=self.spool_dir,
                           data_path=job.data_path, addresses=copies, ctx=job.ctx,
                           log=self.log, config=self.config, submit=self._submit_generated)
        try:
            shadow.deliver(sjob)
        except Exception as exc:  # the shadow never affects the real delivery
            for c in copies:
                c.result, c.message = "defer", str(exc)
        for a, c in zip(delivered, copies):
            a.shadow_note = f"ST={shadow.name}" + (
                f" ({c.message or 'failed'})" if c.result != "ok" else "")

    def _submit_generated(self, data: bytes, recipients: list[str], reference: str,
                          auth_sender: str | None = None, from_mta: bool = False) -> str:
        """Spool a message a transport made (autoreply) with the null sender, R= naming
        the message it answers; ``auth_sender`` its authenticated sender (delay
        warnings: bounce_sender_authentication).  ``from_mta``: a notice the delivery
        process sends once the deliveries are done, which Exim does as exim_user (U=
        and the Received: line name it), as for a bounce."""
        from pymta.message.receive import Envelope, receive_message
        uid, gid, login = mta_identity(self.config) if from_mta else (None, None, None)
        if not from_mta and os.geteuid() != os.getuid():
            # A transport's message (autoreply, quota warning) comes from the user the
            # delivery runs as: Exim's child process has it as its real uid, which gives
            # U= and the Received: line ("from <login>").
            uid, gid = os.geteuid(), os.getegid()
            try:
                login = pwd.getpwuid(uid).pw_name
            except KeyError:
                login = str(uid)
        env = Envelope(sender="", recipients=recipients, protocol="local",
                       is_local_submission=True, sender_set_by_caller=True,
                       bounce_reference=reference, authenticated_sender=auth_sender,
                       originator_uid=uid, originator_gid=gid, originator_login=login)
        # a local transport calls this as the delivery user: the spool is written as
        # the delivery process itself
        own = self.process_ids
        switch = own[0] != os.geteuid() and can_switch_ids()
        with switched_ids(*own) if switch else contextlib.nullcontext():
            new_id = receive_message(self.config, env, data, self.log)
        self.outcome.bounce_ids.append(new_id)    # delivered right after, like a bounce
        return new_id

    def _retry_allows(self, batch: list[Address], local: bool) -> bool:
        """Apply retry hints before running a transport; addresses that must wait are
        deferred (or failed after a long failure period) and False is returned when
        nothing is left to try."""
        if self.forced:
            return True
        if local:
            if self.first_delivery:
                return True
            a = batch[0]
            rec = self.retry_db.get(self._local_key(a))
            if rec is None or retrymod.is_due(rec, self.now, self.data_expire) or \
                    self._message_older_than_cutoff(a.address, None):
                return True
            for a in batch:
                a.basic_errno, a.message = EximErrno.LRETRY, LOCAL_RETRY_NOT_REACHED
                self._defer_logged(a)
            return False
        waiting = [a for a in batch if not self._address_due(a)]
        for a in waiting:
            # Exim checks address retry records while routing, hence "routing defer"
            a.basic_errno, a.message = EximErrno.RRETRY, RETRY_NOT_REACHED
            self._routing_wait_logged(a)
            batch.remove(a)
        if not batch:
            return False
        hosts = batch[0].hosts
        if not hosts:
            return True
        obj = self._transport_obj(batch[0].transport)
        due, all_expired, untried = [], True, []
        for h in hosts:
            rec = self.retry_db.get(self._host_key(batch[0], h))
            if rec is None or not rec.expired:
                all_expired = False
            if rec is None or retrymod.is_due(rec, self.now, self.data_expire):
                due.append(h)
            if rec is not None and rec.last_try < self.msg.received_time:
                untried.append(h)
        if not due and all_expired and not self._delay_after_cutoff(obj):
            # delay_after_cutoff false: hosts not tried since this message arrived get
            # one try before the address is bounced
            due = untried
        elif not due and self._message_older_than_cutoff(batch[0].address, None):
            due = list(hosts)
        if due:
            for a in batch:
                a.hosts = list(due)
            return True
        for a in batch:
            if all_expired:
                a.message = NO_HOST_DUE_EXPIRED
                a.result = "fail"
                self._fail(a)
            else:
                a.basic_errno = EximErrno.HRETRY
                a.message = f"{NO_HOST_DUE} for '{a.domain}'"
                self._wait_for_hosts(a, hosts)
                self._defer_logged(a)
        return False

    @staticmethod
    def _delay_after_cutoff(obj: Any) -> bool:
        if obj is None or "delay_after_cutoff" not in obj.options:
            return True
        return obj.opt("delay_after_cutoff") is not False

    def _address_due(self, a: Address) -> bool:
        rec = self.retry_db.get(self._address_key(a))
        return rec is None or retrymod.is_due(rec, self.now, self.data_expire) or \
            self._message_older_than_cutoff(a.address, None)

    def _after_transport(self, batch: list[Address]) -> None:
        first_ok = True
        for a in batch:
            if a.freeze and a.result != "ok":
                # the transport asked for the message to be frozen (a pipe's
                # freeze_exec_fail / freeze_signal)
                self.frozen_info = ""
            if a.result == "ok":
                self._delivered(a, first_ok)
                first_ok = False
            elif a.result == "fail":
                self._fail(a)
            else:
                self._transport_deferred(a)

    def _delivered(self, a: Address, first: bool) -> None:
        self.copies_left[a.unique] -= 1
        if self.copies_left[a.unique] <= 0:
            self._journal(a.unique)
        h = a.host_used
        if h is not None and h.address:
            entry = (str(a.transport), host_wait_key(h.name, h.address, h.port))
            if entry not in self.outcome.open_hosts:
                self.outcome.open_hosts.append(entry)
        name, original = self._delivered_name(a)
        self._log(Delivery(
            name=name, original=original, parents=self._logged_parents(a),
            router=str(a.router or ""), transport=str(a.transport),
            first=first, host=host_field(a) if h is not None else "",
            host_dnssec=h is not None and h.dnssec,
            session=self._session_facts(a),
            confirmation=a.smtp_confirmation or "", queue=self.queue_name,
            shadow=a.shadow_note, chunking=a.chunking_used,
            sender=self.msg.sender, return_path=a.return_path, size=a.delivered_size,
            host_port=h.port if h is not None else None, interface=a.sending_interface,
            proxy=a.sending_proxy if h is not None else None,
            queue_time=self._queue_time(log_selected(self.config, "queue_time_exclusive")),
            deliver_time=a.delivery_time).line(self.config),
            about=a)
        outcome_events.delivered(self._transport_obj(a.transport), a,
                                 lambda: self._job_context(a, self.context()), self.log,
                                 self.msg.id)
        metrics.delivered(str(a.transport), time.time() - self.msg.received_time
                          - self.msg.received_time_usec / 1e6)
        self.outcome.delivered.append(a.address)
        top = a.top_parent()
        if wants_success(top.dsn_flags) and not passed_on(a) \
                and all(r.top_parent() is not top for r in self.success_reported):
            self.success_reported.append(a)
        if h is not None and h.address:
            self._clear_retry([self._host_key(a, h), self._address_key(a)])
        elif h is None and not self.first_delivery:
            self._clear_retry([self._local_key(a)])

    @staticmethod
    def _session_facts(a: Address) -> SessionLogFacts:
        """The TLS and AUTH facts the smtp transport recorded on ``a``."""
        return SessionLogFacts(
            cipher=a.tls_cipher, certificate_verified=a.tls_certificate_verified,
            dane=a.tls_dane, peerdn=a.tls_peerdn, resumed=a.tls_resumed,
            authenticator=a.authenticator, auth_id=a.auth_id)

    def _logged_parents(self, a: Address) -> tuple[str, ...]:
        return lognames.logged_parents(self.config, a)

    def _log_address(self, a: Address) -> str:
        return lognames.log_address(self.config, a)

    def _logged_local_part(self, a: Address) -> str:
        return lognames.logged_local_part(self.config, a)

    def _delivered_name(self, a: Address) -> tuple[str, str]:
        """How a successful delivery names the address, and the original recipient
        shown after it in <> ("" for none): a delivery by a local transport from a
        router with log_as_local (the accept router's default) shows the (lower-cased)
        local part and always the original; others the full address, and the
        original when it was redirected."""
        top = a.top_parent()
        if a.sent_as:
            # the smtp transport sent another form (an SMTPUTF8 address downconverted)
            return a.sent_as, top.address
        if a.kind != "address":
            return a.address, top.address
        router = self._router_obj(a.router)
        if self._is_local(a) and router is not None and router.flag("log_as_local"):
            return self._logged_local_part(a), top.address
        shown, _, original = lognames.log_name_parts(self.config, a)
        return shown, original

    def _queue_time(self, exclusive: bool = False) -> float:
        """Seconds since the message's reception began (QT=), or since it ended
        (``exclusive``: log_selector +queue_time_exclusive)."""
        start = self.msg.received_time + self.msg.received_time_usec / 1e6
        if exclusive:
            try:
                start = float(self.msg.variables.get("received_time_complete", start))
            except ValueError:
                pass
        return time.time() - start

    def _transport_deferred(self, a: Address) -> None:
        h = a.host_used
        if a.basic_errno == EximErrno.TRETRY or is_taint_error(a) or a.panic:
            # max_parallel: tried again next time; a tainted file name or command is
            # the configuration's fault: no retry hint, so never a retry timeout and a
            # bounce, as in Exim (the message waits for the configuration to be fixed)
            self._defer_logged(a)
            return
        if self._is_local(a) or h is None:
            key, subject = self._local_key(a), a.address
        elif a.basic_errno == EximErrno.RCPT4XX:
            # a 4xx to RCPT concerns this recipient (with this sender), not the host
            key, subject = self._address_key(a), a.address
        elif a.basic_errno in (EximErrno.MAIL4XX, EximErrno.DATA4XX):
            # 4xx to MAIL or DATA: specific to this message on this host
            key, subject = self._host_key(a, h) + f":{self.msg.id}", h.name
        else:
            key, subject = self._host_key(a, h), h.name
        if h is not None and not self._is_local(a):
            self._wait_for_hosts(a, [h])
        timed_out = self._apply_retry(a, key, subject, a.domain)
        # Exim 4.96 logs the deferral first; a retry timeout then fails the address
        # with a line of its own ("** x@y: retry timeout exceeded", no R= or T=).
        self._defer_logged(a)
        if timed_out:
            self._retry_timed_out(a)

    def _retry_timed_out(self, a: Address) -> None:
        """A deferred address whose retry time is over (or that no retry rule covers)
        fails, on a line of its own after the deferral's, as in Exim 4.96."""
        self.deferred.remove(a)
        a.result, a.message, a.retry_timedout = "fail", RETRY_TIMEOUT, True
        # main log only: Exim's message log has the deferral, not this line
        self.log.main(f"** {a.log_name()}: {RETRY_TIMEOUT}", self.msg.id)
        metrics.failed(str(a.transport) if a.transport else "")
        self.failed.append(a)

    def _defer_logged(self, a: Address) -> None:
        self.deferred.append(a)
        metrics.deferred(str(a.transport) if a.transport else "")
        text = Deferral(self._log_address(a), a.basic_errno, defer_detail(a),
                        router=str(a.router) if a.router else "",
                        transport=str(a.transport) if a.transport else "").text()
        if a.basic_errno <= RETRY_BASE:
            self._retry_defer_logged(text, a)
            return
        if is_taint_error(a) or a.panic:
            # Exim 4.96 also writes tainted-path and other PANIC deferrals to the paniclog
            self.log.panic("== " + text, self.msg.id)
            self._msglog(text)
            return
        self._log("== " + text, text, about=a)

    # ------------------------------------------------------------------ failures
    def _fail(self, a: Address, routing: bool = False) -> None:
        a.result = "fail"
        show_router = a.router and not (routing and a.message == "Unrouteable address")
        show_transport = a.transport and not routing
        h = a.host_used
        outcome_events.failed(self.config,
                              None if routing else self._transport_obj(a.transport), a,
                              lambda: self._job_context(a, self.context()), self.log,
                              self.msg.id)
        host = host_field(a) if show_transport and h is not None and h.address \
            and a.message else ""
        text = Failure(
            self._log_address(a), a.message or "Unrouteable address",
            router=str(a.router) if show_router else "",
            transport=str(a.transport) if show_transport else "",
            host=host, sender=self.msg.sender,
            return_path=a.return_path if show_transport else None,
            host_port=h.port if host and h is not None else None,
            interface=a.sending_interface if host else None,
            deliver_time=(a.delivery_time or 0.0) if show_transport else 0.0,
            ).text(self.config)
        # Exim's message log has the line without "** ", and "routing failed for" in
        # front when no router is named
        self._log("** " + text, f"routing failed for {text}"
                  if routing and not show_router else text, about=a)
        metrics.failed(str(a.transport) if show_transport else "")
        self.failed.append(a)

    def _promote_one_time(self) -> set[str]:
        """one_time redirection: deferred children become top-level recipients (with the
        parent's number in ``pno``) so the redirection is not expanded again."""
        routers = {inst.name: inst.obj for inst in getattr(self.config, "routers", [])}
        keep, promoted = [], set()
        for a in self.deferred:
            parent = a.parent
            r = routers.get(parent.router) if parent is not None else None
            if a.kind != "address" or r is None or not r.flag("one_time"):
                keep.append(a)
                continue
            top = a.top_parent()
            pno = next((i for i, rc in enumerate(self.msg.recipients)
                        if rc.address == top.address), -1)
            if all(rc.address != a.address for rc in self.msg.recipients):
                self.msg.recipients.append(
                    SpoolRecipient(a.address, errors_to=a.errors_address or None, pno=pno))
            promoted.add(a.address)
        self.deferred = keep
        return promoted

    def _success_reports(self) -> None:
        """NOTIFY=SUCCESS: one report to the sender for the recipients delivered here or
        relayed to a host that did not take the request over (best effort, as Exim)."""
        if not self.success_reported or not self.msg.sender:
            return
        data = build_success_report(self.config, self.msg, self.success_reported,
                                    self.context(), self.log)
        try:
            self._submit_generated(data, [self.msg.sender], self.msg.id, from_mta=True)
        except Exception as exc:  # noqa: BLE001 - the deliveries themselves stand
            self.log.panic(f"failed to create success-dsn message: {exc!r}", self.msg.id)

    def _handle_failures(self) -> None:
        """Bounce permanently failed addresses (grouped by bounce recipient), then mark
        them done.  Failures of a bounce are not bounced: the message is frozen, or the
        errors are ignored once ignore_bounce_errors_after has passed."""
        if not self.failed or self.journal_error is not None:
            return     # no bounce while the spool cannot record it (see _reserve_journal)
        groups: dict[str, list[Address]] = {}
        for a in self.failed:
            if not wants_failure(a.dsn_request()[0]):
                # RFC 3461: NOTIFY= was given without FAILURE
                self._log(f"{a.address}: error ignored: RFC 3461 DSN, failure notify "
                          "not requested")
                self._journal(a.unique)
                continue
            to = bounce_recipient(a, self.msg)
            if to is None:
                # a bounce's failure is dropped when its retry time ran out (Exim)
                if self.ignore_errors or (a.errors_address == "" and self.msg.sender) \
                        or (a.retry_timedout and not self.msg.sender):
                    self._log(f"{a.address}: error ignored")
                    self._journal(a.unique)
                else:
                    self.frozen_info = (" (message created with -f <>)"
                                        if "local" in self.msg.flags
                                        and "localerror" not in self.msg.flags
                                        else " (delivery error message)")
                continue
            groups.setdefault(to, []).append(a)
        for to, addrs in groups.items():
            try:
                bid = send_bounce(self.config, self.msg, addrs, to, self.log, self.spool_dir,
                                  self.context())
            except Exception as exc:
                self.log.panic(f"failed to create bounce message: {exc!r}", self.msg.id)
                for a in addrs:
                    self.deferred.append(a)
                continue
            self.outcome.bounce_ids.append(bid)
            for a in addrs:
                self._journal(a.unique)
        self.outcome.failed = [a.address for a in self.failed]

    # ------------------------------------------------------------------ completion
    def _finish(self) -> DeliveryOutcome:
        msg = self.msg
        self._retry_journal()
        self.outcome.deferred = [a.address for a in self.deferred]
        promoted = self._promote_one_time()
        # A top-level recipient is done when nothing derived from it is still pending.
        pending_tops = {a.top_parent().unique for a in self.deferred} | promoted
        pending_tops |= {a.top_parent().unique for a in self.failed
                         if a.unique not in msg.nonrecipients}
        for r in msg.pending_recipients():
            if r.address not in pending_tops:
                msg.nonrecipients.add(r.address)
        if self.frozen_info is not None:
            msg.frozen_at = self.now
        # a deferred delivery the system filter set up: the filter runs again next time
        filter_pending = any(a.top_parent().address == SYSTEM_FILTER and
                             a.top_parent().parent is None and a is not a.top_parent()
                             for a in self.deferred)
        if not msg.pending_recipients() and msg.frozen_at is None and not filter_pending:
            self._log(completed_line(self.config, self._queue_time()))
            outcome_events.complete(self.config, self.context, self.log, msg.id)
            if main_option(self.config, "preserve_message_logs", False):
                files.preserve_msglog(self.spool_dir, msg.id)
            files.remove_message(self.spool_dir, msg.id)
            self.outcome.status = "completed"
            return self.outcome
        msg.flags.discard("deliver_firsttime")
        if msg.frozen_at is None and self.deferred:
            self._delay_warnings()
        try:
            files.rewrite_header(self.spool_dir, msg)
        except OSError as exc:
            # -J (if written) still says what was done; it is read again next time
            if self.unjournaled:
                kept = "; delivered but recorded nowhere: " + ", ".join(self.unjournaled)
            elif self.done_uniques:
                kept = "; -J journal kept"
            else:
                kept = ""
            self.log.panic(f"failed to rewrite -H: {exc.strerror or exc}{kept}", msg.id)
            return self.outcome
        files.remove_journal(self.spool_dir, msg.id)
        if self.unjournaled:
            self.log.panic("finished addresses missing from -J recorded in -H: "
                           + ", ".join(self.unjournaled), msg.id)
        if self.frozen_info is not None:
            if "localerror" not in msg.flags:
                self._freeze_tell(self.frozen_info, by_filter=False)
            self._log_frozen(f"Frozen{self.frozen_info}")
            self.outcome.status = "frozen"
        return self.outcome

    def _log_frozen(self, text: str) -> None:
        """Freezing: in the message log Exim 4.96 writes it as "*** Frozen ...", with no
        time stamp."""
        self.log.main(text, self.msg.id)
        self._msglog("*** " + text, stamp=False)

    def _freeze_tell(self, reason: str | None, by_filter: bool) -> None:
        """freeze_tell: tell the administrators (not for a bounce: it could loop)."""
        to = freeze_tell_recipients(self.config)
        if not to or "localerror" in self.msg.flags:
            return
        pending = [r.address for r in self.msg.pending_recipients()]
        data = build_freeze_notice(self.config, self.msg, to, pending, reason, by_filter,
                                   self.log)
        try:
            self._submit_generated(data, to, self.msg.id, from_mta=True)
        except Exception as exc:  # noqa: BLE001 - the freeze itself stands
            self.log.panic(f"failed to send freeze_tell notice: {exc!r}", self.msg.id)

    def _delay_warnings(self) -> None:
        """delay_warning: tell the sender (or errors_to) about a message still waiting."""
        due = warning.warning_due(self.config, self.msg, self.now)
        if due is None:
            return
        delay, count = due
        ctx = self.context()
        told = warning.wanted(self.deferred)     # NOTIFY= without DELAY: not these
        if not told or not warning.condition_allows(self.config, ctx, told):
            return
        groups: dict[str, list[Address]] = {}
        for a in told:
            to = bounce_recipient(a, self.msg)
            if to:
                groups.setdefault(to, []).append(a)
        for to, addrs in groups.items():
            data = warning.build_warning(self.config, self.msg, addrs, to, delay, ctx,
                                         self.log, self.now)
            try:
                self._submit_generated(data, [to], self.msg.id,   # delivered right after
                                       bounce_sender_authentication(self.config),
                                       from_mta=True)
            except Exception as exc:  # the warning is tried again next time
                self.log.panic(f"failed to create delay warning: {exc!r}", self.msg.id)
                return
        self.msg.warning_count = count

    def _retry_journal(self) -> None:
        """One more try to write what a failed -J write left in memory."""
        while self.unjournaled:
            try:
                self.journal_file.append(self.unjournaled[0])
            except OSError:
                return
            self.unjournaled.pop(0)


def host_field(a: Address) -> str:
    """``H=name [ip]`` for the host an address went to; ``*`` after the bracket marks a
    connection kept open from an earlier message, as in Exim's log."""
    h = a.host_used
    if h is None:
        return ""
    if not h.address:
        return f"H={h.name}"
    return f"H={h.name} [{h.address}]" + ("*" if a.continued_connection else "")


def completed_line(config: Any, queue_time: float) -> str:
    """``Completed``, with ``QT=`` for log_selector +queue_time_overall."""
    if log_selected(config, "queue_time_overall"):
        return f"Completed QT={log_duration(config, queue_time)}"
    return "Completed"


def defer_detail(a: Address) -> str:
    """What follows ``defer (errno)`` in a transport deferral line, in Exim 4.96's order:
    the system error text (errno > 0), the host used and the message, e.g.
    ``: Connection timed out H=mx [1.2.3.4]: SMTP timeout after RCPT TO:<x@y>``."""
    out, message = "", a.message or ""
    if a.basic_errno > 0:
        errtext = os.strerror(a.basic_errno)
        out = f": {errtext}"
        # the text the transport already used as its message is not repeated
        if message == errtext:
            message = ""
        elif message.startswith(errtext + ": "):
            message = message[len(errtext) + 2:]
    h = a.host_used
    # Exim names no host for an expansion failure (an smtp:connect event's refusal)
    if h is not None and h.address and message and a.basic_errno != EximErrno.EXPANDFAIL:
        out += " " + host_field(a)
    # a connection an event action refused (errno -58) has no text at all in Exim
    if message or not (out or a.basic_errno == EximErrno.EVENT):
        out += f": {message}"
    return out


def is_taint_error(a: Address) -> bool:
    """A deferral because a file name or command came from message data."""
    msg = a.message or ""
    return msg.startswith("Tainted '") and msg.endswith("not permitted")


def received_count(msg: SpoolMessage) -> int:
    """The number of Received: headers of a message (flag P; deleted ones excluded)."""
    return sum(1 for h in msg.headers if h.flag == "P")


def _depth(addr: Address) -> int:
    n = 0
    while addr.parent is not None:
        addr, n = addr.parent, n + 1
    return n
