"""Parse expansion source text into a tree (compiled once, cached by text).

The tree is made of:

* ``Seq(parts)``: concatenation; each part is a ``str`` literal or a node below.
* ``Var(name)``: ``$name`` / ``${name}`` (also ``$1``, ``$h_subject:``).
* ``Op(name, arg)``: ``${name:arg}`` expansion operators (``lc``, ``length_3``...).
* ``Item(name, args, yes, no, fail, extra)``: ``${name{..}{..}}`` expansion items.
* ``Cond(name, args, negate, extra)``: a condition inside ``${if ...}`` and friends;
  ``args`` holds ``Seq`` or ``Cond`` children.

Syntax errors raise :class:`ExpandError` with Exim's wording where practical.  Exim
parses the branch not taken too (so syntax errors are reported whatever the data), which
a tree built up front gives us for free.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from .bytesutil import normalise
from .errors import ExpandError

LETTER_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _byte(v: int) -> str:
    # bytes >= 0x80 become surrogate escapes so that runs of them can form UTF-8
    return chr(v) if v < 0x80 else chr(0xDC00 + v)

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGITS = frozenset("0123456789")
_WS = " \t\n\r\f\v"
_HEADER_PREFIXES = ("h_", "header_", "rh_", "rheader_", "bh_", "bheader_", "lh_",
                    "lheader_")


class Seq:
    """A concatenation of literal strings and nodes."""

    __slots__ = ("parts", "fn")

    def __init__(self, parts: list):
        self.parts = parts
        # the closure built by compiled.seq_fn on first use
        self.fn: Callable[[Any], str] | None = None

    def __repr__(self) -> str:
        return f"Seq({self.parts!r})"


class Var:
    """A variable reference."""

    __slots__ = ("name", "braced")

    def __init__(self, name: str, braced: bool = False):
        self.name = name
        # ${name} (braced) and $name word Exim's "unknown variable" error differently
        self.braced = braced

    def __repr__(self) -> str:
        return f"Var({self.name!r})"


class Op:
    """An expansion operator ``${name:arg}``."""

    __slots__ = ("name", "arg")

    def __init__(self, name: str, arg: Seq):
        self.name = name
        self.arg = arg

    def __repr__(self) -> str:
        return f"Op({self.name!r}, {self.arg!r})"


class Item:
    """An expansion item with brace arguments and optional yes/no/fail parts."""

    __slots__ = ("name", "args", "yes", "no", "fail", "extra", "surplus")

    def __init__(self, name: str, args: list, yes=None, no=None, fail=False, extra=None):
        self.name = name
        self.args = args
        self.yes = yes
        self.no = no
        self.fail = fail
        self.extra = extra
        # ${extract} with five arguments: the source text from the fifth on, for the
        # error Exim gives when (found at run time) the first is not a field number
        self.surplus: str | None = None

    def __repr__(self) -> str:
        return (f"Item({self.name!r}, {self.args!r}, yes={self.yes!r}, no={self.no!r}, "
                f"fail={self.fail}, extra={self.extra!r})")


class Cond:
    """A condition; ``extra`` carries e.g. the variable name of ``def:``."""

    __slots__ = ("name", "args", "negate", "extra")

    def __init__(self, name: str, args: list, negate: bool = False, extra=None):
        self.name = name
        self.args = args
        self.negate = negate
        self.extra = extra

    def __repr__(self) -> str:
        return f"Cond({self.name!r}, {self.args!r}, negate={self.negate}, extra={self.extra!r})"


# Conditions by argument shape.
COND_NOARG = frozenset({"first_delivery", "queue_running"})
COND_ONE = frozenset({"bool", "bool_lax", "exists", "isip", "isip4", "isip6", "pam",
                      "radius", "ldapauth"})
COND_TWO = frozenset({"eq", "eqi", "==", "=", "<", "<=", ">", ">=", "gt", "gti", "ge",
                      "gei", "lt", "lti", "le", "lei", "match", "match_address",
                      "match_domain", "match_ip", "match_local_part", "inlist",
                      "inlisti", "crypteq", "inbound_srs"})
COND_LISTMATCH = frozenset({"match_address", "match_domain", "match_ip", "match_local_part"})
COND_AND_OR = frozenset({"and", "or"})
COND_FOR = frozenset({"forall", "forany", "forall_json", "forany_json", "forall_jsons",
                      "forany_jsons"})
COND_ACL = frozenset({"acl", "saslauthd"})
ALL_CONDITIONS = COND_NOARG | COND_ONE | COND_TWO | COND_AND_OR | COND_FOR | COND_ACL | {"def"}

# Items whose arguments are plain strings, collected generically.
GENERIC_ITEMS = frozenset({
    "acl", "authresults", "certextract", "dlfunc", "env", "hash", "hmac", "imapfolder",
    "length",
    "listextract", "listquote", "map", "nhash", "perl", "prvs", "prvscheck", "readfile",
    "readsocket", "reduce", "run", "sg", "sort", "srs_encode", "substr", "tr",
})
SPECIAL_ITEMS = frozenset({"if", "lookup", "extract", "filter"})
ALL_ITEMS = GENERIC_ITEMS | SPECIAL_ITEMS

# Generic items with {yes}{no} parts: how many arguments precede them.
_YESNO_MIN = {"listextract": 2, "env": 1, "run": 1, "readsocket": 2, "certextract": 2,
              "prvscheck": 3, "acl": 9}

_ORD = "1st 2nd 3rd 4th 5th 6th".split()

# What Exim appends to an error in a condition nested in and/or/forall/forany.
_INSIDE = {**{c: f" inside \"{c}{{...}}\" condition" for c in COND_AND_OR},
           **{c: f" inside \"{c}\" condition" for c in COND_FOR}}

# Items whose brace arguments Exim counts: (fewest, most or None); too few or too many
# get its "Not enough/Too many arguments" errors.
ARG_COUNTS: dict[str, tuple[int, int | None]] = {
    "acl": (1, 10), "authresults": (1, 1), "dlfunc": (2, 10), "hash": (2, 3),
    "hmac": (3, 3), "imapfolder": (1, 3), "length": (2, 2), "listquote": (2, 2),
    "nhash": (2, 3), "perl": (1, 9), "prvs": (2, 3), "readfile": (1, 2), "sg": (3, 3),
    "srs_encode": (3, 3), "substr": (2, 3), "tr": (3, 3), "readsocket": (2, None),
    "prvscheck": (1, None),
}
# Generic items whose surplus arguments are {yes}{no} strings (after _YESNO_MIN ones).
_YESNO_ITEMS = frozenset({"env", "run", "listextract", "certextract"})


# Items whose per-item expression (this argument) Exim names in its errors.
_BODY_ARG = {"map": 1, "reduce": 2}

# Items whose missing arguments Exim names: the name of each argument in turn.
_ARG_NAMES: dict[str, tuple[str, ...]] = {
    "map": ("first", "last"), "reduce": ("first", "second", "last"),
    "sort": ("list", "comparator", "extractor"), "filter": ("first", "last"), "run": ("command",),
    "certextract": ("field", "cert variable"),
}


def missing_arg(name: str, given: int) -> str | None:
    """Exim's error for an item whose argument number ``given + 1`` is missing, for the
    items that word it so (None for the others)."""
    names = _ARG_NAMES.get(name)
    if names is not None:
        if given >= len(names):
            return None             # e.g. sort's third: Exim's message is empty
        return f"missing '{{' for {names[given]} arg of {name}"
    if name in ("extract", "listextract"):
        return f"missing '{{' for arg {given + 1} of {name}"
    return None


def not_enough(name: str) -> str:
    """Exim's error for an item given fewer brace arguments than it needs."""
    return f"Not enough arguments for '{name}' (min is {ARG_COUNTS[name][0]})"


