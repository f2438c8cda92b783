"""Reading the runtime configuration file (Exim spec chapter 6 and the section chapters).

:func:`load_config` turns a file into a :class:`~pymta.config.model.Config`.  Reading happens
in two layers:

* :class:`LineSource` produces *logical* lines: it follows ``.include`` files, handles the
  ``.ifdef`` family, substitutes macros in every physical line, drops comments and joins
  backslash continuations.  Each logical line carries the file and line number where it
  started, so every error can say where it is.
* :func:`load_config` dispatches logical lines to the section parsers (main options, named
  lists, ACLs, drivers, retry and rewrite rules).

pymta extension: the builtin macro ``_CONFIG_DIR`` holds the directory of the main
configuration file, so a configuration can refer to files next to it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterator

from pymta.acl.parse import ACL_ITEMS, check_acl_item
from pymta.config.dkim_macros import DKIM_MACROS
from pymta.config.model import (
    AclStatement,
    Config,
    ConfigError,
    DriverInstance,
    OptionSetting,
    RetryRule,
    RewriteRule,
)
from pymta.config.options import OptionSpec, parse_fixed, parse_time, parse_value
from pymta.config.unsupported import (
    check_driver_option,
    check_main_option,
    unsupported_driver_error,
)
from pymta.config.values import main_opt, main_option

SECTIONS = ("acl", "authenticators", "routers", "transports", "retry", "rewrite", "local_scan")
ACL_VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")
_LIST_KINDS = {"domainlist": "domain", "hostlist": "host", "addresslist": "address",
               "localpartlist": "localpart"}
# "domainlist_cache" and the like: the list's answers are remembered even though it
# has expansions (spec 10.8)
_LIST_KINDS.update({f"{word}_cache": kind for word, kind in list(_LIST_KINDS.items())})
_MACRO_DEF = re.compile(r"([A-Z_][A-Za-z0-9_]*)\s*(==?)(.*)$", re.S)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*$")
_MAX_INCLUDE_DEPTH = 32


@dataclass
class LogicalLine:
    """One configuration line after includes, macros, comments and continuations."""

    text: str
    file: str
    #: the last physical line of a continued line, the line Exim's messages name
    line: int


class LineSource:
    """Iterate the logical lines of a configuration file.

    A physical line that defines a macro has only its value substituted (so that
    ``MAC == MAC more`` accumulates); the reader clears ``allow_macros`` in sections where
    definitions are not allowed (retry, rewrite, local_scan).
    """

    def __init__(self, path: str, macros: dict[str, str], cmdline: set[str]):
        self.path = path
        self.macros = macros          # insertion order = application order
        self.cmdline = cmdline        # names fixed by the caller (like exim -D)
        self.allow_macros = True

    # -- macros -----------------------------------------------------------------------
    def substitute(self, text: str) -> tuple[str, bool]:
        """Replace macro names (in definition order); report whether any was replaced."""
        found = False
        for name, value in self.macros.items():
            if name not in text:
                continue
            # Like Exim, a macro name matches anywhere, even inside a longer word.
            text = text.replace(name, value)
            found = True
        return text, found

    def define(self, name: str, op: str, value: str, file: str, line: int) -> None:
        """Handle ``NAME = value`` / ``NAME == value``."""
        if name in self.cmdline:
            return                    # a caller-supplied definition overrides the file
        if op == "=":
            if name in self.macros:
                raise ConfigError(f'macro "{name}" is already defined (use "==" if you want '
                                  'to redefine it)', file, line)
            for other in self.macros:
                if other in name:
                    raise ConfigError(f'"{name}" cannot be defined as a macro because '
                                      f'previously defined macro "{other}" is a substring',
                                      file, line)
        self.macros[name] = value.strip()

    # -- physical lines ---------------------------------------------------------------
    def _physical(self, path: str, depth: int) -> Iterator[tuple[str, str, int]]:
        """Yield (text, file, line) with macros substituted and includes followed."""
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                raw_lines = f.read().split("\n")
        except OSError as e:
            raise ConfigError(f"cannot open configuration file {path}: {e.strerror}") from None
        if raw_lines and raw_lines[-1] == "":
            raw_lines.pop()
        # Stack of [active, any_branch_taken, parent_active] for the .ifdef family.
        stack: list[list[bool]] = []
        active = True
        continued = False       # the line before ended with a backslash: no macro here
        for num, raw in enumerate(raw_lines, 1):
            text = raw.rstrip("\r")
            stripped = text.strip()
            if stripped.startswith("."):
                word = stripped.split(None, 1)[0]
                if word in (".ifdef", ".ifndef", ".elifdef", ".elifndef", ".else", ".endif"):
                    active = self._conditional(word, stripped, stack, active, path, num)
                    continue
            if not active:
                continue
            m = _MACRO_DEF.match(stripped)
            starts_macro = m is not None and not continued
            if not stripped:
                continued = False
            elif not (continued and stripped.startswith("#")):
                continued = stripped.endswith("\\")
            if m and starts_macro and self.allow_macros and stripped[0].isupper():
                # Substitute only in the value, so "MAC == MAC and more" accumulates.
                value, _ = self.substitute(m.group(3))
                text = f"{m.group(1)} {m.group(2)} {value}"
            else:
                text, _ = self.substitute(text)
            stripped = text.strip()
            if stripped.startswith(".include"):
                word, *arg = stripped.split(None, 1)
                if word in (".include", ".include_if_exists"):
                    yield from self._include(word, arg[0].strip() if arg else "", path, num,
                                             depth)
                    continue
            yield text, path, num
        if stack:
            raise ConfigError("Unexpected end of configuration file: .endif missing",
                              path, len(raw_lines))

    def _conditional(self, word: str, text: str, stack: list[list[bool]], active: bool,
                     file: str, line: int) -> bool:
        """Update the .ifdef stack; return whether following lines are active."""
        def test(negate: bool) -> bool:
            rest = text[len(word):]
            if not rest.strip():
                raise ConfigError(f"{word} requires a macro name", file, line)
            found = self.substitute(rest)[1]
            return not found if negate else found

        if word in (".ifdef", ".ifndef"):
            cond = active and test(word == ".ifndef")
            stack.append([cond, cond, active])
            return cond
        if not stack:
            raise ConfigError(f"{word} without matching .ifdef", file, line)
        top = stack[-1]
        if word == ".endif":
            stack.pop()
            return top[2]
        if word == ".else":
            cond = top[2] and not top[1]
        else:
            cond = top[2] and not top[1] and test(word == ".elifndef")
        top[0] = cond
        top[1] = top[1] or cond
        return cond

    def _include(self, word: str, arg: str, current: str, line: int,
                 depth: int) -> Iterator[tuple[str, str, int]]:
        name = arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] == '"' else arg
        if not name:
            raise ConfigError(f"{word} requires a file name", current, line)
        if depth >= _MAX_INCLUDE_DEPTH:
            raise ConfigError(".include nested too deeply", current, line)
        if word == ".include_if_exists":
            if not os.path.isabs(name):
                raise ConfigError(f".include_if_exists specifies a non-absolute path "
                                  f'"{name}"', current, line)
            if not os.path.exists(name):
                return
        elif not os.path.isabs(name):
            name = os.path.join(os.path.dirname(os.path.abspath(current)), name)
        if not os.path.isfile(name):
            raise ConfigError(f"failed to open included configuration file {name}",
                              current, line)
        yield from self._physical(name, depth + 1)

    # -- logical lines ----------------------------------------------------------------
    def __iter__(self) -> Iterator[LogicalLine]:
        pending: LogicalLine | None = None
        for text, file, num in self._physical(self.path, 0):
            stripped = text.strip()
            if pending is not None:
                if stripped.startswith("#"):
                    continue          # comments may sit inside a continued line
                if not stripped:
                    # A blank line ends an unfinished continuation.
                    yield self._finish(pending)
                    pending = None
                    continue
                pending.text += stripped
                pending.line = num
            else:
                if not stripped or stripped.startswith("#"):
                    continue
                pending = LogicalLine(stripped, file, num)
            if pending.text.endswith("\\"):
                pending.text = pending.text[:-1]
                continue
            yield self._finish(pending)
            pending = None
        if pending is not None:
            yield self._finish(pending)

    def _finish(self, ll: LogicalLine) -> LogicalLine:
        ll.text = ll.text.strip()
        return ll


# ---------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------
def dequote(text: str, file: str, line: int) -> str:
    """Remove double quotes and interpret Exim's backslash escapes inside them."""
    if not text.startswith('"'):
        return text
    out: list[str] = []
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            if text[i + 1:].strip():
                raise ConfigError("extra characters follow quoted string", file, line)
            return "".join(out)
        if c == "\\" and i + 1 < len(text):
            i += 1
            c = text[i]
            simple = {"n": "\n", "r": "\r", "t": "\t"}
            if c in simple:
                out.append(simple[c])
            elif c in "01234567":
                digits = re.match(r"[0-7]{1,3}", text[i:])
                assert digits is not None             # c is one of them
                out.append(chr(int(digits.group(0), 8)))
                i += len(digits.group(0)) - 1
            elif c == "x" and re.match(r"[0-9a-fA-F]", text[i + 1:i + 2]):
                hexa = re.match(r"[0-9a-fA-F]{1,2}", text[i + 1:])
                assert hexa is not None               # the next character is one
                out.append(chr(int(hexa.group(0), 16)))
                i += len(hexa.group(0))
            else:
                out.append(c)
        else:
            out.append(c)
        i += 1
    raise ConfigError("missing closing quote", file, line)


