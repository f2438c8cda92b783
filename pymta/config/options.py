"""Option specifications and the conversion of option text to typed values (and back).

Each option of the main section or of a driver has an :class:`OptionSpec` giving its Exim
name, its type and its default.  :func:`parse_value` turns the text written after ``=`` into
the typed value; :func:`format_value` prints a value the way ``exim -bP`` does.

Types:
  ``bool``    True/False (``name``, ``no_name``, ``not_name``, ``name = yes|no|true|false``)
  ``int``     integer; K/M/G suffixes; ``0x`` hex; leading ``0`` octal (like C's strtol)
  ``size``    as ``int`` but printed with a K/M/G suffix where exact (Exim's "mkint")
  ``kint``    an amount in kilobytes: ``100M`` is stored as 102400 (Exim's "Kint")
  ``mode``    octal integer (file modes, umask)
  ``time``    seconds, written as ``1h30m``, ``2d``, ``5s``, ``1w`` (a bare number = seconds)
  ``fixed``   fixed-point number with three decimals, stored as int thousandths
  ``string``  plain string (not expanded)
  ``expand``  expandable string, kept as its source text
  ``list``    any list (domain/host/address/string/time list), kept as source text
  ``uid``     user: number stays int; a name is resolved if possible, else kept as str
  ``gid``     group: as ``uid``
"""
from __future__ import annotations

import grp
import pwd
import re
from dataclasses import dataclass
from typing import Any

from pymta.config.model import ConfigError

#: "ebool" is Exim's "boolean*": true/false, or an expansion made where it is used
OPTION_TYPES = ("bool", "ebool", "int", "size", "kint", "mode", "time", "fixed", "string",
                "expand", "list", "uid", "gid")


@dataclass(frozen=True)
class OptionSpec:
    """An option's name, type (one of :data:`OPTION_TYPES`) and default value.

    ``hidden`` marks an option Exim never displays (e.g. secrets); a ``hide`` prefix in the
    file has the same effect for one setting.
    """

    name: str
    type: str
    default: Any = None
    hidden: bool = False


_TRUE = {"true", "yes"}
_FALSE = {"false", "no"}
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TIME_RE = re.compile(r"(\d+)([wdhms])")


def parse_int(text: str) -> int:
    """Parse an Exim integer: optional sign, decimal/0x hex/0 octal, optional K, M or G."""
    t = text.strip()
    m = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)([kKmMgG]?)", t)
    if not m:
        raise ValueError(f'integer expected for "{t}"')
    sign, digits, suffix = m.groups()
    if digits[:2].lower() == "0x":
        n = int(digits, 16)
    elif digits.startswith("0") and len(digits) > 1:
        n = int(digits, 8)
    else:
        n = int(digits)
    n *= {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[suffix.lower()]
    return -n if sign == "-" else n


def parse_time(text: str) -> int:
    """Parse an Exim time like ``1h30m`` or ``2d`` (a bare number means seconds)."""
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t)
    if not t or _TIME_RE.sub("", t) != "":
        raise ValueError(f'time value expected for "{t}"')
    return sum(int(n) * _TIME_UNITS[u] for n, u in _TIME_RE.findall(t))


def format_time(seconds: int) -> str:
    """Format seconds like Exim's readconf_printtime: ``1h30m``, ``2d``, ``0s``."""
    if seconds < 0:
        return "-" + format_time(-seconds)
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


def parse_fixed(text: str) -> int:
    """Parse a fixed-point number (``1.5``) into thousandths (1500)."""
    m = re.fullmatch(r"(\d+)(?:\.(\d{0,3})\d*)?", text.strip())
    if not m:
        raise ValueError(f'fixed-point number expected for "{text.strip()}"')
    frac = (m.group(2) or "").ljust(3, "0")
    return int(m.group(1)) * 1000 + int(frac)


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError('"true", "false", "yes" or "no" expected')


def _parse_user(text: str, kind: str) -> int | str:
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t)
    try:
        return pwd.getpwnam(t).pw_uid if kind == "uid" else grp.getgrnam(t).gr_gid
    except KeyError:
        # The user may be created later (e.g. at install time); resolve at use time.
        return t


