"""Sieve filters (RFC 5228) with the extensions Exim 4.96 offers.

Capabilities: envelope, fileinto, copy, subaddress, encoded-character, vacation
(RFC 5230), enotify (RFC 5435, mailto only, when the router enables it) and the
comparators i;octet, i;ascii-casemap, en;ascii-casemap and i;ascii-numeric.  Like
Exim, ``reject``, ``relational``, ``regex``, ``body``, ``variables`` and ``imap4flags``
are unknown capabilities.

``keep`` (and the implicit keep) files the message into "inbox", which the
file_transport maps to the user's mailbox; ``fileinto`` names other folders; both go to
the redirect router's file_transport with the folder name in $address_file.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.utils import getaddresses
from typing import Any, TextIO

from pymta import rfc2047
from pymta.expand import ExpandContext

from .result import DELIVERED, FilterAction, FilterError, FilterResult, ReplySpec, bare_address

CAPABILITIES = frozenset({
    "envelope", "fileinto", "copy", "subaddress", "encoded-character", "vacation",
    "enotify", "comparator-i;octet", "comparator-i;ascii-casemap",
    "comparator-en;ascii-casemap", "comparator-i;ascii-numeric"})

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+) | (?P<hash>\#[^\n]*) | (?P<block>/\*.*?\*/)
  | (?P<text>text:[ \t]*(?:\#[^\n]*)?\r?\n) | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[0-9]+[KMG]?) | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*) | (?P<punct>[;,()\[\]{}])
""", re.VERBOSE | re.DOTALL)


@dataclass
class Token:
    kind: str           # "str", "num", "tag", "id", or the punctuation character
    value: Any
    line: int


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        m = _TOKEN.match(text, i)
        if m is None:
            raise FilterError("syntax error", line, where="", tail="")
        kind = m.lastgroup or ""
        chunk = m.group(0)
        if kind == "text":                      # multi-line string up to a lone "."
            start = m.end()
            end = re.compile(r"^\.\r?$", re.M).search(text, start)
            if end is None:
                raise _error("missing end of multi line string", line)
            body = text[start:end.start()]
            value = "\n".join(ln[1:] if ln.startswith("..") else ln
                              for ln in body.split("\n"))
            out.append(Token("str", value, line))
            line += text.count("\n", i, end.end())
            i = end.end()
            continue
        if kind == "str":
            out.append(Token("str", re.sub(r"\\(.)", r"\1", chunk[1:-1], flags=re.S), line))
        elif kind == "num":
            scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(chunk[-1].lower(), 1)
            out.append(Token("num", int(chunk.rstrip("KMG")) * scale, line))
        elif kind == "tag":
            out.append(Token("tag", chunk[1:].lower(), line))
        elif kind == "id":
            out.append(Token("id", chunk.lower(), line))
        elif kind == "punct":
            out.append(Token(chunk, chunk, line))
        line += chunk.count("\n")
        i = m.end()
    return out


def _error(message: str, line: int) -> FilterError:
    return FilterError(f"{message} in line {line}")


@dataclass
class Test:
    name: str
    tags: dict[str, Any]
    args: list[Any]
    tests: list["Test"]
    line: int