def _split_setting(text: str) -> tuple[bool, str, str | None]:
    """Split ``[hide] name [= value]`` into (hide, name, value-or-None)."""
    hide = False
    if re.match(r"hide\s", text):
        hide = True
        text = text[4:].lstrip()
    m = re.match(r"([A-Za-z0-9_]+)\s*(?:=\s*(.*))?$", text, re.S)
    if not m:
        name = re.split(r"[\s=]", text, 1)[0]
        return hide, name, None if "=" not in text else text.split("=", 1)[1].strip()
    return hide, m.group(1), m.group(2)


def set_option(specs: dict[str, OptionSpec], text: str, file: str, line: int,
               unknown: str) -> tuple[str, object, bool]:
    """Parse one option line against ``specs``; return (name, typed value, hide).

    ``unknown`` is the error text prefix for an unknown option ("main option"/"option").
    """
    hide, name, value = _split_setting(text)
    spec = specs.get(name)
    negated = False
    if spec is None:
        for prefix in ("no_", "not_"):
            if name.startswith(prefix) and name[len(prefix):] in specs:
                spec = specs[name[len(prefix):]]
                negated = True
                break
    if spec is None:
        raise ConfigError(f'{unknown} "{name}" unknown', file, line)
    if negated and spec.type not in ("bool", "ebool"):
        raise ConfigError("negation prefix applied to a non-boolean option", file, line)
    if spec.type in ("bool", "ebool"):
        if value is None:
            return spec.name, not negated, hide
        if negated:
            raise ConfigError(f'"{value}" is not a valid value for the "{name}" option',
                              file, line)
        try:
            return spec.name, parse_value(spec, dequote(value, file, line)), hide
        except ConfigError:
            raise ConfigError(f'"{value}" is not a valid value for the "{spec.name}" option',
                              file, line) from None
    if value is None:
        raise ConfigError(f'"=" expected after {spec.name}', file, line)
    if spec.type in ("string", "expand", "list", "uid", "gid"):
        value = dequote(value, file, line)
    return spec.name, parse_value(spec, value, file, line), hide