def parse_value(spec: OptionSpec, text: str, file: str | None = None,
                line: int | None = None) -> Any:
    """Convert the text after ``=`` into a value of ``spec.type``.

    Raises :class:`ConfigError` naming ``file`` and ``line`` when the text is invalid.
    """
    t = spec.type
    n = spec.name
    try:
        if t == "ebool" and "$" in text:
            return text.strip()         # an expanded boolean, expanded where it is used
        if t in ("bool", "ebool"):
            try:
                return _parse_bool(text)
            except ValueError:
                raise ConfigError(f'"{text.strip()}" is not a valid value for the "{n}" option',
                                  file, line) from None
        if t in ("int", "size", "kint"):
            if not re.match(r"\s*[+-]?\d", text):
                raise ValueError(f"integer expected for {n}")
            try:
                value = parse_int(text)
            except ValueError:
                raise ValueError(f"extra characters follow integer value for {n}") from None
            if t == "kint":
                # a suffix gives bytes; a bare number is already in kilobytes
                return value // 1024 if re.search(r"[kKmMgG]\s*$", text) else value
            return value
        if t == "mode":
            s = text.strip()
            if not re.fullmatch(r"[0-7]+", s):
                raise ValueError(f"octal integer expected for {n}")
            return int(s, 8)
        if t == "time":
            if n == "smtp_receive_timeout" and text.lstrip().startswith("$"):
                return text.strip()       # Exim expands it for each connection
            # a configuration's times need their units: Exim refuses "30" (or "0")
            if text.strip().isdigit():
                raise ValueError(f"invalid time value for {n}")
            try:
                return parse_time(text)
            except ValueError:
                raise ValueError(f"invalid time value for {n}") from None
        if t == "fixed":
            try:
                return parse_fixed(text)
            except ValueError:
                raise ValueError(f"fixed-point number expected for {n}") from None
        if t in ("uid", "gid"):
            return _parse_user(text, t)
        if t in ("string", "expand", "list"):
            return text
    except ValueError as e:
        raise ConfigError(str(e), file, line) from None
    raise ConfigError(f'option "{n}" has unknown type "{t}"', file, line)


def _format_size(n: int) -> str:
    for suffix, size in (("G", 1024 ** 3), ("M", 1024 ** 2), ("K", 1024)):
        if n != 0 and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def format_scalar(spec: OptionSpec, value: Any) -> str:
    """The text of a non-boolean value as ``-bP`` shows it (without the name)."""
    t = spec.type
    if value is None:
        return ""
    if t == "time":
        return value if isinstance(value, str) else format_time(int(value))
    if t == "mode":
        return "0%o" % value
    if t == "size":
        return _format_size(int(value))
    if t == "fixed":
        whole, frac = divmod(int(value), 1000)
        return f"{whole}." + (("%03d" % frac).rstrip("0") or "0")
    if t == "kint":
        return _format_size(int(value) * 1024)
    if t in ("uid", "gid") and isinstance(value, int):
        try:
            return pwd.getpwuid(value).pw_name if t == "uid" else grp.getgrgid(value).gr_name
        except KeyError:
            return str(value)
    return printable(str(value))


def printable(text: str) -> str:
    """Escape non-printing characters the way -bP shows them (``\\n``, ``\\t``, octal)."""
    out = []
    for c in text:
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 32 or ord(c) == 127:
            out.append("\\%03o" % ord(c))
        else:
            out.append(c)
    return "".join(out)


#: Exim's lists of users and of groups (its uidlist/gidlist options): -bP shows the
#: names joined by bare colons, and nothing after "=" when unset.
UID_LISTS = frozenset({"never_users", "trusted_users", "owners"})
GID_LISTS = frozenset({"admin_groups", "trusted_groups", "owngroups"})


def _id_list(value: Any, groups: bool) -> str:
    """A user or group list as -bP shows it: each numeric id by its name."""
    names = []
    for item in str(value).split(":"):
        item = item.strip()
        if item.isdigit():
            try:
                item = grp.getgrgid(int(item)).gr_name if groups \
                    else pwd.getpwuid(int(item)).pw_name
            except KeyError:
                pass
        if item:
            names.append(item)
    return ":".join(names)


def format_value(spec: OptionSpec, value: Any, hidden: bool = False) -> str:
    """One ``-bP`` output line: ``name``/``no_name`` for booleans, else ``name = value``."""
    if hidden:
        return f"{spec.name} = <value not displayable>"
    if spec.type == "bool" or (spec.type == "ebool" and not isinstance(value, str)):
        return spec.name if value else f"no_{spec.name}"
    if spec.name in UID_LISTS or spec.name in GID_LISTS:
        shown = _id_list(value, spec.name in GID_LISTS) if value else ""
        return f"{spec.name} = {shown}" if shown else f"{spec.name} ="
    if spec.type == "fixed" and value is None:
        return f"{spec.name} ="          # Exim prints no trailing space here
    return f"{spec.name} = {format_scalar(spec, value)}"
