"""The ACL interpreter: verbs, conditions and modifiers with Exim's semantics.

:func:`run_acl` finds the ACL (a name in the ``begin acl`` section, an inline text or a file
name, after expansion) and runs its statements against an
:class:`~pymta.expand.context.ExpandContext`.  The ``session`` argument, when given, supplies
``log`` (a :class:`pymta.log.Logger`), ``log_prefix`` (``H=... F=<...>`` for log lines),
``sleep`` (for ``delay``), ``host_ident`` (udpsend's log line), ``ratelimit_cache`` (a
:class:`~pymta.acl.ratelimit.RatelimitCache` kept for the connection), ``content_scan``
(the :class:`~pymta.acl.content.ContentScan` of the message being checked) and
``rcpt_local_part`` (the RCPT local part as the client wrote it); all optional.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pymta import match
from pymta.acl import addrverify
from pymta.acl import verify as hv
from pymta.acl.addrlist import AddressSyntax
from pymta.acl.callout import CalloutTimeError
from pymta.acl.content import ContentError, check_decode, check_mime_regex, check_regex
from pymta.acl.controls import ControlPlaceError, check_control_place
from pymta.acl.csa import check_csa
from pymta.acl.debugcontrol import apply_debug_control
from pymta.acl.dnslists import DnsListDefer, check_dnslists
from pymta.acl.headers import checked_added_header
from pymta.acl.logtargets import parse_targets, write_to
from pymta.acl.malware import check_malware
from pymta.acl.parse import (
    ACL_CONTROLS,
    ACL_CONTROLS_IGNORED,
    ACL_CONTROLS_UNSUPPORTED,
    parse_acl_text,
)
from pymta.acl.ratelimit import (
    RateFacts,
    RatelimitCache,
    RatelimitError,
    check_ratelimit,
    parse_ratelimit,
)
from pymta.acl.reply_text import split_user_message
from pymta.acl.scanconn import ScanDefer
from pymta.acl.seen import SeenError, check_seen, parse_seen
from pymta.acl.spam import check_spam
from pymta.acl.spf import SpfState, authres_spf, run_spf
from pymta.acl.udpsend import UdpsendDefer, UdpsendError, udpsend
from pymta.acl.wellknown import WellknownFailed, wellknown_response
from pymta.arc import verify as arc_verify
from pymta.config.model import AclStatement, ConfigError
from pymta.config.options import OptionSpec, parse_value
from pymta.config.protocols import ConfigView
from pymta.config.values import main_option
from pymta.debuglog import debug
from pymta.dmarc.check import DmarcCheck, run_check
from pymta.dscp import dscp_byte
from pymta.events import set_session_acl_runner
from pymta.expand import expand_bool_condition, expand_string
from pymta.expand.context import ExpandContext, set_default_acl_runner
from pymta.expand.errors import ExpandDefer, ExpandFail
from pymta.expand.extra_items import AUTHRES_SPF
from pymta.expand.lists import split_list, word_in_list
from pymta.expand.variables import lookup_variable
from pymta.hints.ratelimit import RatelimitDB
from pymta.hints.seen import SeenDB
from pymta.hostname import NO_HOST_NAME, HostLookupDeferred
from pymta.log import Logger, log_selected
from pymta.printing import string_printing
from pymta.rewrite import Where
from pymta.rewrite.setup import main_rewriter
from pymta.taint import taint

# ACLs run while a message is being received (logwrite lines carry its id there).
_MESSAGE_WHERES = frozenset(("data", "mime", "notsmtp", "notsmtp_mime", "dkim", "prdr"))

# Variables other than ACL variables that "set" may change.
_SETTABLE_DKIM = frozenset(("dkim_verify_status", "dkim_verify_reason"))

# ACL options that default to "deny" when unset (spec 44.14); the others accept.
_DENY_WHEN_UNSET = {"rcpt", "vrfy", "expn", "etrn"}

# Controls pymta acts on or accepts as true no-ops (pymta.acl.parse says why); an Exim
# control outside this set is refused, at load time or when an expanded value names it.
KNOWN_CONTROLS = ACL_CONTROLS | set(ACL_CONTROLS_IGNORED)

_CONDITIONS = {"acl", "authenticated", "condition", "domains", "local_parts", "hosts",
               "senders", "recipients", "verify", "dnslists", "ratelimit", "sender_domains",
               "encrypted", "seen", "spf", "spf_guess", "dkim_status", "dkim_signers",
               "dmarc_status",
               "csa", "decode", "demime", "malware", "mime_regex", "regex", "spam",
               "bmi_optin", "add_header_unused", "udpsend"}
_MODIFIERS = {"message", "log_message", "logwrite", "add_header", "remove_header", "set",
              "control", "delay", "continue", "endpass", "log_reject_target", "queue",
              "udpsend"}


@dataclass
class AclResult:
    """What an ACL decided.

    ``verdict`` is accept|deny|defer|discard|drop.  ``message`` is the expanded user
    message (may start with an SMTP code) or None for the default; ``log_message`` the text
    for the log.  ``add_headers``/``remove_headers``/``controls`` are what the modifiers
    asked for.  ``verify_failed`` is "sender"/"recipient" when a verify condition caused the
    verdict, with ``verify_address`` and ``verify_message``.  ``error`` marks an ACL
    error (reported as a temporary failure like Exim).
    """

    verdict: str
    message: str | None = None
    log_message: str | None = None
    add_headers: list[str] = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    verify_failed: str | None = None
    verify_address: str | None = None
    verify_message: str | None = None
    error: bool = False
    queue: str | None = None        # the named queue set by a "queue" modifier
    # A failed sender verify: the text for the "sender verify fail" log line (None: as
    # verify_message) and the reply's first line (None: "Verification failed for <a>";
    # "": no details, the no_details option).
    verify_log: str | None = None
    verify_head: str | None = None
    #: the logs a rejection goes to (log_reject_target); None: main and reject
    log_reject_target: tuple[str, ...] | None = None
    #: the reply text control = wellknown made (WELLKNOWN ACL)
    wellknown: str | None = None
    #: an ``error`` that goes to the paniclog (a broken ACL, not bad arguments)
    paniclog: bool = True


class AclDefer(Exception):
    """A condition could not be completed (lookup or verify deferral).

    ``user_message`` is what the client is told (None: Exim's default 451 text).
    """

    def __init__(self, text: str, user_message: str | None = None):
        super().__init__(text)
        self.user_message = user_message


class AclError(Exception):
    """A condition or modifier could not be evaluated at all (bad arguments, a failed
    expansion): Exim's ACL error.  The ACL stops at once with a temporary rejection
    (the default 451 text, even from a warn statement); the trace says "condition test
    error" and has no "end of ACL" line."""


class AclExpansionError(AclError):
    """A condition's expansion failed: Exim's "failed to expand ACL string" error (no
    paniclog entry: it is about the input, not the configuration)."""


#: Conditions and modifiers whose argument Exim expands before it traces them, so
#: that the -bh trace shows the expanded value under the text when they differ (the
#: lists, acl, message and log_message are expanded later, by what uses them).
_EXPANDED_FIRST = frozenset({
    "add_header", "condition", "continue", "control", "decode", "delay", "dkim_signers",
    "dkim_status", "dmarc_status", "dnslists", "logwrite", "log_reject_target",
    "malware", "mime_regex", "queue", "ratelimit", "regex", "remove_header", "seen",
    "set", "spam", "spf", "spf_guess", "udpsend", "verify"})



class _ForcedTrue(Exception):
    """An argument expansion was forced to fail: the condition counts as true."""


def _expand(text: str, ctx: ExpandContext) -> str:
    """Expand an ACL argument."""
    return expand_string(text, ctx)


def _expand_arg(text: str, ctx: ExpandContext) -> str:
    try:
        return _expand(text, ctx)
    except ExpandFail as exc:
        raise _ForcedTrue() from exc
    except ExpandDefer as exc:
        raise AclDefer(str(exc)) from exc


def split_code(message: str, default_code: int) -> tuple[int, str]:
    """Take a leading SMTP code (same first digit as the default) off a user message."""
    m = re.match(r"^([2-5]\d\d)(?:\s+|$)(.*)", message, re.S)
    if m and m.group(1)[0] == str(default_code)[0]:
        return int(m.group(1)), m.group(2)
    return default_code, message


def smtp_reply_text(message: str, default_code: int) -> tuple[int, str]:
    """An ACL's user message as its SMTP reply: broken into lines where Exim breaks it
    (the code it starts with counted), the code taken off, and an extended code after
    it (``550 5.7.1 ...``) repeated on every line, as Exim sends it."""
    code, text = split_code(split_user_message(message), default_code)
    if code != default_code or message[:3] == str(default_code):
        m = _EXTENDED_CODE.match(text)
        if m and "\n" in text:
            text = text.replace("\n", "\n" + m.group(0))
    return code, text


_EXTENDED_CODE = re.compile(r"\d\.\d{1,3}\.\d{1,3} ")


def find_acl(config: ConfigView, name_or_text: str) -> list[AclStatement]:
    """Locate an ACL by Exim's rules (spec 44.12) given the expanded option value."""
    text = name_or_text.strip()
    if text.startswith("/"):
        cache = getattr(config, "_acl_file_cache", None)
        if cache is None:
            cache = {}
            try:
                setattr(config, "_acl_file_cache", cache)
            except AttributeError:
                pass
        if text not in cache:
            try:
                with open(text, encoding="utf-8") as fh:
                    cache[text] = parse_acl_text(fh.read(), file=text)
            except OSError as exc:
                raise ConfigError(f"failed to open ACL file \"{text}\": {exc.strerror}") from exc
        return cache[text]
    acls = getattr(config, "acls", {}) or {}
    if " " not in text and "\n" not in text and text in acls:
        return acls[text]
    return parse_acl_text(text)


def acl_is_unset_default(where: str) -> str:
    """The verdict when the acl_smtp_<where> option is unset (spec 44.14)."""
    return "deny" if where in _DENY_WHEN_UNSET else "accept"


def run_acl(config: ConfigView, name_or_text: str | None, where: str, ctx: ExpandContext,
            session: Any = None, depth: int = 0) -> AclResult:
    """Expand ``name_or_text``, find the ACL and run it.  Never raises for ACL problems:
    errors become a ``defer`` result with ``error=True`` and a log message."""
    if not name_or_text:
        return AclResult(acl_is_unset_default(where))
    if getattr(ctx, "acl_runner", False) is None:
        # Lets ${acl{name}{args}} inside this ACL's expansions call back in.
        ctx.acl_runner = lambda n, args, c: run_acl(config, n, where, c, session, depth + 1)
    if depth > 20:
        return AclResult("defer", log_message="ACL nested too deep", error=True)
    try:
        name = _expand(name_or_text, ctx)
    except ExpandFail:
        return AclResult(acl_is_unset_default(where))
    except Exception as exc:
        return AclResult("defer", log_message=f"failed to expand ACL string "
                         f"\"{name_or_text}\": {exc}", error=True)
    if not name.strip():
        return AclResult(acl_is_unset_default(where))
    try:
        statements = find_acl(config, name)
    except ConfigError as exc:
        # (an inline ACL of an acl condition: Exim's text alone)
        text = exc.message if depth and exc.file == "inline ACL" else f"error in ACL: {exc}"
        return AclResult("defer", log_message=text, error=True)
    runner = _Runner(config, where, ctx, session, depth)
    runner.name = name
    runner.inline = bool(statements) and statements[0].file == "inline ACL"
    if depth == 0:
        match.forget_domain_answers()   # named domain lists are remembered per recipient
    if not debug.any:
        return runner.run(statements)
    saved_indent, debug.indent = debug.indent, depth
    try:
        if debug.acl and not runner.inline:
            debug.printf(f'using ACL "{runner.label}"')
        return runner.run(statements)
    finally:
        debug.indent = saved_indent


class _Runner:
    def __init__(self, config: ConfigView, where: str, ctx: ExpandContext, session: Any,
                 depth: int):
        self.config = config
        self.where = where
        self.ctx = ctx
        self.session = session
        self.depth = depth
        self.add_headers: list[str] = []
        self.remove_headers: list[str] = []
        self.controls: list[str] = []
        self.queue: str | None = None
        self.verify_failed: str | None = None
        self.verify_address: str | None = None
        self.verify_message: str | None = None
        self.verify_log: str | None = None
        self.verify_head: str | None = None
        # Log text set by a failing header/host verify in the current statement.
        self.cond_log: str | None = None
        # The default user message a condition set (verify = csa).
        self.cond_message: str | None = None
        self.ratelimit_cache: RatelimitCache | None = None
        self.log_reject_target: tuple[str, ...] | None = None    # None: main and reject
        self.wellknown: str | None = None
        self.dmarc_check: DmarcCheck | None = None    # without a session (non-SMTP)
        self.spf_state: SpfState | None = None        # likewise
        self.name = ""           # the ACL's name (or text), for the debug output (+acl)
        self.inline = False      # the text of an option rather than a named ACL
        self.stopped = False     # ended by an error or a deferral (no "end of ACL" line)
        self.ended_by = ""       # "implicit DENY" / "not OK": how +acl names the end
        self.check_name = ""     # the condition being checked, as +acl shows it
        self.all_true = False    # the current statement's conditions all held
        self._arg_lead = 0       # where the "= value" line goes under a "check" line
        self._pending_check: str | None = None      # that "check" line, until expanded
        self.warning: str | None = None     # a warn statement's log text, to write
        #: why a warn statement's condition deferred, logged after its trace line
        self.warn_deferred: str | None = None

    # -------------------------------------------------------------- helpers
    @property
    def label(self) -> str:
        """The ACL's name as the debug output shows it."""
        return self.name.strip() if len(self.name.split()) == 1 else "inline ACL"

    @property
    def shown(self) -> str:
        """The ACL as the trace names it: ``ACL "name"``, or ``inline ACL`` for the text
        of an option (a single word too, when no ACL has that name)."""
        return "inline ACL" if self.inline else f'ACL "{self.label}"'

    def _where(self, stmt: AclStatement) -> str:
        """A statement's place in the trace; an inline ACL's is the configuration file's
        last line, as Exim's (it parses the text after reading the file)."""
        if stmt.file != "inline ACL":
            return f"{stmt.file or 'inline'} {stmt.line}"
        path = str(getattr(self.config, "filename", "") or "")
        try:
            with open(path, "rb") as fh:
                lines = fh.read().count(b"\n")
            return f"{path} {lines}"
        except OSError:
            return f"inline {stmt.line}"

    def _log(self, kind: str, text: str) -> None:
        log = getattr(self.session, "log", None)
        if log is None:
            return
        prefix = getattr(self.session, "log_prefix", "")
        line = f"{prefix} {text}".strip() if kind == "warn" else text
        # lines written while a message is being received carry its id (as Exim's)
        msgid = self._var("message_exim_id") or None \
            if self.where in _MESSAGE_WHERES else None
        if kind == "reject":
            log.reject(line, msgid)
        else:
            log.main(line, msgid)

    def _warn_skipped(self, reason: str) -> None:
        """A warn statement whose condition deferred (log_selector acl_warn_skipped)."""
        if log_selected(self.config, "acl_warn_skipped"):
            self._log("warn", 'Warning: ACL "warn" statement skipped: '
                      f"condition test deferred{reason}")

    def _result(self, verdict: str, message: str | None, log_message: str | None,
                error: bool = False) -> AclResult:
        return AclResult(verdict, message, log_message, self.add_headers,
                         self.remove_headers, self.controls, self.verify_failed,
                         self.verify_address, self.verify_message, error, self.queue,
                         self.verify_log, self.verify_head, self.log_reject_target,
                         self.wellknown)

    def _error(self, text: str) -> AclResult:
        """Exim's ACL error for bad arguments: a 451, logged as the rejection's reason
        only (no paniclog line, as Exim writes none)."""
        result = self._result("defer", None, text, error=True)
        result.paniclog = False
        return result

    def _expand_text(self, text: str | None) -> str | None:
        if text is None:
            return None
        try:
            return _expand(text, self.ctx)
        except ExpandFail:
            return None
        except Exception:
            return text

    # -------------------------------------------------------------- statements
    def run(self, statements: list[AclStatement]) -> AclResult:
        self.ended_by = ""
        self.stopped = False
        result = self._run(statements)
        if debug.acl and not self.stopped:      # (none after an error or a deferral)
            verdict = self.ended_by or result.verdict.upper()
            debug.printf(f'end of {self.shown}: {verdict}')
        return result

    def _run(self, statements: list[AclStatement]) -> AclResult:
        for stmt in statements:
            if debug.acl:
                debug.printf(f'processing "{stmt.verb}" ({self._where(stmt)})')
            saved_where = self.ctx.where
            if self.ctx.log is None:        # for warnings written while expanding
                self.ctx.log = getattr(self.session, "log", None)
            if stmt.file:
                self.ctx.where = f"ACL {stmt.verb}, {stmt.file} {stmt.line or 0}"
            try:
                outcome = self._statement(stmt)
            except CalloutTimeError as exc:
                return self._result("defer", None, str(exc))
            except ConfigError as exc:
                self._trace_error(stmt.verb)
                self.stopped = True
                return self._result("defer", None, f"ACL error: {exc}", error=True)
            except Exception as exc:
                # Expansion errors (and bugs) fail temporarily, as in Exim: never accept.
                self._trace_error(stmt.verb)
                self.stopped = True
                where = f"{stmt.file} line {stmt.line}: " if stmt.file else ""
                return self._result("defer", None, f"{where}{stmt.verb} statement: "
                                    f"{getattr(exc, 'message', None) or exc}", error=True)
            finally:
                self.ctx.where = saved_where
            state = "error" if outcome is not None and outcome.error else \
                "succeeded" if self.all_true else "deferred" \
                if outcome is not None and outcome.verdict == "defer" else "failed"
            self.stopped = state in ("error", "deferred")
            if self.warn_deferred is not None:
                state = "deferred"          # and the ACL goes on (a warn statement)
            if debug.acl:
                debug.printf(f'{stmt.verb}: condition test {state} in {self.shown}')
            if self.warn_deferred is not None:
                self._warn_skipped(self.warn_deferred)
                self.warn_deferred = None
            if self.warning is not None:
                # the same warning is logged once per message, as Exim does
                logged = getattr(self.session, "logged_warnings", None)
                if not isinstance(logged, set) or self.warning not in logged:
                    self._log("warn", f"Warning: {string_printing(self.warning)}")
                    if isinstance(logged, set):
                        logged.add(self.warning)
                self.warning = None
            if outcome is not None:
                if stmt.verb == "require" and outcome.verdict == "deny":
                    self.ended_by = "not OK"
                return outcome
        # The implicit deny at the end of every ACL.
        self.ended_by = "implicit DENY"
        return self._result("deny", None, None)

    def _statement(self, stmt: AclStatement) -> AclResult | None:
        verb = stmt.verb
        message: str | None = None
        log_message: str | None = None
        after_endpass = False
        self.cond_log = self.cond_message = None
        self.all_true = False
        for item in stmt.items:
            name = item.name.strip()
            negated = name.startswith("!")
            if negated:
                name = name[1:].strip()
            base = name.split()[0] if name else ""
            self._arg_lead = 0
            if debug.acl and base != "condition":     # condition: after its expansion
                if base == "message" and not negated:
                    debug.printf(f"  message: {item.value}")
                elif base == "log_message" and not negated:
                    debug.printf(f"l_message: {item.value}")      # Exim's words
                else:
                    line = f"check {item.name} = {item.value}" if item.name != "set" \
                        else f"check set {item.value}"
                    if base in _EXPANDED_FIRST:
                        # written once the argument is expanded (what the expansion
                        # traces comes first, as in Exim), or not at all if it fails
                        self._arg_lead = line.index("= ")
                        self._pending_check = line
                    else:
                        debug.printf(line)
            if base in _MODIFIERS and not negated:
                if base == "message":
                    message = item.value
                elif base == "log_message":
                    log_message = item.value
                elif base == "endpass":
                    after_endpass = True
                else:
                    try:
                        self._checked(self._modifier, name, item.value)
                    except AclError as exc:
                        return self._error(str(exc))
                    except AclDefer as exc:
                        return self._result("defer", None, str(exc))
                    except WellknownFailed as exc:
                        # as a false condition would (Exim: the control fails)
                        self.cond_log = str(exc)
                        if verb == "require" or (verb in ("accept", "discard")
                                                 and after_endpass):
                            return self._result("deny", self._expand_text(message),
                                                self._expand_text(log_message) or str(exc))
                        return None
                    except (UdpsendError, ControlPlaceError) as exc:
                        # Exim's texts, logged as the rejection's reason
                        return self._error(str(exc))
                    except UdpsendDefer as exc:
                        if verb == "warn":
                            self._warn_skipped(f": {exc}")
                            return None
                        return self._result("defer", None, str(exc))
                continue
            if base not in _CONDITIONS:
                raise ConfigError(f"unknown ACL condition/modifier \"{item.name}\"",
                                  item.file or stmt.file, item.line or stmt.line)
            self.check_name = f"{'!' if negated else ''}{base}"
            try:
                ok = self._checked(self._condition, base, item.value)
            except _ForcedTrue:
                ok = True
                negated = False
            except AclError as exc:                        # even in warn, as Exim
                return self._error(str(exc))
            except AclDefer as exc:
                if verb == "warn":
                    self.warn_deferred = f": {exc}" if str(exc) else ""
                    return None
                return self._result("defer", self._expand_text(message) or exc.user_message,
                                    self._expand_text(log_message) or str(exc))
            except _Drop as d:
                return self._result("drop", d.result.message, d.result.log_message)
            except (RatelimitError, SeenError, ContentError, UdpsendError) as exc:
                # Bad arguments are an ACL error (451), even in a warn statement.
                return self._error(str(exc))
            if negated:
                ok = not ok
            if not ok:
                if verb == "require" or (verb in ("accept", "discard") and after_endpass):
                    msg = self._code_checked(self._expand_text(message) or self.cond_message,
                                             550)
                    lmsg = self._expand_text(log_message)
                    if lmsg is None:
                        # As Exim: a condition's own log text beats the user message.
                        lmsg = self.cond_log if self.cond_log is not None else msg
                    return self._result("deny", msg, lmsg)
                return None
        # All conditions true.
        self.all_true = True
        msg = self._expand_text(message)
        lmsg = self._expand_text(log_message)
        if verb in ("accept", "discard"):
            return self._result(verb, msg, lmsg)
        if verb in ("deny", "drop", "defer"):
            msg = self._code_checked(msg or self.cond_message, 451 if verb == "defer" else 550)
            if lmsg is None:
                lmsg = self.cond_log if self.cond_log is not None else msg
            return self._result(verb, msg, lmsg)
        if verb == "warn" and lmsg:
            self.warning = lmsg         # written once the statement's trace line is out
        return None

    # -------------------------------------------------------------- modifiers
    def _modifier(self, name: str, value: str) -> None:
        base = name.split()[0]
        if base == "set":
            var = name[3:].strip()
            val = value
            if not var:
                var, _, val = value.partition("=")
                var, val = var.strip(), val.strip()
            if var in _SETTABLE_DKIM:
                # a DKIM policy may overrule the verifier's verdict (spec 58.3)
                self.ctx.variables[var] = self._expand_checked(val)
                return
            if not re.match(r"^acl_[cm][0-9_][A-Za-z0-9_]*$", var):
                raise ConfigError(f"invalid variable name after \"set\" in ACL modifier "
                                  f"\"set {var}\"")
            self.ctx.acl_vars[var] = self._expand_checked(val)
        elif base == "logwrite":
            text = self._expand_checked(value).lstrip()
            targets: tuple[str, ...] = ("main",)
            m = re.match(r"^:([^:]*):\s*(.*)$", text, re.S)
            if m:
                targets = parse_targets(m.group(1), "logwrite", self._unknown_log)
                text = m.group(2)
            # lines written while a message is being received carry its id (as Exim's)
            # (and a rejectlog entry the message's headers)
            during_message = self.where in _MESSAGE_WHERES
            msgid = self._var("message_exim_id") if during_message else ""
            extra = {"headers": self.ctx.headers or []} \
                if during_message and "reject" in targets else {}
            write_to(getattr(self.session, "log", None), targets, string_printing(text),
                     msgid or None, **extra)
        elif base == "log_reject_target":
            self.log_reject_target = parse_targets(self._expand_checked(value),
                                                   "log_reject_target", self._unknown_log)
        elif base == "udpsend":
            ident = getattr(self.session, "host_ident", None)
            during = f" (during SMTP connection from {ident(with_h=False)})" \
                if callable(ident) else ""
            log = getattr(self.session, "log", None)
            udpsend(self._expand_checked(value), log.main if log is not None else None,
                    during)
        elif base == "add_header":
            text = self._expand_checked(value).strip("\n")
            # a newline not followed by white space starts another header line
            for line in re.split(r"\n(?![ \t])", text) if text else []:
                if line.strip():
                    self.add_headers.append(checked_added_header(line))
        elif base == "remove_header":
            text = self._expand_checked(value)
            self.remove_headers.extend(h for h in split_list(text) if h)
        elif base == "control":
            self._control(self._expand_checked(value))
        elif base == "delay":
            text = self._expand_checked(value)
            try:
                secs = parse_value(OptionSpec("delay", "time", 0), text)
            except (ValueError, ConfigError):
                raise AclError(f'syntax error in argument for "delay" modifier: '
                               f'"{text.strip()}" is not a time value') from None
            self._flush_unless("no_delay_flush")
            sleep = getattr(self.session, "sleep", None) or time.sleep
            sleep(secs)
        elif base == "queue":
            if self.where in ("not_smtp", "data", "mime", "dkim", "prdr"):
                raise ConfigError(f"cannot use queue condition in "
                                  f"{'non-SMTP' if self.where == 'not_smtp' else 'DATA'} ACL")
            name = self._expand_checked(value).strip()
            if name and (not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", "..")):
                raise ConfigError(f'invalid queue name "{name}"')
            self.queue = name
        elif base == "continue":
            self._expand_checked(value)

    def _flush_unless(self, control: str) -> None:
        """Send the pipelined replies now (before a delay or a callout, so the client
        does not time out waiting), unless ``control`` was obeyed."""
        flush = getattr(self.session, "flush_output", None)
        if callable(flush) and not self._control_set(control):
            flush()

    def _control_set(self, name: str) -> bool:
        """Whether this ACL, or an earlier one of the session, obeyed control ``name``."""
        if any(c.split("/")[0].strip() == name for c in self.controls):
            return True
        return any(name in getattr(self.session, attr, ())
                   for attr in ("controls", "message_controls"))

    def _unknown_log(self, text: str) -> None:
        """A log name Exim does not know: the paniclog says so and the ACL goes on."""
        log = getattr(self.session, "log", None)
        if log is not None:
            log.panic(f"{text} in {hv.WHERE_NAMES.get(self.where, self.where)} ACL")

    def _debuglog_path(self) -> str:
        """log_file_path with "debug" for %s: where control = debug writes."""
        log = getattr(self.session, "log", None)
        return (log if isinstance(log, Logger) else Logger(self.config)).path_for("debug")

    def _code_checked(self, message: str | None, default: int) -> str | None:
        """A user message whose SMTP code does not start with the default's digit gets
        the default code instead, and a paniclog line, as Exim does."""
        m = re.match(r"[2-5]\d\d(?=\s|$)", message or "")
        if message is None or m is None or m.group(0)[0] == str(default)[0]:
            return message
        self._panic(f"configured error code starts with incorrect digit (expected "
                    f'{str(default)[0]}) in "{message}"')
        return f"{default}{message[3:]}"

    def _panic(self, text: str) -> None:
        log = getattr(self.session, "log", None)
        if log is not None:
            log.panic(text)

    def _expand_checked(self, value: str) -> str:
        try:
            return self._arg(value)
        except _ForcedTrue:
            return ""

    def _arg(self, value: str) -> str:
        """A condition's or modifier's argument expanded, and traced under its "check"
        line as Exim traces it (only text with "$" or a backslash is expanded)."""
        lead, self._arg_lead = self._arg_lead, 0
        try:
            expanded = _expand_arg(value, self.ctx)
        except BaseException:
            self._pending_check = None
            raise
        self._flush_check()
        if lead and debug.acl and ("$" in value or "\\" in value):
            debug.printf(f"{' ' * lead}= {expanded}")
        return expanded

    def _checked(self, run: Callable[[str, str], Any], name: str, value: str) -> Any:
        """Run one condition or modifier; its "check" line is written by the time it
        returns or raises (unless its argument failed to expand: none then, as Exim),
        so a later item can never write it out of place."""
        try:
            return run(name, value)
        finally:
            self._flush_check()

    def _flush_check(self) -> None:
        """Write the "check" line of the item being run if it is still to be written."""
        if self._pending_check is not None:
            debug.printf(self._pending_check)
            self._pending_check = None

    def _trace_error(self, verb: str) -> None:
        if debug.acl:
            debug.printf(f'{verb}: condition test error in {self.shown}')

    def _control(self, value: str) -> None:
        name = value.split("/")[0].strip()
        if name in ACL_CONTROLS_UNSUPPORTED:
            raise ConfigError(f'control "{name}" is not supported in this version of pymta')
        if name not in KNOWN_CONTROLS:
            raise ConfigError(f"unknown control \"{value}\" in ACL modifier")
        check_control_place(name, self.where)
        if name == "debug" and not getattr(self.session, "host_checking", False):
            # at once, so the rest of this ACL is traced too (-bh writes no file, as
            # Exim's does not)
            apply_debug_control(value.strip(), self._debuglog_path, self._panic)
        if name in ("caseful_local_part", "caselower_local_part"):
            # for the rest of this ACL; $local_part starts lower-cased (as Exim's)
            original = getattr(self.session, "rcpt_local_part", None)
            if original is not None:
                self.ctx.variables["local_part"] = taint(
                    original if name == "caseful_local_part" else original.lower())
        if name == "dscp":
            byte = dscp_byte(value.partition("/")[2])
            if byte is None:
                raise ConfigError(f'unrecognised DSCP value in "control={value.strip()}"')
            setter = getattr(self.session, "set_dscp", None)
            if callable(setter):
                setter(byte)      # no socket (-bs, -bh): nothing to mark, as Exim
        if name == "wellknown":
            if self._control_set("no_multiline_responses"):
                raise WellknownFailed("wellknown: multi-line responses are disabled")
            self.wellknown = wellknown_response(value.partition("/")[2].strip())
        self.controls.append(value.strip())

    # -------------------------------------------------------------- conditions
    def _var(self, name: str) -> str:
        return self.ctx.variables.get(name, "") or ""

    def _condition(self, name: str, value: str) -> bool:
        if name == "condition":
            try:
                expanded = expand_string(value, self.ctx)
                if debug.acl:
                    # Exim expands first, then shows the text and its value under it
                    lead = f"check {self.check_name} "
                    debug.printf(f"{lead}= {value}\n{' ' * len(lead)}= {expanded}")
                return expand_bool_condition(expanded)
            except ExpandFail as exc:
                raise _ForcedTrue() from exc
            except ExpandDefer as exc:
                raise AclDefer(str(exc)) from exc
            except Exception as exc:
                text = getattr(exc, "message", None) or exc
                raise AclExpansionError(f'failed to expand ACL string "{value}": {text}') \
                    from exc
        if name == "acl":
            arg = self._arg(value)
            parts = arg.split()
            if not parts:
                return False
            for i, a in enumerate(parts[1:10], 1):
                self.ctx.variables[f"acl_arg{i}"] = a
            self.ctx.variables["acl_narg"] = str(len(parts) - 1)
            res = run_acl(self.config, parts[0], self.where, self.ctx, self.session,
                          self.depth + 1)
            self.add_headers.extend(res.add_headers)
            self.remove_headers.extend(res.remove_headers)
            self.controls.extend(res.controls)
            if res.queue is not None:
                self.queue = res.queue
            if res.verdict == "accept" or res.verdict == "discard":
                return True
            if res.verdict == "defer":
                if res.error:
                    raise AclError(res.log_message or "nested ACL error")
                raise AclDefer(res.message or res.log_message or "nested ACL deferred")
            if res.verdict == "drop":
                raise _Drop(res)
            return False
        if name == "verify":
            return self._verify(self._arg(value))
        if name == "dnslists":
            log = getattr(self.session, "log", None)
            try:
                return check_dnslists(self._arg(value),
                                      self._var("sender_host_address"), self.ctx.variables,
                                      log.main if log is not None else None,
                                      cache=getattr(self.session, "dnslist_cache", None),
                                      log_defer=log_selected(self.config, "dnslist_defer"),
                                      again_nonexist=self._again_means_nonexist)
            except DnsListDefer as exc:
                raise AclDefer(str(exc)) from exc
        if name == "ratelimit":
            return self._ratelimit(self._arg(value))
        if name == "seen":
            spec = parse_seen(self._arg(value), self._var("sender_host_address"))
            return check_seen(spec, SeenDB(self._spool(), getattr(self.session, "log", None)),
                              self.ctx.clock.time())
        if name in ("regex", "mime_regex", "decode"):
            check = {"regex": check_regex, "mime_regex": check_mime_regex,
                     "decode": check_decode}[name]
            return check(self._arg(value),
                         getattr(self.session, "content_scan", None), self.where,
                         self.ctx.variables)
        if name == "dmarc_status":
            return self._dmarc_status(self._arg(value))
        if name in ("dkim_signers", "dkim_status"):
            return self._dkim_condition(name, self._arg(value))
        if name in ("spam", "malware"):
            return self._scanner(name, self._arg(value))
        if name in ("spf", "spf_guess"):
            return self._spf(name, self._arg(value))
        if name in ("csa", "demime", "bmi_optin"):
            # Not implemented yet: the condition never matches.
            self._arg(value)
            return False
        # Expanded here (not by the matcher) so a forced failure ignores the condition.
        return self._match(name, self._arg(value))

    def _misplaced(self, name: str) -> AclError:
        """Exim's ACL error for a condition tested in an ACL where it cannot apply."""
        return AclError(f"cannot test {name} condition in "
                           f"{hv.WHERE_NAMES.get(self.where, self.where)} ACL")

    def _dmarc_status(self, arg: str) -> bool:
        """dmarc_status (DATA ACL): the message's DMARC check, run on first use."""
        if self.where not in ("data", "notsmtp"):
            raise self._misplaced("dmarc_status")
        check = getattr(self.session, "dmarc_check", None)
        if check is None:
            check = self.dmarc_check = self.dmarc_check or DmarcCheck()
        check.disabled = check.disabled or self._control_set("dmarc_disable_verify")
        check.forensic = check.forensic or self._control_set("dmarc_enable_forensic")
        facts = self.session if hasattr(self.session, "spf_outcome") else None
        status = run_check(self.config, self.ctx, check, facts,
                           getattr(self.session, "log", None),
                           getattr(self.session, "send_dmarc_report", None))
        return word_in_list(status, split_list(arg))

    def _spf(self, name: str, arg: str) -> bool:
        """spf / spf_guess (at or after MAIL): the message's SPF check, made once per
        kind; its result in the list."""
        if self.where in ("connect", "helo", "auth", "starttls", "etrn", "expn", "vrfy",
                          "quit", "notquit", "wellknown"):
            raise self._misplaced(name)
        state = getattr(self.session, "spf_state", None)
        if state is None:
            state = self.spf_state = self.spf_state or SpfState()
        result = run_spf(
            "guess" if name == "spf_guess" else "spf", state, self.ctx.variables,
            str(main_option(self.config, "primary_hostname", "") or ""),
            str(main_option(self.config, "spf_guess", "") or ""),
            lambda: expand_string(str(main_option(
                self.config, "spf_smtp_comment_template", "") or ""), self.ctx))
        last = state.last
        if last is not None:
            self.ctx.variables[AUTHRES_SPF] = authres_spf(
                last, self._var("sender_address_domain"), self._var("sender_helo_name"))
        return word_in_list(result, split_list(arg))

    def _scanner(self, name: str, arg: str) -> bool:
        """spam or malware: ask the scanner about the message (pymta/acl/spam.py,
        malware.py).  A scanner problem defers; the reason is already logged, so the
        rejection line has none (as Exim's)."""
        log = getattr(self.session, "log", None)
        msgid = self._var("message_exim_id") or None

        def write(text: str) -> None:
            if log is not None:
                log.main(text, msgid)

        def expand(text: str) -> str:
            return expand_string(text, self.ctx)

        scan = getattr(self.session, "content_scan", None)
        try:
            if name == "spam":
                return check_spam(arg, scan, self.where, self.ctx.variables,
                                  str(main_option(self.config, "spamd_address", "") or ""),
                                  expand, write, self.ctx.clock.time())
            return check_malware(arg, scan, self.where, self.ctx.variables,
                                 str(main_option(self.config, "av_scanner", "") or ""),
                                 expand, write)
        except ScanDefer as exc:
            raise AclDefer("") from exc

    def _again_means_nonexist(self, name: str) -> bool:
        """dns_again_means_nonexist: a DNS name whose temporary failure means "no such
        name"."""
        return match.again_means_nonexist(self.ctx)(name)

    def _spool(self) -> str:
        return str(main_option(self.config, "spool_directory", "") or "")

    def _dkim_condition(self, name: str, arg: str) -> bool:
        """``dkim_signers``: $dkim_cur_signer in a domain/address list; ``dkim_status``:
        $dkim_verify_status in a list of status words.  Only in the DKIM ACL (elsewhere
        an ACL error, as in Exim)."""
        if self.where != "dkim":
            raise self._misplaced(name)
        if name == "dkim_status":
            return _call(match.match_localpart, self._var("dkim_verify_status"), arg, self.ctx)
        signer = self._var("dkim_cur_signer")
        try:
            if "@" in signer:
                return _call(match.match_address, signer, arg, self.ctx)
            return _call(match.match_domain, signer, arg, self.ctx)
        except ExpandDefer as exc:
            raise AclDefer(str(exc)) from exc

    def _ratelimit(self, arg: str) -> bool:
        v = self.ctx.variables
        facts = RateFacts(self.where, self._var("sender_host_address"),
                          _int(v.get("message_size"), -1), _int(v.get("recipients_count"), 0),
                          self._var("local_part"), self._var("domain"))
        spec = parse_ratelimit(arg, facts)
        cache = getattr(self.session, "ratelimit_cache", None)
        if cache is None:
            # No session (a non-SMTP message): remember rates for this ACL run only.
            if self.ratelimit_cache is None:
                self.ratelimit_cache = RatelimitCache()
            cache = self.ratelimit_cache
        db = RatelimitDB(self._spool(), getattr(self.session, "log", None))
        rate = check_ratelimit(spec, db, cache, self.where, self.ctx.clock.time())
        v["sender_rate"] = f"{rate:.1f}"
        v["sender_rate_limit"] = spec.limit_text
        v["sender_rate_period"] = spec.period_text
        return rate >= spec.limit

    def _match(self, name: str, arg: str) -> bool:
        try:
            if name == "domains":
                return _call(match.match_domain, self._var("domain"), arg, self.ctx)
            if name == "sender_domains":
                return _call(match.match_domain, self._var("sender_address_domain"), arg, self.ctx)
            if name == "local_parts":
                # matched in the case the client wrote it (for +caseful), as in Exim
                lp = self._var("local_part")
                cased = str(self.ctx.variables.get("_cc_local_part") or "")
                return _call(match.match_localpart, cased if cased.lower() == lp.lower()
                             else lp, arg, self.ctx)
            if name == "hosts":
                return _call(match.match_host, self._var("sender_host_address"),
                             self._var("sender_host_name"), arg, self.ctx)
            if name == "senders":
                return _call(match.match_address, self._var("sender_address"), arg, self.ctx)
            if name == "recipients":
                rcpt = self._var("local_part") + "@" + self._var("domain")
                return _call(match.match_address, rcpt, arg, self.ctx)
            if name in ("authenticated", "encrypted"):
                # The authenticator's name / the cipher suite, against a string list;
                # false on a connection without authentication / TLS.
                value = self._var("sender_host_authenticated" if name == "authenticated"
                                  else "tls_in_cipher")
                return bool(value) and _call(match.match_localpart, value, arg, self.ctx)
        except ExpandDefer as exc:
            raise AclDefer(str(exc)) from exc
        return False

    def _verify(self, arg: str) -> bool:
        what, *opts = [p.strip() for p in arg.split("/")]
        what = what.lower()
        defer_ok = "defer_ok" in opts
        if opts and what in ("helo", "certificate", "header_syntax", "header_names_ascii"):
            raise ConfigError(f"unexpected '/' found in \"{arg}\" (this verify item has "
                              "no options)")
        if what == "helo":
            check = getattr(self.session, "verify_helo", None)
            return bool(check()) if callable(check) else True
        if what == "certificate":
            # TLS with a client certificate that verified (tls_verify_hosts /
            # tls_try_verify_hosts asked for one).
            return self._var("tls_in_certificate_verified") == "1"
        if what == "csa":
            return self._verify_csa(opts[0] if opts else None)
        if what == "arc":
            return self._verify_arc(opts[0] if opts else None)
        if what in ("header_syntax", "not_blind", "header_sender", "header_names_ascii"):
            return self._verify_headers(what, opts)
        if what == "reverse_host_lookup":
            return self._verify_reverse_host(defer_ok)
        kind, _, given = what.partition("=")
        if kind not in ("recipient", "sender") or (given and kind != "sender"):
            raise ConfigError(f"unknown verify option \"{arg}\"")
        if kind not in addrverify.allowed_in(self.where):
            # As Exim: an ACL error (temporary rejection), not a silent pass or fail.
            raise AclError(f"cannot verify {kind} in ACL for "
                              f"{hv.WHERE_NAMES.get(self.where, self.where)}")
        vopts = addrverify.parse_verify_options(kind, opts)
        if kind == "recipient":
            local_part = self._var("local_part")
            original = getattr(self.session, "rcpt_local_part", None)
            if original and original.lower() == local_part.lower():
                local_part = original        # routers see the case the client used
            address = local_part + "@" + self._var("domain") \
                if self._var("domain") else local_part
            if not address or address == "@":
                address = self._var("recipient")
        else:
            address = arg.split("/", 1)[0].partition("=")[2].strip() if given \
                else self._var("sender_address")
            if not address:
                return True   # the null sender always verifies
        rewritten = self._rewritten(kind, address)
        if kind == "sender" and not given and rewritten != address:
            self._keep_rewritten_sender(rewritten)
        return self._verify_address(kind, rewritten, vopts)

    def _rewritten(self, kind: str, address: str) -> str:
        """The address the rewrite section makes of an envelope address: verification
        routes that one (a recipient's variables keep the address as given)."""
        log = getattr(self.session, "log", None)
        rewriter = main_rewriter(self.config, log if hasattr(log, "main") else None,
                                 self.ctx.variables)
        if rewriter is None:
            return address
        where = Where.ENV_TO if kind == "recipient" else Where.ENV_FROM
        return rewriter.address(address, where).address

    def _keep_rewritten_sender(self, sender: str) -> None:
        """A verified sender stays rewritten: $sender_address from now on, and the
        message's envelope (the session is told, so reception does not rewrite it
        again)."""
        v = self.ctx.variables
        lp, at, dom = sender.rpartition("@")
        v["sender_address"] = taint(sender)
        v["sender_address_local_part"] = taint(lp if at else sender)
        v["sender_address_domain"] = taint(dom if at else "")
        keep = getattr(self.session, "keep_rewritten_sender", None)
        if keep is not None:
            keep(taint(sender))

    def _callouts_skipped(self) -> bool:
        """-bh tests ACLs without calling out (as Exim; -bhc does the callouts)."""
        return bool(getattr(self.session, "host_checking", False)) and \
            not getattr(self.session, "host_checking_callouts", False)

    def _verify_address(self, what: str, address: str,
                        vopts: addrverify.VerifyOptions) -> bool:
        """Route (and call out to) ``address``; record a failure for the reply."""
        if vopts.callout is not None and not self._callouts_skipped():
            self._flush_unless("no_callout_flush")
        # Exim reuses a sender's verification within a message, and tells its details
        # once; a callout is made (or its cache consulted) again, with details each time
        reuse = what == "sender" and vopts.callout is None
        cache = getattr(self.session, "sender_verify_cache", None) if reuse else None
        key = (address, repr(vopts))
        verdict = cache.get(key) if cache is not None else None
        if verdict is not None and debug.verify:
            debug.printf(f"using cached {what} verify result")
        if verdict is None:
            verdict = addrverify.verify_address(self.config, self.ctx, what, address, vopts,
                                                self._callouts_skipped(),
                                                getattr(self.session, "callout_hold", None))
            if cache is not None:
                cache[key] = verdict
            self._log_self_frozen(verdict)
        self.ctx.variables[f"{what}_verify_failure"] = verdict.failure
        if verdict.status == "ok":
            return True
        self.ctx.variables["acl_verify_message"] = verdict.user_text
        if verdict.status == "defer":
            callout = verdict.log_text is not None
            if vopts.defer_ok or (callout and vopts.callout is not None
                                  and vopts.callout.defer_ok):
                if debug.acl:
                    debug.printf("verify defer overridden by "
                                 + ("defer_ok" if vopts.defer_ok else "callout_defer_ok"))
                return True
            if not callout:
                # As Exim: the router's text is the recipient's reason; a sender's is
                # logged on a line of its own when the command is refused; the client
                # gets the default 451 either way.
                if what == "recipient":
                    raise AclDefer(verdict.user_text)
                self._sender_verify_failed(address, verdict, reuse)
                raise AclDefer("Could not complete sender verify")
            if what == "sender":
                self._log("warn", f"sender verify defer for <{address}>: {verdict.log_text}")
                raise AclDefer(verdict.user_text, verdict.user_text)
            raise AclDefer(str(verdict.log_text), verdict.user_text)
        if verdict.plain_reply:
            # verify = recipient/quota: Exim gives the client no verify text.
            self.cond_log = verdict.log_text
            return False
        if what == "sender":
            self._sender_verify_failed(address, verdict, reuse)
        else:
            self.verify_failed = what
            self.verify_address = address
            self.verify_message = verdict.user_text
            self.verify_log, self.verify_head = verdict.log_text, verdict.head
        if what == "recipient" and verdict.log_text is not None:
            self.cond_log = verdict.log_text
        return False

    def _log_self_frozen(self, verdict: addrverify.AddressVerdict) -> None:
        """The line Exim writes when a router's ``self = freeze`` stops a verification."""
        fullhost = lookup_variable("sender_fullhost", self.ctx)
        for text, address in verdict.self_frozen:
            where = f"verifying <{address}> from host {fullhost}" if fullhost \
                else f"routing <{address}>"
            self._log("main", f"{text} (while {where})")

    def _sender_verify_failed(self, address: str, verdict: addrverify.AddressVerdict,
                              reuse: bool) -> None:
        """Remember a sender verification that failed or deferred, for the reply and the
        "sender verify fail/defer for" log line written when the command is refused."""
        self.verify_failed = "sender"
        self.verify_address = address
        self.verify_message = verdict.user_text
        self.verify_log, self.verify_head = verdict.log_text, verdict.head
        if reuse and getattr(self.session, "sender_verify_reported", False):
            self.verify_head = ""       # told once: now only "Sender verify failed"

    # -------------------------------------------------------------- header/host verify
    def _verify_failed(self, text: str) -> bool:
        self.cond_log = text
        self.ctx.variables["acl_verify_message"] = text
        return False

    def _unqualified_ok(self, kind: str) -> bool:
        ip = self._var("sender_host_address")
        if not ip:
            return True        # locally submitted messages may use bare local parts
        option = f"{kind}_unqualified_hosts"
        try:
            text = getattr(self.config.main, option)
        except AttributeError:
            return False
        if not text:
            return False
        try:
            return bool(match.match_host(ip, self._var("sender_host_name") or None,
                                         str(text), self.ctx))
        except ExpandDefer:
            return False

    def _verify_headers(self, what: str, opts: list[str]) -> bool:
        if self.where not in hv.MESSAGE_WHERES:
            raise AclError(f"cannot verify {what} in ACL for "
                              f"{hv.WHERE_NAMES.get(self.where, self.where)}")
        headers = self.ctx.headers or []
        if what == "header_syntax":
            strip = AddressSyntax(
                bool(main_option(self.config, "strip_excess_angle_brackets", False)),
                bool(main_option(self.config, "strip_trailing_dot", False)),
                bool(main_option(self.config, "allow_utf8_domains", False))
                or self._var("message_smtputf8") == "yes")
            err = hv.check_header_syntax(headers, self._unqualified_ok, strip)
        elif what == "header_names_ascii":
            err = hv.check_header_names_ascii(headers)
        elif what == "not_blind":
            for o in opts:
                if o and o != "case_insensitive":
                    raise ConfigError(f"unknown option \"{o}\" in ACL \"verify = not_blind\"")
            # Unqualified header addresses are compared as written (Exim does not
            # qualify them here), so they never match an envelope recipient.
            err = hv.check_not_blind(headers, hv.recipients_of(self.ctx, self.session),
                                     "case_insensitive" in opts)
        else:
            return self._verify_header_sender(
                hv, headers, addrverify.parse_verify_options("header_sender", opts))
        return True if err is None else self._header_verify_failed(err)

    def _header_verify_failed(self, text: str, detail: str | None = None) -> bool:
        """A header check failed: ``text`` is logged; with smtp_return_error_details the
        client is told it too (and ``detail``), as Exim tells it."""
        if main_option(self.config, "smtp_return_error_details", False):
            self.cond_message = f"Rejected after DATA: {detail or text}"
        return self._verify_failed(text)

    def _verify_header_sender(self, hv: Any, headers: list[str],
                              vopts: addrverify.VerifyOptions) -> bool:
        deferred: str | None = None
        candidates = hv.header_sender_candidates(headers)
        # Any syntax error fails the check, even after a verifiable address (as Exim).
        for name, pa in candidates:
            if pa.error is not None or not pa.address:
                if debug.verify:
                    debug.printf(f"verifying {name}: header address {pa.raw}")
                return self._header_verify_failed(hv.header_sender_syntax_error(name, pa))
        refused: str | None = None          # the last address that did not verify
        for name, pa in candidates:
            if debug.verify:
                debug.printf(f"verifying {name}: header address {pa.raw}")
            match.forget_domain_answers()         # Exim remembers them per address
            address = pa.address
            if not pa.qualified:
                if not self._unqualified_ok("sender"):
                    continue       # a bare local part from a remote host cannot verify
                qd = getattr(getattr(self.config, "main", None), "qualify_domain", "")
                address = f"{address}@{qd}"
            verdict = addrverify.verify_address(self.config, self.ctx, "header_sender",
                                                address, vopts, self._callouts_skipped())
            if verdict.status == "ok":
                return True
            if verdict.status == "fail":
                refused = (f'could not verify "{name}:" header address\n{pa.address}: '
                           f'{verdict.user_text or verdict.log_text or "Unrouteable address"}')
            if verdict.status == "defer" and deferred is None:
                if vopts.callout is not None and vopts.callout.defer_ok:
                    return True
                detail = verdict.log_text or verdict.user_text or "verify deferred"
                deferred = f"<{pa.address}>: {detail}"
        if deferred is not None:
            if vopts.defer_ok:
                return True
            self.ctx.variables["acl_verify_message"] = deferred
            raise AclDefer(f"header_sender verify defer for {deferred}",
                           "Could not complete sender verify")
        return self._header_verify_failed("there is no valid sender in any header line",
                                          refused)

    def _verify_arc(self, accept: str | None) -> bool:
        """``verify = arc[/states]``: evaluate the message's ARC chain (DATA ACL only),
        set the $arc_* variables, succeed when the state is listed (none:pass)."""
        scan = getattr(self.session, "content_scan", None)
        if self.where != "data" or scan is None:
            raise AclError("cannot verify arc in ACL for "
                              f"{hv.WHERE_NAMES.get(self.where, self.where)}")
        result = arc_verify.evaluate(arc_verify.message_bytes(scan.headers, scan.body))
        arc_verify.set_variables(self.ctx.variables, result)
        return arc_verify.accepted(result, accept)

    def _verify_csa(self, domain: str | None) -> bool:
        """``verify = csa[/domain]``; the default domain is the HELO name, or the
        client's address when there was no HELO."""
        if domain is None:
            domain = self._var("sender_helo_name") or self._var("sender_host_address")
        result = check_csa(domain, self._var("sender_host_address"),
                           int(main_option(self.config, "dns_csa_search_limit", 5)),
                           bool(main_option(self.config, "dns_csa_use_reverse", True)))
        self.ctx.variables["csa_status"] = result.status
        # Exim sets the texts whatever the result: "deny verify = csa" says why too.
        self.cond_log = self.cond_message = result.message
        return result.passed

    def _verify_reverse_host(self, defer_ok: bool) -> bool:
        ip = self._var("sender_host_address")
        if not ip:
            return True          # no client host: a local message always passes
        if self._var("sender_host_name"):
            return True          # already looked up and forward-confirmed
        if self._var("host_lookup_failed") == "1":
            # The connection's own lookup already failed: Exim does not ask again.
            return self._verify_failed(f"host lookup failed for reverse lookup check "
                                       f"({NO_HOST_NAME})")
        if debug.acl:
            debug.printf("looking up host name to force name/address consistency check")
        try:
            found = match.lookup_client_name(self.ctx, ip)
        except HostLookupDeferred:
            if defer_ok:
                return True
            raise AclDefer("host lookup deferred for reverse lookup check") from None
        if found.name:
            return True
        return self._verify_failed(f"host lookup failed for reverse lookup check "
                                   f"({found.reason})")


def _int(text: str | None, default: int) -> int:
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return default


def _call(func: Any, *args: Any) -> bool:
    """Call a pymta.match function on an already expanded list."""
    return bool(func(*args, expand=False))


class _Drop(Exception):
    def __init__(self, result: AclResult):
        super().__init__("drop")
        self.result = result


_DEFAULT_TEXT = {"deny": "Administrative prohibition", "drop": "Administrative prohibition",
                 "defer": "Temporary local problem - please try later"}


def acl_smtp_reply(result: AclResult, where: str,
                   multiline: bool = True) -> tuple[int, str]:
    """The SMTP code and text (may be multi-line) Exim sends for an ACL result.

    ``multiline=False`` (control = no_multiline_responses) keeps only the last line of
    a sender verify failure and the first line of a message.  A long message is broken
    into lines as Exim breaks it (:func:`split_user_message`)."""
    code, text, _ = acl_smtp_reply_parts(result, where, multiline)
    return code, text


def acl_smtp_reply_parts(result: AclResult, where: str,
                         multiline: bool = True) -> tuple[int, str, str]:
    """:func:`acl_smtp_reply`, and the ACL's own part of the text: without the lines
    about a failed sender verification that come first (DATA's "All RCPT commands
    were rejected" repeats only that part)."""
    verdict = result.verdict
    if verdict in ("accept", "discard"):
        default = 250
        text = {"mail": "OK", "rcpt": "Accepted", "predata": "OK", "data": "OK"}.get(where, "OK")
        if result.message:
            code, text = smtp_reply_text(result.message, default)
            text = text.split("\n", 1)[0] if not multiline else text
            return code, text, text
        return default, text, text
    default = 451 if verdict == "defer" else 550
    text = _DEFAULT_TEXT[verdict]
    if verdict != "defer" and result.verify_failed == "recipient":
        text = result.verify_message or "Unrouteable address"
    code = default
    if result.message:
        code, text = smtp_reply_text(result.message, default)
    else:
        text = split_user_message(text)
    own = text
    if verdict != "defer" and result.verify_failed == "sender":
        own = tail = text if result.message else "Sender verify failed"
        head = result.verify_head if result.verify_head is not None \
            else f"Verification failed for <{result.verify_address}>"
        text = f"{head}\n{result.verify_message}\n{tail}" if head and multiline else tail
    if not multiline:
        text = text.split("\n", 1)[0]
        own = own.split("\n", 1)[0]
    return code, text, own


def _default_runner(name: str, args: list[str], ctx: ExpandContext) -> AclResult:
    """How ``${acl}`` runs an ACL outside an ACL or SMTP session: as a DATA-time ACL."""
    return run_acl(ctx.config, name, "data", ctx)


set_default_acl_runner(_default_runner)
set_session_acl_runner(lambda name, ctx, session: run_acl(ctx.config, name, "data", ctx, session))