# ---------------------------------------------------------------------------------------
# Section parsers
# ---------------------------------------------------------------------------------------
class _Reader:
    """State while reading one configuration file."""

    def __init__(self, path: str, macros: dict[str, str] | None,
                 builtin: dict[str, str] | None = None):
        from pymta.config.main_options import MainOptions
        self.path = path
        initial: dict[str, str] = dict(builtin or {})
        initial["_CONFIG_DIR"] = os.path.dirname(os.path.abspath(path))
        initial.update(DKIM_MACROS)
        initial.update(macros or {})
        self.source = LineSource(path, initial, set(macros or {}))
        self.config = Config(filename=path, main=MainOptions(), macros=self.source.macros)
        self.section = "main"
        self.current_acl: list[AclStatement] | None = None
        self.current_driver: DriverInstance | None = None

    def read(self) -> Config:
        for ll in self.source:
            self.dispatch(ll)
        return self.config

    def dispatch(self, ll: LogicalLine) -> None:
        text = ll.text
        m = re.match(r"begin\s+(\S+)\s*$", text)
        if m:
            if m.group(1) not in SECTIONS:
                raise ConfigError(f'"{m.group(1)}" is not a known configuration section name',
                                  ll.file, ll.line)
            self.section = m.group(1)
            self.current_acl = None
            self.current_driver = None
            self.source.allow_macros = self.section not in ("retry", "rewrite", "local_scan")
            return
        md = _MACRO_DEF.match(text)
        if md and text[0].isupper() and self.section not in ("retry", "rewrite", "local_scan"):
            self.source.define(md.group(1), md.group(2), md.group(3), ll.file, ll.line)
            return
        handler = getattr(self, "_" + self.section)
        handler(ll)

    # main section --------------------------------------------------------------------
    def _main(self, ll: LogicalLine) -> None:
        words = ll.text.split(None, 1)
        if words and words[0] == "hide" and len(words) > 1 and \
                words[1].split(None, 1)[0] in _LIST_KINDS:
            words = words[1].split(None, 1)
        if words and words[0] in _LIST_KINDS:
            self._named_list(_LIST_KINDS[words[0]], words[1] if len(words) > 1 else "", ll,
                             cached=words[0].endswith("_cache"))
            return
        main = self.config.main
        name, value, hide = set_option(main.specs, ll.text, ll.file, ll.line, "main option")
        if main.is_set(name):
            raise ConfigError(f'"{name}" option set for the second time', ll.file, ll.line)
        check_main_option(name, value, ll.file, ll.line)
        main.set(name, value, hide)
        main.locations[name] = (ll.file, ll.line)

    def _named_list(self, kind: str, rest: str, ll: LogicalLine, cached: bool = False) -> None:
        m = re.match(r"([A-Za-z0-9_]+)\s*=\s*(.*)$", rest, re.S)
        if not m:
            raise ConfigError(f"malformed {kind}list definition", ll.file, ll.line)
        name = m.group(1)
        lists = self.config.named_lists[kind]
        if name in lists:
            raise ConfigError(f'there are two {kind} lists called "{name}"', ll.file, ll.line)
        lists[name] = dequote(m.group(2).strip(), ll.file, ll.line)
        if cached:
            self.config.cached_lists.setdefault(kind, set()).add(name)

    # ACLs ----------------------------------------------------------------------------
    def _acl(self, ll: LogicalLine) -> None:
        text = ll.text
        m = re.match(r"([A-Za-z0-9_]+)\s*:\s*$", text)
        if m:
            name = m.group(1)
            if name in self.config.acls:
                raise ConfigError(f'there are two ACLs called "{name}"', ll.file, ll.line)
            self.current_acl = self.config.acls[name] = []
            return
        if self.current_acl is None:
            raise ConfigError(f'ACL name expected before "{text}"', ll.file, ll.line)
        first = re.split(r"[\s=]", text, 1)[0]
        if first in ACL_VERBS:
            stmt = AclStatement(first, [], ll.file, ll.line)
            self.current_acl.append(stmt)
            rest = text[len(first):].strip()
            if rest:
                stmt.items.append(self._acl_item(rest, text, ll))
            return
        if not self.current_acl:
            raise ConfigError(f'error in ACL: unknown ACL verb "{first}" in "{text}"',
                              ll.file, ll.line)
        self.current_acl[-1].items.append(self._acl_item(text, text, ll))

    def _acl_item(self, text: str, whole: str, ll: LogicalLine) -> OptionSetting:
        """Parse ``[!]name = value`` (or ``endpass``/``set var = value``)."""
        m = re.match(r"(!?)\s*([A-Za-z_]+)", text)
        if m is None or m.group(2) not in ACL_ITEMS:
            raise ConfigError(f'error in ACL: unknown ACL condition/modifier in "{whole}"',
                              ll.file, ll.line)
        name = m.group(2)
        negate = m.group(1)
        rest = text[m.end():].strip()
        if name == "endpass":
            if rest:
                raise ConfigError(f'error in ACL: "endpass" takes no value in "{whole}"',
                                  ll.file, ll.line)
            return OptionSetting("endpass", "", ll.file, ll.line)
        if name == "set":
            # "set acl_m_x = value": the value keeps the variable name (see ARCHITECTURE.md)
            if "=" not in rest:
                raise ConfigError(f'error in ACL: "=" missing after ACL "set" in "{whole}"',
                                  ll.file, ll.line)
            var, _, val = rest.partition("=")
            return OptionSetting("set", f"{var.strip()} = {val.strip()}", ll.file, ll.line)
        if not rest.startswith("="):
            raise ConfigError(f'error in ACL: "=" missing after ACL "{name}" condition',
                              ll.file, ll.line)
        if negate and name in ("message", "log_message", "add_header", "remove_header",
                               "control", "delay", "logwrite", "continue"):
            raise ConfigError(f'error in ACL: ACL modifier "{name}" is negated',
                              ll.file, ll.line)
        value = dequote(rest[1:].strip(), ll.file, ll.line)
        check_acl_item(name, value, ll.file, ll.line)
        return OptionSetting(negate + name, value, ll.file, ll.line)

    # drivers -------------------------------------------------------------------------
    def _driver_section(self, kind: str, ll: LogicalLine) -> None:
        text = ll.text
        m = re.match(r"([A-Za-z0-9_]+)\s*:\s*(.*)$", text)
        if m and "=" not in text.split(":", 1)[0]:
            name = m.group(1)
            if not _NAME.match(name):
                raise ConfigError(f'invalid {kind} name "{name}"', ll.file, ll.line)
            self._check_unique(kind, name, ll)
            inst = DriverInstance(kind, name, "", file=ll.file, line=ll.line)
            self.current_driver = inst
            if kind == "router":
                self.config.routers.append(inst)
            elif kind == "transport":
                self.config.transports[name] = inst
            else:
                self.config.authenticators[name] = inst
            if m.group(2).strip():
                self._driver_option(inst, LogicalLine(m.group(2).strip(), ll.file, ll.line))
            return
        if self.current_driver is None:
            raise ConfigError(f'{kind} name expected before "{text}"', ll.file, ll.line)
        self._driver_option(self.current_driver, ll)

    def _check_unique(self, kind: str, name: str, ll: LogicalLine) -> None:
        exists = (any(r.name == name for r in self.config.routers) if kind == "router"
                  else name in (self.config.transports if kind == "transport"
                                else self.config.authenticators))
        if exists:
            raise ConfigError(f'there are two {kind}s called "{name}"', ll.file, ll.line)

    def _driver_option(self, inst: DriverInstance, ll: LogicalLine) -> None:
        hide, name, value = _split_setting(ll.text)
        if name == "driver":
            if value is None or not value.strip():
                raise ConfigError('"=" expected after driver', ll.file, ll.line)
            inst.driver = dequote(value.strip(), ll.file, ll.line)
            return
        # The raw text is kept for the validation pass after the whole file is read.
        inst.settings.append(OptionSetting(name, "" if value is None else value,
                                           ll.file, ll.line, ll.text))

    def _routers(self, ll: LogicalLine) -> None:
        self._driver_section("router", ll)

    def _transports(self, ll: LogicalLine) -> None:
        self._driver_section("transport", ll)

    def _authenticators(self, ll: LogicalLine) -> None:
        self._driver_section("authenticator", ll)

    # retry and rewrite ---------------------------------------------------------------
    def _retry(self, ll: LogicalLine) -> None:
        self.config.retry_rules.append(parse_retry_rule(ll.text, ll.file, ll.line))

    def _rewrite(self, ll: LogicalLine) -> None:
        self.config.rewrite_rules.append(parse_rewrite_rule(ll.text, ll.file, ll.line))

    def _local_scan(self, ll: LogicalLine) -> None:
        raise ConfigError("local_scan options are not supported by pymta", ll.file, ll.line)