def too_many(name: str) -> str:
    """Exim's error for an item given more brace arguments than it takes."""
    return f"Too many arguments for '{name}' (max is {ARG_COUNTS[name][1]})"


def yes_not_braced(rest: str) -> str:
    """Exim's error when what follows an item's arguments is not a {yes} string."""
    return ("curly-bracket problem in conditional yes/no parsing: 'yes' part did not "
            f"start with '{{'\n remaining string is '{rest}'")


def fail_expected(name: str) -> str:
    """Exim's error when a {yes} string is followed by neither {no}, fail nor }."""
    return f"syntax error in \"{name}\" item - \"fail\" expected"


def extract_field_number(text: str) -> int | None:
    """The field number of ${extract{N}{seps}{data}}, None when the first argument is a
    key: as Exim, white space round it, an optional "-" and ASCII digits ("-" alone is
    field 0, "+1" is a key); read into a C int."""
    p = text.strip(_WS)
    sign = -1 if p.startswith("-") else 1
    digits = p[1:] if sign < 0 else p
    if not all(c in "0123456789" for c in digits):
        return None
    v = int(digits) if digits else 0
    v &= 0xFFFFFFFF
    return sign * (v - (1 << 32) if v >> 31 else v)


def not_closed(rest: str) -> str:
    """Exim's error when the {yes}{no} strings are not followed by the closing }."""
    return ("curly-bracket problem in conditional yes/no parsing: did not close with '}'"
            f"\n remaining string is '{rest}'")


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.n = len(text)

    # -- strings -------------------------------------------------------------
    def seq(self, i: int, in_brace: bool, raw: bool = False) -> tuple[Seq, int]:
        """Parse until end of text (or an unescaped ``}`` when ``in_brace``).

        ``raw``: ``$`` is an ordinary character (for arguments Exim does not expand,
        such as the list of ``match_domain``); backslash escapes still apply.
        """
        s, n = self.s, self.n
        parts: list = []
        lit: list[str] = []
        while i < n:
            c = s[i]
            if c == "\\":
                i += 1
                if i >= n:
                    raise ExpandError("\\ at end of string")
                c = s[i]
                if c == "N":
                    end = s.find("\\N", i + 1)
                    if end < 0:
                        lit.append(s[i + 1:])
                        i = n
                    else:
                        lit.append(s[i + 1:end])
                        i = end + 2
                    continue
                if c in LETTER_ESCAPES:      # \n \t \r \b \f \v (as Exim)
                    lit.append(LETTER_ESCAPES[c])
                elif c == "x" and i + 1 < n and s[i + 1] in "0123456789abcdefABCDEF":
                    j = i + 1
                    while j < n and j < i + 3 and s[j] in "0123456789abcdefABCDEF":
                        j += 1
                    lit.append(_byte(int(s[i + 1:j], 16)))
                    i = j
                    continue
                elif c == "x":
                    lit.append("\x00")     # Exim: \x without hex digits is a NUL byte
                elif c in "01234567":
                    j = i
                    while j < n and j < i + 3 and s[j] in "01234567":
                        j += 1
                    lit.append(_byte(int(s[i:j], 8) & 0xFF))
                    i = j
                    continue
                else:
                    lit.append(c)
                i += 1
            elif c == "$" and not raw:
                if lit:
                    parts.append("".join(lit))
                    lit = []
                node, i = self.dollar(i + 1)
                parts.append(node)
            elif c == "}" and in_brace:
                break
            else:
                j = i + 1
                while j < n and s[j] not in "\\$}" if not raw else s[j] not in "\\}":
                    j += 1
                lit.append(s[i:j])
                i = j
        if lit:
            parts.append("".join(lit))
        return Seq([normalise(p) if isinstance(p, str) else p for p in parts]), i

    def brace_seq(self, i: int, what: str) -> tuple[Seq, int]:
        """Parse ``{...}`` starting at ``s[i] == '{'``; return position after ``}``."""
        seq, i = self.seq(i + 1, True)
        if i >= self.n:
            raise ExpandError("missing } at end of string")
        return seq, i + 1

    def ws(self, i: int) -> int:
        s, n = self.s, self.n
        while i < n and s[i] in _WS:
            i += 1
        return i

    def name(self, i: int) -> tuple[str, int]:
        s, n = self.s, self.n
        j = i
        while j < n and s[j] in _NAME_CHARS:
            j += 1
        return s[i:j], j

    # -- $ forms -------------------------------------------------------------
    def dollar(self, i: int):
        s, n = self.s, self.n
        if i < n and s[i] == "{":
            return self.brace_item(i + 1)
        if i < n and s[i] in _DIGITS:       # ASCII only: str.isdigit() takes "²" too
            j = i
            while j < n and s[j] in _DIGITS:
                j += 1
            return Var(s[i:j]), j
        if i < n and s[i] in _NAME_CHARS:
            name, j = self.name(i)
            if name.startswith(_HEADER_PREFIXES):
                return self.header_var(i)
            return Var(name), j
        raise ExpandError("$ not followed by letter, digit, or {")

    def header_var(self, i: int, braced: bool = False):
        """``$h_name:``: the name runs to a colon (consumed) or white space (kept);
        braces do not end it, as in Exim."""
        s, n = self.s, self.n
        j = i
        while j < n and s[j] != ":" and s[j] not in _WS:
            j += 1
        name = s[i:j]
        if j < n and s[j] == ":":
            j += 1
        return Var(name + ":"), j

    def brace_item(self, i: int):
        s, n = self.s, self.n
        if i >= n or s[i] not in _NAME_CHARS:
            raise ExpandError("letter or digit expected after ${")
        name, j = self.name(i)
        while j < n and s[j] == "-" and name.endswith("_"):
            # operator arguments may be negative: ${substr_-3:...}
            more, j = self.name(j + 1)
            name = name + "-" + more
        if j < n and s[j] == "}" and name not in ALL_ITEMS:
            return Var(name, braced=True), j + 1
        if j < n and s[j] == ":" and name not in SPECIAL_ITEMS:
            from .operators import operator_error
            err = operator_error(name)
            if err:
                raise ExpandError(err)
            arg, k = self.seq(j + 1, True)
            if k >= n:
                raise ExpandError("missing } at end of string")
            return Op(name, arg), k + 1
        if name in ALL_ITEMS:
            return self.item(name, j)
        raise ExpandError(f"\"${{{name}\" is not a known operator (or a }} is missing in a "
                          "variable reference)")

    # -- items ---------------------------------------------------------------
    def args(self, i: int, name: str, maxn: int = 9) -> tuple[list, int]:
        out: list = []
        i = self.ws(i)
        # where each argument began (for error texts); a local list, since parsing an
        # argument parses the items nested in it, which set self.starts for themselves
        starts: list[int] = []
        body = _BODY_ARG.get(name)
        while i < self.n and self.s[i] == "{" and len(out) < maxn:
            starts.append(i)
            if len(out) != body:
                seq, i = self.brace_seq(i, f"\"{name}\"")
            else:
                try:
                    seq, i = self.brace_seq(i, f"\"{name}\"")
                except RecursionError:
                    raise
                except ExpandError as e:    # Exim says where the error came from
                    raise ExpandError(f"{e.message} inside \"{name}\" item") from None
            out.append(seq)
            i = self.ws(i)
        self.starts = starts
        return out, i

    def yes_no(self, i: int, name: str, item: Item, allow_bare_fail: bool = False) -> int:
        s, n = self.s, self.n
        i = self.ws(i)
        if i < n and s[i] == "{":
            item.yes, i = self.brace_seq(i, f"\"{name}\"")
            i = self.ws(i)
            if i < n and s[i] == "{":
                item.no, i = self.brace_seq(i, f"\"{name}\"")
                i = self.ws(i)
            elif s.startswith("fail", i):
                item.fail = True
                i = self.ws(i + 4)
            elif i >= n or s[i] != "}":
                raise ExpandError(fail_expected(name))
        elif s.startswith("fail", i) and allow_bare_fail:
            item.fail = True
            i = self.ws(i + 4)
        elif i >= n or s[i] != "}":
            raise ExpandError(yes_not_braced(s[i:]))
        if i < n and s[i] == "}":
            return i + 1
        raise ExpandError(not_closed(s[i:]))

    def close(self, i: int, name: str) -> int:
        i = self.ws(i)
        if i < self.n and self.s[i] == "}":
            return i + 1
        if i < self.n and self.s.startswith("fail", i):
            raise ExpandError(yes_not_braced(self.s[i:]))
        raise ExpandError(f"missing }} at end of \"{name}\"" if i >= self.n else
                          f"syntax error in \"{name}\" item - unexpected text")

    def close_extract(self, i: int, args: list, starts: list[int], fields: bool) -> int:
        """The closing brace of ${extract}; Exim's errors when it is missing.  A field
        number (not a key) takes a separator argument more before the yes/no strings."""
        s = self.s
        i = self.ws(i)
        if i < self.n and s[i] == "}":
            return i + 1
        first = args[0].parts
        numeric = fields and len(first) == 1 and isinstance(first[0], str) and \
            extract_field_number(first[0]) is not None
        base = 3 if numeric else 2
        if len(args) < base:
            raise ExpandError(f"missing '{{' for arg {len(args) + 1} of extract")
        more = len(args) - base
        if more == 0:
            raise ExpandError(yes_not_braced(s[i:]))
        if more == 1:
            raise ExpandError(fail_expected("extract"))
        rest = starts[base + 2] if len(args) > base + 2 else i
        raise ExpandError(not_closed(s[rest:]))

    def close_generic(self, i: int, name: str, args: list, starts: list[int]) -> int:
        """The closing brace of an item read with :meth:`args`; when it is missing, the
        error Exim gives for that item's shape (yes/no strings or a counted list)."""
        s = self.s
        i = self.ws(i)
        if name in ("map", "reduce", "sort") and len(args) < len(_ARG_NAMES[name]):
            # Exim reads these arguments even in a branch it skips
            raise ExpandError(missing_arg(name, len(args)) or "")
        if i < self.n and s[i] == "}":
            return i + 1
        base = _YESNO_MIN.get(name)
        if name in _YESNO_ITEMS and base is not None and len(args) < base:
            text = missing_arg(name, len(args))
            if text is not None:
                raise ExpandError(text)
        if name in _ARG_NAMES and len(args) < len(_ARG_NAMES[name]) + 1:
            text = missing_arg(name, len(args))
            if text is not None:
                raise ExpandError(text)
        if name in ("map", "reduce", "sort") and len(args) >= len(_ARG_NAMES[name]):
            raise ExpandError(f"missing }} at end of \"{name}\"")
        if name in _YESNO_ITEMS and base is not None and len(args) >= base:
            more = len(args) - base
            if more == 0:
                raise ExpandError(yes_not_braced(s[i:]))
            if more == 1:
                raise ExpandError(fail_expected(name))
            rest = starts[base + 2] if len(args) > base + 2 else i
            raise ExpandError(not_closed(s[rest:]))
        counts = ARG_COUNTS.get(name)
        if counts is not None:
            least, most = counts
            if len(args) < least:
                raise ExpandError(not_enough(name))
            if name == "readsocket":
                raise ExpandError("missing '}' closing readsocket")
            if name == "prvscheck":     # what follows an address that is not prvs-signed
                if len(args) == 1:
                    raise ExpandError(not_enough(name))
                if len(args) > 3 or (i < self.n and s[i] == "{"):
                    raise ExpandError("Too many arguments for 'prvscheck' (max is 2)")
            if most is not None and len(args) >= most and i < self.n and s[i] == "{":
                raise ExpandError(too_many(name))
            raise ExpandError(f"missing '}}' after '{name}'")
        return self.close(i, name)

    def item(self, name: str, i: int):
        s = self.s
        if name == "if":
            cond, i = self.cond(i, "if")
            node = Item("if", [cond])
            return node, self.yes_no(i, name, node)
        if name == "lookup":
            return self.lookup(i)
        if name == "extract":
            i = self.ws(i)
            extra: str | tuple[str, str] | None = None
            w, j = self.name(i)
            if w in ("json", "jsons"):
                extra = w
                i = j
            args, i = self.args(i, name, 5)
            starts = self.starts
            if len(args) < 2:
                raise ExpandError(f"missing '{{' for arg {len(args) + 1} of extract")
            node = Item(name, args, extra=extra)
            i = self.ws(i)
            first = args[0].parts
            numeric = extra is None and len(first) == 1 and isinstance(first[0], str) \
                and extract_field_number(first[0]) is not None
            if len(args) == 5:
                node.surplus = s[starts[4]:]
            # a bare fail stands for the {no} string: only after a {yes} string
            if s.startswith("fail", i) and len(args) > (3 if numeric else 2):
                node.fail = True
                i += 4
            return node, self.close_extract(i, args, starts, extra is None)
        if name == "filter":
            args, i = self.args(i, name, 1)
            if not args:
                raise ExpandError("missing '{' for first arg of filter")
            i = self.ws(i)
            if i >= self.n or s[i] != "{":
                raise ExpandError("missing '{' for last arg of filter")
            cond, i = self.braced_cond(i, "filter\" item")
            i = self.ws(i)
            if i >= self.n or s[i] != "}":
                raise ExpandError("missing } at end of \"filter\"")
            return Item(name, [args[0], cond]), i + 1
        extra = None
        if name == "run" and i < self.n and s[i] == ",":
            j = i + 1
            while j < self.n and s[j] not in "{" + _WS:
                j += 1
            extra = s[i + 1:j]
            if extra not in ("preexpand",):
                raise ExpandError(f"bad option '{extra}' for run")
            i = j
        start = self.ws(i)
        most = ARG_COUNTS.get(name, (0, None))[1]
        if name in ("map", "reduce", "sort"):
            most = len(_ARG_NAMES[name])
        elif name in _YESNO_ITEMS:
            most = _YESNO_MIN[name] + 2     # then {yes}{no}; a further one is an error
        args, i = self.args(i, name, most or 9)
        starts = self.starts
        if name == "certextract" and len(args) > 1 and s[starts[1] + 1:starts[1] + 2] != "$":
            # Exim wants the variable itself there, even in a branch it skips
            raise ExpandError("second argument of \"certextract\" must be a certificate "
                              "variable")
        if name == "run" and extra is None and args:
            # without preexpand Exim splits the raw text before expanding each argument
            end = self.ws(start)
            _seq, j = self.brace_seq(end, "\"run\"")
            extra = ("split", s[end + 1:j - 1])
        node = Item(name, args, extra=extra)
        i = self.ws(i)
        if s.startswith("fail", i) and name in _YESNO_MIN:   # others: no {yes}{no} parts
            if len(args) <= _YESNO_MIN[name]:
                raise ExpandError(yes_not_braced(s[i:]))
            node.fail = True
            i = i + 4
        return node, self.close_generic(i, name, args, starts)

    def lookup(self, i: int):
        s, n = self.s, self.n
        i = self.ws(i)
        key = None
        if i < n and s[i] == "{":
            key, i = self.brace_seq(i, "\"lookup\"")
            i = self.ws(i)
        j = i
        while j < n and s[j] != "{" and s[j] not in _WS:
            j += 1
        ltype = s[i:j]
        if not (ltype[:1].isascii() and ltype[:1].isalpha()):
            raise ExpandError("missing lookup type")    # Exim: it starts with a letter
        if "}" in ltype:            # Exim reads the type up to { or white space
            raise ExpandError(f"unknown lookup type \"{ltype}\"")
        i = self.ws(j)
        if i >= n or s[i] != "{":
            raise ExpandError("missing '{' for lookup file-or-query arg")
        query, i = self.brace_seq(i, "\"lookup\"")
        node = Item("lookup", [key, query], extra=ltype)
        return node, self.yes_no(i, "lookup", node)

    # -- conditions ----------------------------------------------------------
    def braced_cond(self, i: int, where: str) -> tuple[Cond, int]:
        i = self.ws(i)
        if i >= self.n or self.s[i] != "{":
            raise ExpandError(f"missing {{ for condition in \"{where}")
        suffix = _INSIDE.get(where)
        if suffix is None:
            cond, i = self.cond(i + 1, where)
        else:
            try:
                cond, i = self.cond(i + 1, where)
            except RecursionError:
                raise
            except ExpandError as e:
                raise ExpandError(f"{e.message}{suffix}") from None
        i = self.ws(i)
        if i >= self.n or self.s[i] != "}":
            raise ExpandError(f"missing }} after condition in \"{where}")
        return cond, i + 1

    def cond(self, i: int, where: str) -> tuple[Cond, int]:
        s, n = self.s, self.n
        i = self.ws(i)
        negate = False
        while i < n and s[i] == "!":
            negate = not negate
            i = self.ws(i + 1)
        if i < n and s[i] in "=<>":
            j = i
            while j < n and s[j] in "=<>":
                j += 1
            name = s[i:j]
        else:
            name, j = self.name(i)
        if name not in ALL_CONDITIONS:
            if where == "if" or where in _INSIDE:
                raise ExpandError(f"unknown condition \"{name}\"" if name else
                                  "condition name expected, but found \"" + s[i:i + 16] + "\"")
            inside = where if where.endswith("item") else where + "\" condition"
            raise ExpandError(f"unknown condition \"{name}\" inside \"{inside}")
        i = j
        if name == "def":
            if i >= n or s[i] != ":":
                raise ExpandError("\":\" expected after \"def\"")
            vname, k = self.name(i + 1)
            if vname.startswith(_HEADER_PREFIXES):
                var, k = self.header_var(i + 1)
                vname = var.name
            elif not vname:
                raise ExpandError("variable name omitted after \"def:\"")
            return Cond(name, [], negate, vname), k
        if name in COND_NOARG:
            return Cond(name, [], negate), i
        if name in COND_AND_OR:
            i = self.ws(i)
            if i >= n or s[i] != "{":
                raise ExpandError(f"missing {{ after \"{name}\"")
            i = self.ws(i + 1)
            subs = []
            while i < n and s[i] == "{":
                c, i = self.braced_cond(i, name)
                subs.append(c)
                i = self.ws(i)
            if i >= n or s[i] != "}":
                raise ExpandError(f"missing }} at end of condition inside \"{name}\"")
            return Cond(name, subs, negate), i + 1
        if name in COND_FOR:
            args, i = self.args(i, name, 1)
            if not args:
                raise ExpandError(f"missing {{ after \"{name}\"")
            c, i = self.braced_cond(i, name)
            return Cond(name, [args[0], c], negate), i
        if name in COND_ACL:
            # acl {{name}{arg}...}: the argument strings sit inside one outer brace pair
            i = self.ws(i)
            if i >= n or s[i] != "{":
                raise ExpandError(f"missing {{ after \"{name}\"")
            args, i = self.args(i + 1, name)
            i = self.ws(i)
            if i >= n or s[i] != "}":
                raise ExpandError(f"missing }} at end of \"{name}\" condition")
            if not args:
                raise ExpandError(f"missing ACL name in \"{name}\" condition")
            return Cond(name, args, negate), i + 1
        want = 1 if name in COND_ONE else (2 if name in COND_TWO else 9)
        if name in COND_LISTMATCH:
            # the list argument is not expanded (Exim without EXPAND_LISTMATCH_RHS)
            args, i = self.args(i, name, 1)
            i = self.ws(i)
            if len(args) == 1 and i < n and s[i] == "{":
                raw, i = self.seq(i + 1, True, raw=True)
                if i >= n:
                    raise ExpandError("missing } at end of string")
                args.append(raw)
                i += 1
        else:
            args, i = self.args(i, name, want)
        if not args and (i >= n or s[i] != "{"):
            raise ExpandError(f"missing {{ after \"{name}\"")
        if len(args) < want and name not in COND_ACL:
            raise ExpandError(f"missing {_ORD[len(args)]} string in {{}} after \"{name}\"")
        return Cond(name, args, negate), i


@lru_cache(maxsize=4096)
def compile_expansion(text: str) -> Seq:
    """Parse ``text`` into a tree; cached by source text.  Raises ExpandError."""
    p = _Parser(text)
    try:
        seq, i = p.seq(0, False)
    except RecursionError:
        raise ExpandError("expansion nested too deeply") from None
    return seq


def compile_condition(text: str) -> Cond:
    """Parse a bare condition (as in ``${if <cond>}``) into a ``Cond`` node."""
    return _compile_condition(text)


@lru_cache(maxsize=1024)
def _compile_condition(text: str) -> Cond:
    p = _Parser(text)
    try:
        cond, i = p.cond(0, "if")
    except RecursionError:
        raise ExpandError("condition nested too deeply") from None
    i = p.ws(i)
    if i != p.n:
        raise ExpandError(f"unexpected text after condition: \"{text[i:]}\"")
    return cond
