"""Reading an Exim filter file into commands and conditions (filter manual, chapter 3).

The whole file is parsed before any of it runs, so a syntax error anywhere stops the
filter before it has done anything.  Errors name the line the reader had reached, as
Exim's do ("... near line 3 of filter file").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .result import FilterError

# Commands that a user filter may use only when the router allows them.
SYSTEM_ONLY = ("fail", "freeze", "defer")

MAIL_STRING_ARGS = ("to", "cc", "bcc", "from", "reply_to", "subject", "extra_headers",
                    "text", "file", "log", "once", "once_repeat")


@dataclass
class Command:
    """One filter command: ``name`` and its arguments (unexpanded texts)."""

    name: str
    line: int
    args: dict[str, str] = field(default_factory=dict)
    seen: bool | None = None        # "seen"/"unseen" given, else None (the default)
    noerror: bool = False
    flags: set[str] = field(default_factory=set)     # mail: "expand", "return"


@dataclass
class IfCommand:
    """``if c1 then ... elif c2 then ... else ... endif``."""

    line: int
    branches: list[tuple["Condition", list["Node"]]]
    otherwise: list["Node"]


@dataclass
class Condition:
    """A condition: ``kind`` is "and", "or", "not", "string", "number", "personal",
    "foranyaddress" or a flag name ("delivered", "error_message", ...)."""

    kind: str
    operands: list["Condition"] = field(default_factory=list)
    op: str = ""                    # is/contains/begins/ends/matches/above/below
    negate: bool = False
    case_sensitive: bool = False
    left: str = ""
    right: str = ""
    aliases: list[str] = field(default_factory=list)


Node = Union[Command, IfCommand]

_FLAG_CONDITIONS = ("delivered", "error_message", "first_delivery", "manually_thawed")
_COMMANDS = ("add", "deliver", "fail", "finish", "freeze", "defer", "headers", "if",
             "logfile", "logwrite", "mail", "pipe", "save", "testprint", "vacation")
_STRING_OPS = {"is": "is", "contains": "contains", "begins": "begins", "ends": "ends",
               "matches": "matches"}
_NEGATED_OPS = {"contain": "contains", "begin": "begins", "end": "ends", "match": "matches"}


class _Reader:
    """The characters of the filter, with Exim's rules for words and data values."""

    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.line = 1
        # the first line ("# Exim filter ...") is a comment as a whole
        nl = text.find("\n")
        self.i = len(text) if nl < 0 else nl + 1
        self.line = 1 if nl < 0 else 2
        self.skip()

    def skip(self) -> None:
        """Pass white space and comments (# after a separator runs to the line's end)."""
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c == "\n":
                self.line += 1
                self.i += 1
            elif c in " \t\r\f\v":
                self.i += 1
            elif c == "#":
                while self.i < n and s[self.i] != "\n":
                    self.i += 1
            else:
                break

    def at_end(self) -> bool:
        return self.i >= len(self.s)

    def peek_char(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def error(self, message: str) -> FilterError:
        return FilterError(message, self.line)

    def peek_word(self) -> str:
        """The next bare word (letters, digits, underscores), not consumed."""
        j = self.i
        s = self.s
        while j < len(s) and (s[j].isalnum() or s[j] == "_"):
            j += 1
        return s[self.i:j]

    def word(self) -> str:
        w = self.peek_word()
        self.i += len(w)
        self.skip()
        return w

    def take(self, char: str) -> bool:
        if self.peek_char() == char:
            self.i += 1
            self.skip()
            return True
        return False

    def item(self, in_condition: bool = False) -> str | None:
        """A data value: quoted (with escapes) or up to white space (and, within a
        condition, up to a parenthesis).  None at the end of the file."""
        if self.at_end():
            return None
        if self.peek_char() == '"':
            return self._quoted()
        s, j = self.s, self.i
        stop = " \t\r\n\f\v" + ("()" if in_condition else "")
        while j < len(s) and s[j] not in stop:
            j += 1
        value = s[self.i:j]
        self.i = j
        self.skip()
        return value

    def _quoted(self) -> str:
        s, n = self.s, len(self.s)
        start_line = self.line
        i = self.i + 1
        out: list[str] = []
        while True:
            if i >= n:
                raise FilterError(f"quote missing at end of string in line {start_line}")
            c = s[i]
            if c == '"':
                i += 1
                break
            if c == "\n":
                self.line += 1
            if c != "\\" or i + 1 >= n:
                out.append(c)
                i += 1
                continue
            i += 1
            c = s[i]
            if c == "\n":                   # continuation: leading white space goes
                self.line += 1
                i += 1
                while i < n and s[i] in " \t":
                    i += 1
                continue
            if c in "nrt":
                out.append({"n": "\n", "r": "\r", "t": "\t"}[c])
                i += 1
            elif c in "01234567":
                j = i
                while j < n and j < i + 3 and s[j] in "01234567":
                    j += 1
                out.append(chr(int(s[i:j], 8)))
                i = j
            elif c == "x" and i + 1 < n and s[i + 1] in "0123456789abcdefABCDEF":
                j = i + 1
                while j < n and j < i + 3 and s[j] in "0123456789abcdefABCDEF":
                    j += 1
                out.append(chr(int(s[i + 1:j], 16)))
                i = j
            else:
                out.append(c)
                i += 1
        self.i = i
        self.skip()
        return "".join(out)


class Parser:
    """Parse a filter file; ``system`` allows the system filter's commands, ``allowed``
    the user-filter commands from :data:`SYSTEM_ONLY` that the router permits."""

    def __init__(self, text: str, system: bool = False, allowed: frozenset[str] = frozenset()):
        self.r = _Reader(text)
        self.system = system
        self.allowed = allowed

    def parse(self) -> list[Node]:
        commands = self._commands(())
        return commands

    # -- commands --------------------------------------------------------------------
    def _commands(self, terminators: tuple[str, ...]) -> list[Node]:
        out: list[Node] = []
        r = self.r
        while True:
            if r.at_end():
                if terminators:
                    raise FilterError('"endif" missing at end of filter file')
                return out
            word = r.peek_word().lower()
            if word in terminators:
                return out
            if word in ("elif", "else", "endif"):
                r.word()
                raise r.error(f'unexpected "{word}" command')
            if word == "then":
                r.word()
                raise r.error('unexpected "then"')
            out.append(self._command())

    def _command(self) -> Node:
        r = self.r
        line = r.line
        seen: bool | None = None
        noerror = False
        while True:
            word = r.peek_word().lower()
            if word in ("seen", "unseen"):
                r.word()
                if seen is not None:
                    raise FilterError('"seen" or "unseen" repeated', r.line, where="")
                seen = word == "seen"
            elif word == "noerror":
                r.word()
                noerror = True
            else:
                break
        raw = r.peek_word()
        name = raw.lower()
        if not raw:
            bad = r.item() or ""
            raise r.error(f'unknown filtering command "{bad}"')
        r.word()
        if name not in _COMMANDS:
            raise r.error(f'unknown filtering command "{raw}"')
        if name == "if":
            return self._if(line)
        cmd = Command(name, line, seen=seen, noerror=noerror)
        if name in SYSTEM_ONLY and not self.system and name not in self.allowed:
            raise r.error(f'filtering command "{name}" is disabled:')
        getattr(self, f"_cmd_{name}")(cmd)
        return cmd

    def _required(self, cmd: Command, key: str = "value") -> None:
        value = self.r.item()
        if value is None:
            raise self.r.error(f'"{cmd.name}" requires an argument')
        cmd.args[key] = value

    def _mode(self, cmd: Command) -> None:
        if self.r.peek_char().isdigit():
            cmd.args["mode"] = self.r.item() or ""

    def _cmd_add(self, cmd: Command) -> None:
        self._required(cmd)
        if self.r.peek_word().lower() != "to":
            raise self.r.error('"to" expected after "add"')
        self.r.word()
        self._required(cmd, "variable")

    def _cmd_deliver(self, cmd: Command) -> None:
        self._required(cmd)
        if self.r.peek_word().lower() == "errors_to":
            self.r.word()
            self._required(cmd, "errors_to")

    def _cmd_save(self, cmd: Command) -> None:
        self._required(cmd)
        self._mode(cmd)

    _cmd_logfile = _cmd_save

    def _cmd_pipe(self, cmd: Command) -> None:
        self._required(cmd)

    _cmd_logwrite = _cmd_pipe
    _cmd_testprint = _cmd_pipe

    def _cmd_finish(self, cmd: Command) -> None:
        pass

    def _cmd_fail(self, cmd: Command) -> None:
        r = self.r
        if r.peek_word().lower() == "text":
            r.word()
            self._required(cmd)
        elif r.peek_char() == '"':
            self._required(cmd)

    _cmd_freeze = _cmd_fail
    _cmd_defer = _cmd_fail

    def _cmd_headers(self, cmd: Command) -> None:
        r = self.r
        sub = r.word().lower()
        if sub != "charset" and not self.system:
            raise r.error("header addition and removal is available only in system "
                          "filters:")
        if sub not in ("add", "remove", "charset"):
            raise r.error('"add", "remove", or "charset" expected after "headers"')
        value = r.item()
        if value is None:
            raise r.error('value missing after "add", "remove", or "charset"')
        cmd.args[sub] = value

    def _cmd_mail(self, cmd: Command) -> None:
        r = self.r
        while True:
            word = r.peek_word().lower()
            if word == "expand":
                r.word()
                if r.peek_word().lower() != "file":
                    raise r.error('"file" expected after "expand"')
                cmd.flags.add("expand")
                continue
            if word == "return":
                r.word()
                if r.peek_word().lower() != "message":
                    raise r.error('"message" expected after "return"')
                r.word()
                cmd.flags.add("return")
                continue
            if word not in MAIL_STRING_ARGS:
                return
            r.word()
            value = r.item()
            if value is None:
                raise r.error(f'"{word}" requires an argument')
            cmd.args[word] = value

    _cmd_vacation = _cmd_mail

    # -- if --------------------------------------------------------------------------
    def _if(self, line: int) -> IfCommand:
        r = self.r
        branches: list[tuple[Condition, list[Node]]] = []
        otherwise: list[Node] = []
        while True:
            cond = self._or()
            if r.peek_word().lower() != "then":
                line = r.line
                found = r.item() or ""
                raise FilterError('"and" or "or" or "then" expected', line,
                                  tail=f', but found "{found}"')
            r.word()
            body = self._commands(("elif", "else", "endif"))
            branches.append((cond, body))
            word = r.word().lower()
            if word == "elif":
                continue
            if word == "else":
                otherwise = self._commands(("endif",))
                r.word()
            return IfCommand(line, branches, otherwise)

    def _or(self) -> Condition:
        left = self._and()
        while self.r.peek_word().lower() == "or":
            self.r.word()
            left = Condition("or", [left, self._and()])
        return left

    def _and(self) -> Condition:
        left = self._not()
        while self.r.peek_word().lower() == "and":
            self.r.word()
            left = Condition("and", [left, self._not()])
        return left

    def _not(self) -> Condition:
        r = self.r
        if r.peek_word().lower() == "not":
            r.word()
            return Condition("not", [self._not()])
        if r.take("("):
            inner = self._or()
            if not r.take(")"):
                raise r.error('missing ")" at end of condition')
            return inner
        return self._simple()

    def _simple(self) -> Condition:
        r = self.r
        word = r.peek_word().lower()
        following = r.s[r.i + len(word):r.i + len(word) + 1]
        if word and (following == "" or following in " \t\r\n()#"):
            if word == "then":
                r.word()
                raise r.error('unexpected "then"')
            if word in _FLAG_CONDITIONS:
                r.word()
                return Condition(word)
            if word == "personal":
                r.word()
                aliases = []
                while r.peek_word().lower() == "alias":
                    r.word()
                    value = r.item(True)
                    if value is None:
                        raise r.error('"alias" requires an argument')
                    aliases.append(value)
                return Condition("personal", aliases=aliases)
            if word == "foranyaddress":
                r.word()
                text = r.item(True)
                if text is None or not r.take("("):
                    raise r.error('"(" expected after "foranyaddress"')
                inner = self._or()
                if not r.take(")"):
                    raise r.error('missing ")" at end of condition')
                return Condition("foranyaddress", [inner], left=text)
        if r.at_end():
            raise r.error("condition expected")
        left = r.item(True)
        assert left is not None
        raw = r.word()
        op = raw.lower()
        negate = False
        if op == "is":
            if r.peek_word().lower() == "not":
                r.word()
                negate = True
            if r.peek_word().lower() in ("above", "below"):
                kind = r.word().lower()
                return Condition("number", op=kind, negate=negate, left=left,
                                 right=self._operand())
            return Condition("string", op="is", negate=negate, case_sensitive=raw.isupper(),
                             left=left, right=self._operand())
        if op == "does":
            if r.peek_word().lower() != "not":
                raise r.error('"not" expected after "does"')
            r.word()
            raw = r.word()
            if raw.lower() not in _NEGATED_OPS:
                raise r.error(f'unrecognized condition word "{raw}"')
            return Condition("string", op=_NEGATED_OPS[raw.lower()], negate=True,
                             case_sensitive=raw.isupper(), left=left, right=self._operand())
        if op in _STRING_OPS:
            return Condition("string", op=_STRING_OPS[op], case_sensitive=raw.isupper(),
                             left=left, right=self._operand())
        shown = raw or (r.item(True) or "")
        raise r.error(f'unrecognized condition word "{shown}"')

    def _operand(self) -> str:
        value = self.r.item(True)
        if value is None:
            raise self.r.error("value expected in condition")
        return value


def parse_filter(text: str, system: bool = False,
                 allowed: frozenset[str] = frozenset()) -> list[Node]:
    """Parse the whole of an Exim filter (first line included)."""
    return Parser(text, system, allowed).parse()