def _fields(text: str, file: str, line: int) -> list[str]:
    """Split on white space, keeping double-quoted fields together (and dequoting them)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text[i] == '"' or text[i:].startswith('senders="'):
            start = i
            j = text.index('"', i) + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                raise ConfigError("missing closing quote", file, line)
            prefix = text[start:text.index('"', i)]
            out.append(prefix + dequote(text[text.index('"', i):j + 1], file, line))
            i = j + 1
            continue
        j = i
        while j < len(text) and not text[j].isspace():
            j += 1
        out.append(text[i:j])
        i = j
    return out


def parse_retry_params(text: str, file: str, line: int) -> list[tuple[str, int, tuple]]:
    """Parse ``F,2h,15m; G,16h,1h,1.5`` into [(letter, cutoff, params), ...]."""
    rules: list[tuple[str, int, tuple]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(",")]
        letter = bits[0].upper()
        if letter not in ("F", "G", "H"):
            raise ConfigError("unknown retry rule letter", file, line)
        need = 3 if letter == "F" else 4
        if len(bits) < need:
            raise ConfigError("comma expected", file, line)
        if len(bits) > need:
            raise ConfigError("extra characters in retry rule", file, line)
        try:
            cutoff = parse_time(bits[1])
            interval = parse_time(bits[2])
        except ValueError:
            raise ConfigError("invalid time value in retry rule", file, line) from None
        if interval <= 0:
            raise ConfigError("retry interval must be positive", file, line)
        if letter == "F":
            rules.append(("F", cutoff, (interval,)))
        else:
            try:
                factor = parse_fixed(bits[3]) / 1000
            except ValueError:
                raise ConfigError("fixed point number expected in retry rule",
                                  file, line) from None
            if factor <= 1.0:
                raise ConfigError("retry multiplier must be greater than 1", file, line)
            rules.append((letter, cutoff, (interval, factor)))
    return rules


def parse_retry_rule(text: str, file: str, line: int) -> RetryRule:
    """One line of the retry section: pattern, error, optional senders=, parameters."""
    fields = _fields(text, file, line)
    if len(fields) < 2:
        raise ConfigError("retry rule needs a pattern and an error name", file, line)
    pattern, error = fields[0], fields[1]
    rest = fields[2:]
    senders = None
    if rest and rest[0].startswith("senders="):
        senders = rest[0][len("senders="):]
        rest = rest[1:]
    rules = parse_retry_params(" ".join(rest), file, line)
    return RetryRule(pattern, error, senders, rules, file, line)


_REWRITE_FLAGS = set("EFTbcfhrstqRSQw")


def parse_rewrite_rule(text: str, file: str, line: int) -> RewriteRule:
    """One line of the rewrite section: pattern, replacement, flags."""
    fields = _fields(text, file, line)
    if len(fields) < 2:
        raise ConfigError("rewrite rule needs a pattern and a replacement", file, line)
    flags = "".join(fields[2:])
    for ch in flags:
        if ch not in _REWRITE_FLAGS:
            raise ConfigError(f"unknown rewrite flag character '{ch}' (could be missing "
                              "quotes round replacement item)", file, line)
    if "S" in flags and not fields[0].removeprefix("\\N").startswith("^"):
        # SMTP-time rules match the raw MAIL/RCPT data: only a regex can do that
        raise ConfigError("rewrite rule has the S flag but is not a regular expression",
                          file, line)
    return RewriteRule(fields[0], fields[1], flags, file, line)


# ---------------------------------------------------------------------------------------
# After reading: driver validation and instantiation
# ---------------------------------------------------------------------------------------
def _driver_specs(kind: str, inst: DriverInstance) -> tuple[dict[str, OptionSpec], type | None]:
    from pymta import drivers
    from pymta.config import option_tables
    cls = drivers.get_driver(kind, inst.driver)
    options = getattr(cls, "options", None)
    if cls is not None and options:
        return dict(options), cls
    if inst.driver in option_tables.driver_names(kind):
        # An Exim driver that pymta does not have (Exim: not built in).
        raise unsupported_driver_error(kind, inst.name, inst.driver, inst.file, inst.line)
    raise ConfigError(f'{kind} {inst.name}: cannot find {kind} driver "{inst.driver}"',
                      inst.file, inst.line)


def _finish_drivers(config: Config) -> None:
    """Validate every driver instance's options, then instantiate registered classes."""
    groups = (("router", config.routers), ("transport", list(config.transports.values())),
              ("authenticator", list(config.authenticators.values())))
    pending: list[tuple[type, DriverInstance]] = []
    for kind, instances in groups:
        for inst in instances:
            if not inst.driver:
                raise ConfigError(f'no driver defined for {kind} "{inst.name}"',
                                  inst.file, inst.line)
            specs, cls = _driver_specs(kind, inst)
            inst.driver_class = cls
            inst.options = {n: s.default for n, s in specs.items()}
            inst.hidden = {n for n, s in specs.items() if s.hidden}
            inst.explicit = set()
            for st in inst.settings:
                raw = st.raw or f"{st.name} = {st.value}"
                name, value, hide = set_option(specs, raw, st.file, st.line, "option")
                if name in inst.explicit:
                    raise ConfigError(f'"{name}" option set for the second time',
                                      st.file, st.line)
                check_driver_option(kind, inst.driver, f"{kind} {inst.name}", name, value,
                                    st.file, st.line)
                inst.options[name] = value
                inst.explicit.add(name)
                # Exim's router shorthands: "verify" and "fail_verify" set both halves.
                if kind == "router" and name in ("verify", "fail_verify"):
                    for half in (f"{name}_sender", f"{name}_recipient"):
                        if half in specs:
                            inst.options[half] = value
                if hide:
                    inst.hidden.add(name)
            if cls is not None:
                pending.append((cls, inst))
    # "hide" on a driver option hides it on every instance of the same driver.
    for kind, instances in groups:
        by_driver: dict[str, set[str]] = {}
        for inst in instances:
            by_driver.setdefault(inst.driver, set()).update(inst.hidden)
        for inst in instances:
            inst.hidden = set(by_driver[inst.driver])
    names = {r.name for r in config.routers}
    for r in config.routers:
        for opt in ("pass_router", "redirect_router"):
            target = r.options.get(opt)
            if target and target not in names:
                where = next((x for x in r.settings if x.name == opt), None)
                raise ConfigError(f'new_router "{target}" not found for "{r.name}" router',
                                  where.file if where else r.file,
                                  where.line if where else r.line)
    for cls, inst in pending:
        try:
            inst.obj = cls(inst, config)
        except ConfigError as e:
            if e.file is None:
                raise ConfigError(e.message, inst.file, inst.line) from None
            raise


