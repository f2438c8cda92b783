"""Running an Exim filter file (filter manual, chapter 3).

:func:`run_exim_filter` parses the whole file, then obeys it against one
:class:`FilterEnvironment`.  Deliveries are only set up (the returned
:class:`~pymta.filter.result.FilterResult` lists them); ``logwrite`` writes at once.  In
test mode (``pymta -bf``/``-bF``) each action is described on ``test_output`` instead,
in the words Exim uses, and nothing is written anywhere.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Iterator, TextIO

from pymta.expand import ExpandContext, ExpandError, ExpandFail, expand_string
from pymta.expand.evaluator import compile_regex
from pymta.osutil import can_switch_ids, switched_ids
from pymta.taint import captures

from .exim_parse import Command, Condition, IfCommand, Node, parse_filter
from .result import (
    DEFER,
    DELIVERED,
    FAIL,
    FREEZE,
    NOT_DELIVERED,
    FilterAction,
    FilterError,
    FilterResult,
    ReplySpec,
    bare_address,
)

_LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe",
                 "list-post", "list-owner", "list-archive")
_DAEMON_SENDERS = ("server@", "daemon@", "root@", "listserv@", "majordomo@", "-request@")
_OWNER = re.compile(r"^owner-[^@]+@", re.IGNORECASE)
_VACATION_DEFAULTS = {"subject": "On vacation", "file": ".vacation.msg",
                      "log": ".vacation.log", "once": ".vacation", "once_repeat": "7d"}
_HEADER_FIELDS = ("to", "cc", "bcc", "from", "reply_to", "subject")


@dataclass
class FilterEnvironment:
    """What a filter run may see and do.

    ``ctx`` is the expansion context of the address (or message, for the system
    filter); the run sets ``$n0``-``$n9``, ``$thisaddress`` and the numeric variables in
    it.  ``user_addresses`` are the addresses that count as the user's own (the
    ``personal`` test, and the only ``errors_to`` a user filter may give).
    ``test_output`` switches to test mode.  ``log_ids`` is the uid/gid ``logwrite``
    writes as (None: as this process, which Exim allows only when it is not root).
    """

    ctx: ExpandContext
    system: bool = False
    allowed: frozenset[str] = frozenset()      # fail/freeze/defer in a user filter
    test_output: TextIO | None = None
    verbose: bool = False
    error_message: bool = False
    first_delivery: bool = True
    manually_thawed: bool = False
    user_addresses: list[str] = field(default_factory=list)
    forbid_file: bool = False
    forbid_pipe: bool = False
    forbid_reply: bool = False
    forbid_logwrite: bool = False
    prepend_home: bool = True
    qualify_domain: str = "localhost"
    log_ids: tuple[int, int] | None = None


class _Stop(Exception):
    """finish, fail, freeze or defer: stop obeying commands."""


def printable(text: str) -> str:
    """Show non-printing characters as escapes (Exim's test output)."""
    out = []
    for c in text:
        if c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif (c < " " and c != "\t") or c == "\x7f":
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    return "".join(out)


class EximFilter:
    """One run of a parsed Exim filter."""

    def __init__(self, commands: list[Node], env: FilterEnvironment):
        self.commands = commands
        self.env = env
        self.ctx = env.ctx
        self.result = FilterResult()
        self.delivered = False
        self.logfile: tuple[str, int] | None = None
        for i in range(10):
            # $n0-$n9 start at zero; $sn0-$sn9 are what the system filter left
            self.ctx.variables[f"n{i}"] = "0"
            self.ctx.variables.setdefault(f"sn{i}", "0")

    # -- running ---------------------------------------------------------------------
    def run(self) -> FilterResult:
        try:
            self._obey(self.commands, 0)
        except _Stop:
            pass
        res = self.result
        if res.status == NOT_DELIVERED and self.delivered:
            res.status = DELIVERED
        return res

    def _obey(self, nodes: list[Node], depth: int) -> None:
        for node in nodes:
            if isinstance(node, IfCommand):
                self._if(node, depth)
            else:
                getattr(self, f"_do_{node.name}")(node)

    def _if(self, node: IfCommand, depth: int) -> None:
        saved_this = self.ctx.variables.get("thisaddress")
        try:
            for cond, body in node.branches:
                if self._test(cond, depth + 1):
                    self._obey(body, depth + 1)
                    return
            self._obey(node.otherwise, depth + 1)
        finally:
            if saved_this is None:
                self.ctx.variables.pop("thisaddress", None)
            else:
                self.ctx.variables["thisaddress"] = saved_this

    # -- expansion -------------------------------------------------------------------
    def _expand(self, text: str, where: str) -> str:
        try:
            return expand_string(text, self.ctx)
        except ExpandFail:
            raise FilterError(f'failed to expand "{text}" {where}: forced failure') \
                from None
        except ExpandError as exc:
            raise FilterError(f'failed to expand "{text}" {where}: {exc}') from None

    def _arg(self, cmd: Command, key: str = "value") -> str:
        return self._expand(cmd.args[key], f"in {cmd.name} command")

    def _say(self, line: str) -> None:
        out = self.env.test_output
        if out is not None:
            out.write(line + "\n")

    @property
    def testing(self) -> bool:
        return self.env.test_output is not None

    def _significance(self, cmd: Command, default: bool) -> tuple[bool, str]:
        """Whether the command's delivery is significant, and the test-output prefix."""
        if cmd.seen is None:
            return default, ""
        if cmd.seen == default:
            return default, ""
        return cmd.seen, "Seen " if cmd.seen else "Unseen "

    def _action(self, action: FilterAction) -> None:
        self.result.actions.append(action)
        if action.significant:
            self.delivered = True

    # -- commands --------------------------------------------------------------------
    def _do_add(self, cmd: Command) -> None:
        value = self._arg(cmd).strip()
        name = self._expand(cmd.args["variable"], "in add command").strip()
        if not re.fullmatch(r"n[0-9]", name):
            raise FilterError(f'unknown variable "{name}" in "add" command')
        try:
            amount = int(value)
        except ValueError:
            raise FilterError(f'malformed number "{value}" in "add" command') from None
        index = int(name[1])
        self.result.user_vars[index] += amount
        self.ctx.variables[name] = str(self.result.user_vars[index])
        self._say(f"Add {amount} to {name}")

    def _do_deliver(self, cmd: Command) -> None:
        significant, prefix = self._significance(cmd, True)
        address = bare_address(self._arg(cmd))
        if not address:
            raise FilterError(f'empty address in "deliver" command near line {cmd.line}')
        if "@" not in address:
            address = f"{address}@{self.env.qualify_domain}"
        errors_to = None
        if "errors_to" in cmd.args:
            errors_to = bare_address(self._expand(cmd.args["errors_to"], "in deliver command"))
            if not self.env.system and errors_to.lower() not in \
                    (a.lower() for a in self.env.user_addresses):
                raise FilterError("errors_to must point to the caller's address")
        tail = (" (noerror)" if cmd.noerror else "") + \
            (f" errors_to {errors_to}" if errors_to else "")
        self._say(f"{prefix}{'deliver' if prefix else 'Deliver'} message to: "
                  f"{address}{tail}")
        self._action(FilterAction("address", address, significant, cmd.noerror, errors_to))

    def _do_save(self, cmd: Command) -> None:
        significant, prefix = self._significance(cmd, True)
        if self.env.forbid_file:
            raise FilterError('filtering command "save" is disabled', cmd.line)
        path = self._arg(cmd)
        if not path:
            raise FilterError(f'empty file name in "save" command near line {cmd.line}')
        mode = _octal(cmd.args.get("mode"))
        home = self.ctx.variables.get("home") or ""
        if not path.startswith("/") and home and self.env.prepend_home and not self.testing:
            path = f"{home.rstrip('/')}/{path}"
        shown = f" {mode:04o}" if mode is not None else ""
        self._say(f"{prefix}{'save' if prefix else 'Save'} message to: {path}{shown}")
        kind = "directory" if path.endswith("/") else "file"
        self._action(FilterAction(kind, path, significant, cmd.noerror, mode=mode))

    def _do_pipe(self, cmd: Command) -> None:
        significant, prefix = self._significance(cmd, True)
        if self.env.forbid_pipe:
            raise FilterError('filtering command "pipe" is disabled', cmd.line)
        command = cmd.args["value"]         # expanded word by word when it runs
        self._say(f"{prefix}{'pipe' if prefix else 'Pipe'} message to: {command}")
        self._action(FilterAction("pipe", command, significant, cmd.noerror,
                                  expand_pipe=True))

    def _do_mail(self, cmd: Command) -> None:
        significant, prefix = self._significance(cmd, False)
        if self.env.forbid_reply:
            raise FilterError(f'filtering command "{cmd.name}" is disabled', cmd.line)
        vacation = cmd.name == "vacation"
        args = dict(cmd.args)
        file_expand = "expand" in cmd.flags
        if vacation:
            if "file" not in args:
                file_expand = True
            for key, value in _VACATION_DEFAULTS.items():
                args.setdefault(key, value)
        values = {k: self._expand(v, f"in {cmd.name} command") for k, v in args.items()}
        for key in _HEADER_FIELDS:
            field_value = values.get(key)
            if field_value and re.search(r"\n(?![ \t])", field_value):
                raise FilterError(f'\\n not followed by space in "{printable(field_value)}" in '
                                  f"{cmd.name} command")
        if self.testing:
            self._describe_mail(values, prefix, vacation, file_expand, "return" in cmd.flags)
        if self.env.error_message:
            return          # no replies to a bounce (and none of them is significant)
        reply = ReplySpec(
            to=values.get("to"), cc=values.get("cc"), bcc=values.get("bcc"),
            from_=values.get("from"), reply_to=values.get("reply_to"),
            subject=values.get("subject"), headers=values.get("extra_headers"),
            text=values.get("text"), file=values.get("file"), file_expand=file_expand,
            return_message="return" in cmd.flags, log=values.get("log"),
            once=values.get("once"), once_repeat=values.get("once_repeat"))
        self._action(FilterAction("reply", values.get("to") or "", significant,
                                  cmd.noerror, reply=reply))

    _do_vacation = _do_mail

    def _describe_mail(self, values: dict[str, str], prefix: str, vacation: bool,
                       file_expand: bool, returned: bool) -> None:
        to = values.get("to")
        head = f"{prefix}{'mail' if prefix else 'Mail'} to: {printable(to) if to else '<default>'}"
        self._say(head + (" (vacation)" if vacation else ""))
        for key in ("cc", "bcc", "from", "reply_to", "subject", "extra_headers", "text",
                    "file", "log", "once", "once_repeat"):
            if key in values:
                shown = printable(values[key])
                if key == "file" and file_expand:
                    shown += " (expanded)"
                self._say(f"{key:>7}: {shown}")
        if returned:
            self._say("Return original message")

    def _do_logfile(self, cmd: Command) -> None:
        if self.env.forbid_logwrite:
            raise FilterError('filtering command "logfile" is disabled', cmd.line)
        path = self._arg(cmd)
        if not path.startswith("/") and not self.testing:
            raise FilterError(f'logfile path "{path}" is not absolute', cmd.line)
        mode = _octal(cmd.args.get("mode"))
        self.logfile = (path, 0o600 if mode is None else mode)
        self._say(f"Logfile {path}")

    def _do_logwrite(self, cmd: Command) -> None:
        if self.env.forbid_logwrite:
            raise FilterError('filtering command "logwrite" is disabled', cmd.line)
        text = self._arg(cmd)
        if not text.endswith("\n"):
            text += "\n"
        if self.testing:
            self._say(f'Logwrite "{printable(text)}"')
            return
        if self.logfile is None:
            raise FilterError('"logwrite" used without a previous "logfile"', cmd.line)
        if self.env.log_ids is None and os.geteuid() == 0:
            return      # as Exim: a filter running as root does not write logs
        path, mode = self.logfile
        try:
            with self._as_user():
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
                try:
                    os.write(fd, text.encode("utf-8", "surrogateescape"))
                finally:
                    os.close(fd)
        except OSError as exc:
            raise FilterError(f"failed to write to log file {path}: "
                              f"{exc.strerror or exc}") from None

    @contextlib.contextmanager
    def _as_user(self) -> Iterator[None]:
        ids = self.env.log_ids
        if ids is not None and can_switch_ids() and ids[0] != os.geteuid():
            with switched_ids(*ids):
                yield
        else:
            yield

    def _do_testprint(self, cmd: Command) -> None:
        text = self._arg(cmd)
        self._say(f"Testprint: {printable(text)}")

    def _do_finish(self, cmd: Command) -> None:
        significant, prefix = self._significance(cmd, False)
        if significant:
            self.delivered = True
        self._say(f"{prefix}{'finish' if prefix else 'Finish'}")
        raise _Stop()

    def _stop_with(self, cmd: Command, status: str) -> None:
        text = self._arg(cmd) if "value" in cmd.args else ""
        self._say(f'{cmd.name.capitalize()} text "{printable(text)}"')
        if status == FREEZE and self.env.manually_thawed:
            return      # a manually thawed message is not frozen again by the filter
        self.result.status = status
        self.result.message = text
        self._say(f'Filtering ended by "{cmd.name}".')
        raise _Stop()

    def _do_fail(self, cmd: Command) -> None:
        self._stop_with(cmd, FAIL)

    def _do_freeze(self, cmd: Command) -> None:
        self._stop_with(cmd, FREEZE)

    def _do_defer(self, cmd: Command) -> None:
        self._stop_with(cmd, DEFER)

    def _do_headers(self, cmd: Command) -> None:
        if "charset" in cmd.args:
            self._arg(cmd, "charset")       # headers are always decoded to UTF-8
            return
        headers = self.ctx.headers if self.ctx.headers is not None else []
        if "add" in cmd.args:
            self._say(f'Headers add "{printable(cmd.args["add"])}"')
            try:
                text = expand_string(cmd.args["add"], self.ctx).lstrip()
            except ExpandFail:
                return
            except ExpandError as exc:
                raise FilterError(f'failed to expand "{cmd.args["add"]}" in headers '
                                  f"command: {exc}") from None
            if text:
                text = text if text.endswith("\n") else text + "\n"
                self.result.headers_add.append(text)
                headers.append(text)
        else:
            self._say(f'Headers remove "{printable(cmd.args["remove"])}"')
            names = [n.strip().rstrip(":").lower()
                     for n in self._arg(cmd, "remove").split(":") if n.strip()]
            self.result.headers_remove.extend(names)
            headers[:] = [h for h in headers
                          if h.partition(":")[0].strip().lower() not in names]
        self.ctx.headers = headers

    # -- conditions ------------------------------------------------------------------
    def _test(self, cond: Condition, depth: int) -> bool:
        value = self._evaluate(cond, depth)
        if self.env.verbose:
            sys.stderr.write(f"{' ' * depth}Condition is {'true' if value else 'false'}: "
                             f"{_show_condition(cond)}\n")
        return value

    def _evaluate(self, cond: Condition, depth: int) -> bool:
        kind = cond.kind
        if kind == "and":
            return all(self._evaluate(c, depth) for c in cond.operands)
        if kind == "or":
            return any(self._evaluate(c, depth) for c in cond.operands)
        if kind == "not":
            return not self._evaluate(cond.operands[0], depth)
        if kind == "delivered":
            return self.delivered
        if kind == "error_message":
            return self.env.error_message
        if kind == "first_delivery":
            return self.env.first_delivery
        if kind == "manually_thawed":
            return self.env.manually_thawed
        if kind == "personal":
            return self._personal(cond.aliases)
        if kind == "foranyaddress":
            return self._for_any_address(cond, depth)
        left = self._expand(cond.left, "in filter file")
        right = self._expand(cond.right, "in filter file")
        if kind == "number":
            a, b = _number(left), _number(right)
            result = a > b if cond.op == "above" else a < b
            return result != cond.negate
        return self._compare(cond, left, right) != cond.negate

    def _compare(self, cond: Condition, left: str, right: str) -> bool:
        op = cond.op
        if op == "matches":
            flags = 0 if cond.case_sensitive else re.IGNORECASE
            try:
                m = compile_regex(right, flags).search(left)
            except ExpandError as exc:
                raise FilterError(str(exc)) from None
            if m:
                self.ctx.numbered = captures(m, left)
            return m is not None
        if not cond.case_sensitive:
            left, right = left.lower(), right.lower()
        if op == "is":
            return left == right
        if op == "contains":
            return right in left
        if op == "begins":
            return left.startswith(right)
        return left.endswith(right)

    def _for_any_address(self, cond: Condition, depth: int) -> bool:
        text = self._expand(cond.left, "in filter file")
        for _name, address in getaddresses([text]):
            if not address:
                continue
            self.ctx.variables["thisaddress"] = address
            if self._evaluate(cond.operands[0], depth):
                return True
        return False

    def _personal(self, aliases: list[str]) -> bool:
        if self.env.error_message:
            return False
        headers = self.ctx.headers or []
        values: dict[str, list[str]] = {}
        for h in headers:
            name, _, value = h.partition(":")
            values.setdefault(name.strip().lower(), []).append(" ".join(value.split()))
        if any(n in values for n in _LIST_HEADERS):
            return False
        auto = values.get("auto-submitted")
        if auto and auto[0].strip().lower() != "no":
            return False
        precedence = " ".join(values.get("precedence", [])).lower()
        if any(word in precedence for word in ("bulk", "list", "junk")):
            return False
        mine = {a.lower() for a in self.env.user_addresses}
        mine |= {bare_address(self._expand(a, "in filter file")).lower() for a in aliases}
        to = [a.lower() for _n, a in getaddresses(values.get("to", [])) if a]
        if not any(a in mine for a in to):
            return False
        for _n, sender in getaddresses(values.get("from", [])):
            s = sender.lower()
            if s in mine or any(d in s for d in _DAEMON_SENDERS) or _OWNER.search(s):
                return False
        return True


def _show_condition(cond: Condition) -> str:
    if cond.kind in ("string", "number"):
        op = ("does not " if cond.negate and cond.kind == "string" and cond.op != "is"
              else "") + cond.op
        if cond.kind == "number" or cond.op == "is":
            op = "is " + ("not " if cond.negate else "") + \
                (cond.op if cond.kind == "number" else "")
        return f"{cond.left} {op.strip()} {cond.right} "
    if cond.kind in ("and", "or"):
        return f" {cond.kind} ".join(_show_condition(c) for c in cond.operands)
    if cond.kind == "not":
        return "not " + _show_condition(cond.operands[0])
    return cond.kind + " "


def _octal(text: str | None) -> int | None:
    if text is None:
        return None
    digits = re.match(r"[0-7]*", text.strip())
    return int(digits.group(0), 8) if digits and digits.group(0) else 0


def _number(text: str) -> int:
    m = re.fullmatch(r"\s*(-?\d+)([kKmM]?)\s*", text)
    if not m:
        raise FilterError(f'malformed numerical string "{text}"')
    value = int(m.group(1))
    return value * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def run_exim_filter(text: str, env: FilterEnvironment) -> FilterResult:
    """Parse and obey an Exim filter; FilterError for a syntax or run-time error."""
    allowed = frozenset({"fail", "freeze", "defer"}) if env.system else env.allowed
    commands = parse_filter(text, env.system, allowed)
    return EximFilter(commands, env).run()


def filter_summary(result: FilterResult) -> str:
    """The closing lines of ``-bf`` output."""
    if result.status in (DEFER, FAIL, FREEZE):
        return ""
    if result.status == DELIVERED:
        return ("Filtering set up at least one significant delivery or other action.\n"
                "No other deliveries will occur.\n")
    return "Filtering did not set up a significant delivery.\nNormal delivery will occur.\n"