@dataclass
class Command:
    name: str
    tags: dict[str, Any]
    args: list[Any]
    test: Test | None
    block: list["Command"] | None
    line: int
    branches: list[tuple[Test, list["Command"]]] = field(default_factory=list)
    otherwise: list["Command"] | None = None


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.end_line = text.count("\n") + 1
        self.i = 0
        self.required: set[str] = set()

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def line(self) -> int:
        tok = self.peek()
        return tok.line if tok else self.end_line

    def take(self, kind: str) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.kind == kind:
            self.i += 1
            return tok
        return None

    def commands(self, in_block: bool) -> list[Command]:
        out: list[Command] = []
        while True:
            tok = self.peek()
            if tok is None:
                if in_block:
                    raise _error("expecting command or closing brace", self.line())
                return out
            if tok.kind == "}" and in_block:
                return out
            out.append(self.command())

    def command(self) -> Command:
        tok = self.take("id")
        if tok is None:
            raise _error("syntax error", self.line())
        name = tok.value
        if name in ("elsif", "else"):
            raise _error(f"{name} without if", tok.line)
        tags, args = self.arguments()
        test = self.test() if name == "if" else None
        if name == "if":
            cmd = Command(name, tags, args, test, None, tok.line)
            cmd.branches.append((test, self.block()))       # type: ignore[arg-type]
            while self.peek() is not None and self.peek().value == "elsif":  # type: ignore
                self.i += 1
                cond = self.test()
                cmd.branches.append((cond, self.block()))
            if self.peek() is not None and self.peek().value == "else":      # type: ignore
                self.i += 1
                cmd.otherwise = self.block()
            return cmd
        if not self.take(";"):
            raise _error("missing semicolon", self.line())
        cmd = Command(name, tags, args, None, None, tok.line)
        self.check(cmd)
        return cmd

    def block(self) -> list[Command]:
        if not self.take("{"):
            raise _error("missing block", self.line())
        body = self.commands(True)
        self.take("}")
        return body

    def arguments(self) -> tuple[dict[str, Any], list[Any]]:
        tags: dict[str, Any] = {}
        args: list[Any] = []
        while True:
            tok = self.peek()
            if tok is None:
                return tags, args
            if tok.kind == "tag":
                self.i += 1
                if tok.value in _TAGS_WITH_VALUE:
                    value = self.peek()
                    if value is None or value.kind not in ("str", "num", "["):
                        raise _error(f"missing argument for :{tok.value}", tok.line)
                    tags[tok.value] = self.value()
                else:
                    tags[tok.value] = True
            elif tok.kind in ("str", "num", "["):
                args.append(self.value())
            else:
                return tags, args

    def value(self) -> Any:
        tok = self.peek()
        assert tok is not None
        if tok.kind == "[":
            self.i += 1
            items = []
            while True:
                s = self.take("str")
                if s is None:
                    raise _error("string list expected", self.line())
                items.append(s.value)
                if self.take("]"):
                    return items
                if not self.take(","):
                    raise _error("missing comma in string list", self.line())
        self.i += 1
        return tok.value

    def test(self) -> Test:
        tok = self.take("id")
        if tok is None:
            raise _error("missing test", self.line())
        if tok.value in ("anyof", "allof"):
            if not self.take("("):
                raise _error("missing test list", self.line())
            tests = [self.test()]
            while self.take(","):
                tests.append(self.test())
            if not self.take(")"):
                raise _error("missing closing paren", self.line())
            return Test(tok.value, {}, [], tests, tok.line)
        if tok.value == "not":
            return Test("not", {}, [], [self.test()], tok.line)
        tags, args = self.arguments()
        test = Test(tok.value, tags, args, [], tok.line)
        self.check_test(test)
        return test

    # -- checks: require, known commands, arguments ----------------------------------
    def check(self, cmd: Command) -> None:
        name = cmd.name
        if name == "require":
            caps = _strings(cmd.args[0]) if cmd.args else []
            for cap in caps:
                if cap.lower() == "enotify":
                    self.required.add("enotify")
                    continue
                if cap.lower() not in CAPABILITIES:
                    raise _error("unknown capability", cmd.line)
                self.required.add(cap.lower())
            return
        needs = {"fileinto": "fileinto", "vacation": "vacation", "notify": "enotify"}
        if name in needs and needs[name] not in self.required:
            raise _error(f'missing previous require "{needs[name]}";', cmd.line)
        if "copy" in cmd.tags and "copy" not in self.required:
            raise _error('missing previous require "copy";', cmd.line)
        if name not in ("keep", "discard", "stop", "redirect", "fileinto", "vacation",
                        "notify"):
            raise _error("syntax error", cmd.line)
        if name in ("redirect", "fileinto", "vacation", "notify") and not cmd.args:
            raise _error(f"missing argument for {name}", cmd.line)

    def check_test(self, test: Test) -> None:
        if test.name == "envelope" and "envelope" not in self.required:
            raise _error('missing previous require "envelope";', test.line)
        if test.name not in ("address", "envelope", "header", "exists", "size", "true",
                             "false"):
            raise _error("syntax error", test.line)
        comparator = test.tags.get("comparator")
        if comparator and f"comparator-{str(comparator).lower()}" not in self.required \
                and str(comparator).lower() not in ("i;octet", "i;ascii-casemap"):
            raise _error(f'missing previous require "comparator-{comparator}";', test.line)
        if ("user" in test.tags or "detail" in test.tags) and \
                "subaddress" not in self.required:
            raise _error('missing previous require "subaddress";', test.line)