def load_config(path: str, macros: dict[str, str] | None = None,
                builtin: dict[str, str] | None = None) -> Config:
    """Read the configuration file at ``path`` and return the :class:`Config`.

    ``macros`` are definitions from the command line (``-D``): they take precedence over
    definitions in the file.  ``builtin`` are the builtin macros (``_HAVE_*``,
    ``_OPT_*`` ..., see :mod:`pymta.features`) defined before the file is read.
    Raises :class:`ConfigError` (with file and line) on errors.
    """
    if not os.path.exists(path):
        raise ConfigError(f"configuration file {path} not found")
    config = _Reader(path, macros, builtin).read()
    _check_main_consistency(config)
    _finish_drivers(config)
    return config


def _check_main_consistency(config: Config) -> None:
    """Main options that only make sense together (Exim refuses these at -bV too)."""
    if not int(main_opt(config, "smtp_accept_max") or 0) and (
            main_option(config, "smtp_accept_max_per_host")
            or int(main_opt(config, "smtp_accept_queue") or 0)):
        raise ConfigError("smtp_accept_max must be set if smtp_accept_queue or "
                          "smtp_accept_max_per_host is set", config.filename)
    threads = int(main_opt(config, "smtp_receiver_threads") or 0)
    if not 1 <= threads <= 64:
        raise ConfigError(f"smtp_receiver_threads must be between 1 and 64 (it is {threads})",
                          config.filename)
    if threads > 1:
        # Debug output is the process's: with several sessions in one receiver, a
        # session's debug file would collect its neighbours' sessions too.
        for statements in config.acls.values():
            for statement in statements:
                for item in statement.items:
                    if item.name == "control" and item.value.strip().startswith("debug"):
                        raise ConfigError("control = debug is not supported with "
                                          "smtp_receiver_threads greater than 1",
                                          item.file, item.line)
    if main_opt(config, "local_sender_retain") and main_opt(config, "local_from_check"):
        raise ConfigError("both local_from_check and local_sender_retain are set; this "
                          "combination is not allowed", config.filename)