_TAGS_WITH_VALUE = {"comparator", "days", "subject", "from", "addresses", "handle",
                    "importance", "options", "message", "method", "over", "under"}


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass
class SieveEnvironment:
    """What a Sieve run sees: the address context, the user's addresses, whether the
    router allows file deliveries and replies, and its sieve_* options."""

    ctx: ExpandContext
    user_addresses: list[str] = field(default_factory=list)
    forbid_file: bool = False
    forbid_reply: bool = False
    vacation_directory: str | None = None
    subaddress: str | None = None
    useraddress: str | None = None
    enotify_owner: str | None = None
    error_message: bool = False
    testing: bool = False


class _Stop(Exception):
    pass


class SieveRun:
    """One run of a parsed Sieve script."""

    def __init__(self, commands: list[Command], env: SieveEnvironment):
        self.commands = commands
        self.env = env
        self.ctx = env.ctx
        self.keep = True
        self.implicit_keep = True
        self.result = FilterResult()

    def run(self) -> FilterResult:
        try:
            self._obey(self.commands)
        except _Stop:
            pass
        self.implicit_keep = self.keep
        if self.keep:
            self._file("inbox", copy=False)
        if any(a.significant for a in self.result.actions) or not self.keep:
            self.result.status = DELIVERED
        return self.result

    def _obey(self, commands: list[Command]) -> None:
        for cmd in commands:
            getattr(self, f"_do_{cmd.name}")(cmd)

    # -- actions -----------------------------------------------------------------------
    def _do_require(self, cmd: Command) -> None:
        pass

    def _do_if(self, cmd: Command) -> None:
        for test, body in cmd.branches:
            if self._test(test):
                self._obey(body)
                return
        if cmd.otherwise is not None:
            self._obey(cmd.otherwise)

    def _do_stop(self, cmd: Command) -> None:
        raise _Stop()

    def _do_keep(self, cmd: Command) -> None:
        self._file("inbox", copy=False)
        self.keep = False

    def _do_discard(self, cmd: Command) -> None:
        self.keep = False

    def _do_fileinto(self, cmd: Command) -> None:
        folder = str(cmd.args[0])
        if ".." in folder:
            raise _error("invalid folder", cmd.line)
        self._file(folder, copy=bool(cmd.tags.get("copy")))

    def _file(self, folder: str, copy: bool) -> None:
        if self.env.forbid_file:
            raise FilterError("file delivery is not permitted")
        if not copy:
            self.keep = False
        if any(a.kind == "file" and a.target == folder for a in self.result.actions):
            return
        self.result.actions.append(FilterAction("file", folder, True))

    def _do_redirect(self, cmd: Command) -> None:
        address = bare_address(str(cmd.args[0]))
        if "@" not in address:
            raise _error("unqualified recipient address", cmd.line)
        if not cmd.tags.get("copy"):
            self.keep = False
        self.result.actions.append(FilterAction("address", address, True))

    def _do_vacation(self, cmd: Command) -> None:
        env = self.env
        if env.forbid_reply:
            raise FilterError("vacation is not permitted")
        if not self._vacation_wanted(cmd) or (not env.vacation_directory and not env.testing):
            return
        days = max(1, min(int(cmd.tags.get("days", 7)), 31))
        subject = cmd.tags.get("subject")
        if subject is None:
            original = _decoded(self._header_values("subject"))
            subject = f"Auto: {original[0]}" if original else "Automated reply"
        reason = str(cmd.args[0])
        handle = str(cmd.tags.get("handle") or f"{subject}{reason}")
        once = None
        if env.vacation_directory:
            digest = hashlib.md5(handle.encode("utf-8", "surrogateescape")).hexdigest()
            once = f"{env.vacation_directory.rstrip('/')}/{digest}"
        sender = str(self.ctx.variables.get("return_path") or
                     self.ctx.variables.get("sender_address") or "")
        headers = None
        text = reason
        if cmd.tags.get("mime"):
            head, _, text = reason.partition("\n\n")
            headers = "MIME-Version: 1.0\n" + head.strip("\n")
        # Sieve text is UTF-8: a Subject: with more than printable ASCII gets it as
        # encoded-words (never raw 8-bit text in a header)
        subject = str(subject)
        if not (subject.isascii() and subject.isprintable()):
            subject = rfc2047.encode(subject, "utf-8", fold=True)
        reply = ReplySpec(to=sender, from_=cmd.tags.get("from"), subject=subject,
                          headers=headers, text=text if text.endswith("\n") else text + "\n",
                          once=once, once_repeat=f"{days}d")
        self.result.actions.append(FilterAction("reply", sender, False, reply=reply))

    def _vacation_wanted(self, cmd: Command) -> bool:
        """RFC 5230 section 4.5/4.6: no reply to bounces, lists, robots, or mail not
        addressed to the user."""
        if self.env.error_message:
            return False
        values = {n: self._header_values(n) for n in ("auto-submitted", "precedence")}
        if any(v.strip().lower() != "no" for v in values["auto-submitted"]):
            return False
        if any(v.strip().lower() in ("bulk", "list", "junk") for v in values["precedence"]):
            return False
        names = {h.partition(":")[0].strip().lower() for h in self.ctx.headers or []}
        if any(n.startswith("list-") for n in names):
            return False
        sender = str(self.ctx.variables.get("sender_address") or "").lower()
        local = sender.partition("@")[0]
        if local in ("mailer-daemon", "listserv", "majordomo") or local.startswith(
                "owner-") or local.endswith("-request"):
            return False
        mine = {a.lower() for a in self.env.user_addresses}
        mine |= {a.lower() for a in _strings(cmd.tags.get("addresses", []))}
        if sender in mine:
            return False
        recipients = [a.lower() for _n, a in getaddresses(
            self._header_values("to") + self._header_values("cc") +
            self._header_values("bcc") + self._header_values("resent-to") +
            self._header_values("resent-cc")) if a]
        return any(r in mine for r in recipients)

    def _do_notify(self, cmd: Command) -> None:
        method = str(cmd.args[0])
        if not method.lower().startswith("mailto:"):
            raise _error("unsupported notification method", cmd.line)
        if self.env.forbid_reply:
            raise FilterError("notify is not permitted")
        to = method[7:].split("?", 1)[0]
        message = cmd.tags.get("message") or \
            f"New mail from {self.ctx.variables.get('sender_address') or '<>'}"
        reply = ReplySpec(to=to, from_=cmd.tags.get("from") or self.env.enotify_owner,
                          subject=str(message), text=str(message) + "\n")
        self.result.actions.append(FilterAction("reply", to, False, reply=reply))

    # -- tests -------------------------------------------------------------------------
    def _test(self, test: Test) -> bool:
        name = test.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self._test(test.tests[0])
        if name == "anyof":
            return any(self._test(t) for t in test.tests)
        if name == "allof":
            return all(self._test(t) for t in test.tests)
        if name == "size":
            size = int(self.ctx.variables.get("message_size") or 0)
            if "over" in test.tags:
                return size > int(test.tags["over"])
            return size < int(test.tags.get("under", 0))
        if name == "exists":
            names = _strings(test.args[0]) if test.args else []
            return all(self._header_values(n, test.line) for n in names)
        if len(test.args) < 2:
            raise _error(f"missing argument for {name}", test.line)
        keys = _strings(test.args[1])
        if name == "header":
            values = _decoded(v for n in _strings(test.args[0])
                              for v in self._header_values(n, test.line))
        elif name == "address":
            values = [self._address_part(a, test.tags) for n in _strings(test.args[0])
                      for _x, a in getaddresses(self._header_values(n, test.line)) if a]
        else:   # envelope
            values = []
            for part in _strings(test.args[0]):
                part = part.lower()
                if part == "from":
                    values.append(str(self.ctx.variables.get("sender_address") or ""))
                elif part == "to":
                    lp = self.ctx.variables.get("local_part", "")
                    pre = self.ctx.variables.get("local_part_prefix", "")
                    suf = self.ctx.variables.get("local_part_suffix", "")
                    values.append(f"{pre}{lp}{suf}@{self.ctx.variables.get('domain', '')}")
                else:
                    raise _error(f'unknown envelope part "{part}"', test.line)
            values = [self._address_part(v, test.tags) for v in values]
        return any(self._match(v, k, test.tags) for v in values for k in keys)

    def _header_values(self, name: str, line: int | None = None) -> list[str]:
        if ":" in name or not name:
            raise FilterError("invalid header field" + (f" in line {line}" if line else ""))
        name = name.lower()
        out = []
        for h in self.ctx.headers or []:
            hname, _, value = h.partition(":")
            if hname.strip().lower() == name:
                out.append(" ".join(value.split()))
        return out

    def _address_part(self, address: str, tags: dict[str, Any]) -> str:
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if tags.get("localpart"):
            return local
        if tags.get("domain"):
            return domain
        if tags.get("user") or tags.get("detail"):
            sep = self.env.subaddress or "+"
            user, found, detail = local.partition(sep)
            return user if tags.get("user") else (detail if found else "\x00none")
        return address

    @staticmethod
    def _match(value: str, key: str, tags: dict[str, Any]) -> bool:
        if value == "\x00none":          # :detail of an address without one
            return False
        comparator = str(tags.get("comparator", "i;ascii-casemap")).lower()
        if comparator == "i;ascii-numeric":
            def number(s: str) -> float:
                m = re.match(r"[0-9]+", s)
                return int(m.group(0)) if m else float("inf")
            if tags.get("contains") or tags.get("matches"):
                raise FilterError("comparator does not support this match type")
            return number(value) == number(key)
        if comparator in ("i;ascii-casemap", "en;ascii-casemap"):
            value, key = value.lower(), key.lower()
        elif comparator != "i;octet":
            raise FilterError(f'unknown comparator "{comparator}"')
        if tags.get("contains"):
            return key in value
        if tags.get("matches"):
            pattern = "".join(
                ".*" if c == "*" else "." if c == "?" else re.escape(c)
                for c in re.findall(r"\\.|.", key, re.S))
            pattern = re.sub(r"\\\\\\(.)", r"\1", pattern)
            return re.fullmatch(pattern, value, re.S) is not None
        return value == key


def _decoded(values: Any) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(make_header(decode_header(v))))
        except Exception:       # malformed encoded words are matched as they are
            out.append(v)
    return out


def parse_sieve(text: str) -> list[Command]:
    """Parse a Sieve script (the "# Sieve filter" line is a comment)."""
    return _Parser(text).commands(False)


def run_sieve(text: str, env: SieveEnvironment) -> FilterResult:
    """Parse and run a Sieve script; FilterError for a syntax or run-time error."""
    return SieveRun(parse_sieve(text), env).run()


def report_sieve(text: str, ctx: ExpandContext, out: TextIO, err: TextIO,
               user_addresses: list[str] | None = None) -> int:
    """-bf for a Sieve script: say whether the implicit keep survives."""
    env = SieveEnvironment(ctx, user_addresses or [], testing=True,
                           error_message=not ctx.variables.get("sender_address"))
    try:
        run = SieveRun(parse_sieve(text), env)
        run.run()
    except FilterError as exc:
        out.write(f"Sieve error: {exc.text()}\n")
        return 1
    out.write("Implicit keep\n" if run.implicit_keep else "No implicit keep\n")
    return 0
