"""Evaluate a compiled expansion tree in an :class:`ExpandContext`.

Taint: a result is :class:`~pymta.taint.Tainted` when any part that went into it was;
lookup results are clean.  Branches not taken are never evaluated.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Any

from ..taint import Quoted, Tainted, captures
from .context import default_acl_runner
from .errors import ExpandError, ExpandFail
from .forbid import MESSAGES as FORBIDDABLE
from .forbid import check_allowed
from .lists import join_list, list_separator, split_list
from .parser import (
    ALL_CONDITIONS,
    ARG_COUNTS,
    LETTER_ESCAPES,
    Cond,
    Item,
    Op,
    Seq,
    Var,
    extract_field_number,
    missing_arg,
    not_closed,
    not_enough,
    too_many,
)
from .parser import compile_expansion as compile_expansion_cached
from .regex_errors import pcre_error_text
from .variables import get_variable, lookup_variable, unknown_note, unknown_variable


def _t(value: str, tainted: bool) -> str:
    return Tainted(value) if tainted and not isinstance(value, Tainted) else value


def _cstr(v: str) -> str:
    """Cut ``v`` at its first NUL, as Exim does where it treats a value as a C string."""
    i = v.find("\x00")
    if i < 0:
        return v
    return _t(v[:i], isinstance(v, Tainted))


def evaluate(node: Any, ctx: Any) -> str:
    """Evaluate a node (usually the ``Seq`` from :func:`compile_expansion`).

    NUL bytes: Exim appends variable and operator results as C strings, and every
    expanded (sub)string is used as a C string, so a value is cut at its first NUL.
    """
    if node.__class__ is Seq:
        f = node.fn
        if f is None:
            from .compiled import seq_fn
            try:
                f = node.fn = seq_fn(node)
            except RecursionError:
                raise ExpandError("expansion nested too deeply") from None
        try:
            return f(ctx)
        except RecursionError:
            raise ExpandError("expansion nested too deeply") from None
    if isinstance(node, Seq):
        parts = node.parts
        if len(parts) == 1:
            p = parts[0]
            v = p if isinstance(p, str) else evaluate(p, ctx)
            return _cstr(v) if "\x00" in v else v
        out = []
        tainted = quoted = False
        for p in parts:
            if isinstance(p, str):
                v = p
            else:
                v = evaluate(p, ctx)
                if isinstance(v, Tainted):
                    tainted = True
                    quoted = isinstance(v, Quoted)      # the last tainted part decides
                if type(p) is not Item and "\x00" in v:
                    v = _cstr(v)
            out.append(v)
        r = "".join(out)
        if "\x00" in r:
            r = r[:r.index("\x00")]
        return Quoted(r) if quoted else _t(r, tainted)
    if isinstance(node, Var):
        return get_variable(node.name, ctx, node.braced)
    if isinstance(node, Op):
        from .operators import apply_operator, fresh_result
        arg = evaluate(node.arg, ctx)
        result = apply_operator(node.name, arg, ctx)
        if fresh_result(node.name):
            return str.__str__(result)
        if isinstance(arg, Tainted) and (node.name.startswith("quote_")
                                         or isinstance(arg, Quoted)):
            return result if isinstance(result, Quoted) else Quoted(result)
        return _t(result, isinstance(arg, Tainted))
    if isinstance(node, Item):
        if node.name in FORBIDDABLE:
            check_allowed(node.name, ctx)
        fn = _ITEMS.get(node.name)
        if fn is None:
            raise ExpandError(f"\"{node.name}\" expansion item is not supported")
        return fn(node, ctx)
    if isinstance(node, str):
        return node
    raise ExpandError(f"internal: cannot evaluate {node!r}")


# -- checks on branches that are not taken --------------------------------------------

#: Lookup types of Exim's that pymta does not have.
_LOOKUPS_ELSEWHERE = frozenset({"nis", "nis0", "nisplus", "ibase", "oracle", "whoson",
                                "testdb"})


def check_skipped(node: Any, ctx: Any) -> None:
    """Exim reports some errors even in a branch it does not take: unknown variables and
    malformed boolean literals.  Walk the untaken subtree without evaluating it."""
    if node is None or isinstance(node, str):
        return
    if isinstance(node, Seq):
        for p in node.parts:
            if not isinstance(p, str):
                check_skipped(p, ctx)
    elif isinstance(node, Var):
        if lookup_variable(node.name, ctx) is None:
            raise ExpandError(unknown_variable(node.name, ctx, node.braced))
    elif isinstance(node, Op):
        check_skipped(node.arg, ctx)
    elif isinstance(node, Item):
        if node.name == "lookup" and "$" not in node.extra:
            # Exim looks the lookup type up, and checks it takes a key or not, when
            # it reads the item, so also in a branch it skips
            from ..lookups import QUERY_STYLE, parse_lookup_type
            try:
                spec = parse_lookup_type(node.extra)
            except ExpandError:
                # types pymta lacks but an Exim build may have are not errors here
                if node.extra.rsplit("-", 1)[-1].split(",")[0].rstrip("*@") not in \
                        _LOOKUPS_ELSEWHERE:
                    raise
            else:
                if spec.name in QUERY_STYLE and node.args[0] is not None:
                    raise ExpandError(f"a single key was given for lookup type "
                                      f"\"{spec.name}\", which is not a single-key lookup type")
                if spec.name not in QUERY_STYLE and node.args[0] is None:
                    raise ExpandError(f"missing {{key}} for single-key \"{spec.name}\" lookup")
        for a in node.args:
            check_skipped(a, ctx)
        check_skipped(node.yes, ctx)
        check_skipped(node.no, ctx)
    elif isinstance(node, Cond):
        if node.name in ("bool", "bool_lax") and node.args and \
                all(isinstance(p, str) for p in node.args[0].parts):
            from .conditions import _bool
            _bool("".join(node.args[0].parts), node.name == "bool_lax")
        if node.name == "def" and (node.extra.isdigit() or
                                   lookup_variable(node.extra, ctx) is None):
            raise ExpandError(f"unknown variable \"{node.extra}\" after \"def:\""
                              f"{unknown_note(node.extra, ctx)}")
        for a in node.args:
            check_skipped(a, ctx)


# -- helpers ------------------------------------------------------------------

class _Scoped:
    """Temporarily set variables (e.g. $value, $item) and restore them afterwards."""

    def __init__(self, ctx: Any, **values: str | None):
        self.ctx = ctx
        self.values = values

    def __enter__(self):
        v = self.ctx.variables
        self.saved = {k: v.get(k) for k in self.values}
        for k, val in self.values.items():
            if val is None:
                v.pop(k, None)
            else:
                v[k] = val
        return self

    def __exit__(self, *exc):
        v = self.ctx.variables
        for k, val in self.saved.items():
            if val is None:
                v.pop(k, None)
            else:
                v[k] = val
        return False


def _yes_no(node: Item, ctx: Any, found: bool, value: str | None, what: str) -> str:
    """Common tail of items with {yes}{no}/fail: $value is set while expanding them."""
    if found:
        check_skipped(node.no, ctx)
        if node.yes is None:
            return value if value is not None else "true"
        with _Scoped(ctx, value=value):
            return evaluate(node.yes, ctx)
    check_skipped(node.yes, ctx)
    if node.no is not None:
        with _Scoped(ctx, value=value):
            return evaluate(node.no, ctx)
    if node.fail:
        raise ExpandFail(f"\"{what}\" failed and \"fail\" requested")
    return ""


_PCRE_FIXES = ((re.compile(r"\(\?<(?=[A-Za-z_])"), "(?P<"),
               (re.compile(r"\(\?'([A-Za-z_]\w*)'"), r"(?P<\1>"),
               (re.compile(r"\\k<([A-Za-z_]\w*)>"), r"(?P=\1)"),
               (re.compile(r"\\h"), r"[ \\t]"),
               (re.compile(r"\\z"), r"\\Z"),
               # "^(?i)..." (the spec's caseless rewrite pattern): PCRE allows flags
               # after the anchor, Python wants global flags first
               (re.compile(r"^\^\(\?([imsx]+)\)"), r"(?\1)^"))


def _scope_flag_off(pattern: str) -> str:
    """PCRE's ``(?-i)`` switches caselessness off for the rest of the pattern; Python
    only has the scoped form, so wrap the remainder when it is at the top level."""
    k = pattern.find("(?-i)")
    depth = 0
    for j in range(k):
        if pattern[j] == "\\":
            continue
        if pattern[j] == "(" and (j == 0 or pattern[j - 1] != "\\"):
            depth += 1
        elif pattern[j] == ")" and (j == 0 or pattern[j - 1] != "\\"):
            depth -= 1
    if depth != 0:
        return pattern
    return pattern[:k] + "(?-i:" + pattern[k + 5:] + ")"


def pcre_to_python(pattern: str) -> str:
    """Translate the common PCRE-only spellings into Python ``re`` syntax."""
    if "(?" in pattern or "\\" in pattern:
        for rx, repl in _PCRE_FIXES:
            pattern = rx.sub(repl, pattern)
        if "(?-i)" in pattern:
            pattern = _scope_flag_off(pattern)
    return pattern


@lru_cache(maxsize=1024)
def compile_regex(pattern: str, flags: int = 0) -> re.Pattern:
    """Compile a PCRE-style pattern with Python's ``re`` (cached)."""
    import warnings
    translated = pcre_to_python(pattern)
    try:
        with warnings.catch_warnings():     # "possible nested set": valid in PCRE
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(translated, flags)
    except re.error as e:
        raise ExpandError(f"regular expression error in \"{pattern}\": "
                          f"{pcre_error_text(e, pattern, translated)}") from None
    except (OverflowError, RecursionError) as e:
        raise ExpandError(f"regular expression error in \"{pattern}\": {e}") from None


def get_int(text: str, what: str = "") -> int:
    """Parse an integer with optional K/M/G suffix as Exim's numeric conditions do.
    The messages quote the text from its first non-blank character, as Exim's do."""
    s = text.lstrip(_C_SPACE)
    m = re.match(r"[-+]?[0-9]+", s)
    if not m:
        raise ExpandError(f"integer expected but \"{s}\" found")
    v = int(m.group(0))
    rest = s[m.end():]
    overflow = not -(1 << 63) <= v < (1 << 63)      # strtoll saturates, errno ERANGE
    if not overflow and rest[:1] in ("k", "K", "m", "M", "g", "G"):
        v *= {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[rest[0].lower()]
        overflow = not -(1 << 63) <= v < (1 << 63)
        rest = rest[1:]
    if overflow:
        raise ExpandError(f"absolute value of integer \"{s}\" is too large (overflow)")
    if rest.strip(_C_SPACE):
        # text that starts like a number but goes on is "invalid", as in Exim
        raise ExpandError(f"invalid integer \"{s}\"")
    return v


_C_SPACE = " \t\n\v\f\r"


def _nonneg_arg(text: str, item: str) -> None:
    """Exim's errors for the number that is the first argument of ``item``."""
    s = text.strip()
    if not s:
        raise ExpandError(f"first argument of \"{item}\" must not be empty")
    if not re.fullmatch(r"-?[0-9]*", s):
        raise ExpandError(f"first argument of \"{item}\" must be numeric")


# -- items --------------------------------------------------------------------

def _item_if(node: Item, ctx: Any) -> str:
    from .conditions import eval_cond
    saved = ctx.numbered
    saved_value = ctx.variables.get("value")
    try:
        if eval_cond(node.args[0], ctx):
            check_skipped(node.no, ctx)
            return evaluate(node.yes, ctx) if node.yes is not None else "true"
        check_skipped(node.yes, ctx)
        if node.no is not None:
            return evaluate(node.no, ctx)
    finally:
        # $1.. and $value set by the condition do not leak out of the if
        ctx.numbered = saved
        if saved_value is None:
            ctx.variables.pop("value", None)
        else:
            ctx.variables["value"] = saved_value
    if node.fail:
        raise ExpandFail("\"if\" failed and \"fail\" requested")
    return ""


def _item_lookup(node: Item, ctx: Any) -> str:
    from ..lookups import do_lookup_spec
    key = evaluate(node.args[0], ctx) if node.args[0] is not None else None
    query = evaluate(node.args[1], ctx)
    spec = node.extra
    if "$" in spec:         # options such as sqlite,file=$dir/db are expanded too
        spec = evaluate(compile_expansion_cached(spec), ctx)
    cache_spec, cache_read = cache_policy(spec)
    cacheable = key is not None and cache_spec is not None and not isinstance(query, Tainted)
    if cacheable:
        ckey = (cache_spec, str.__str__(query), str.__str__(key))
        cache = ctx.lookup_cache
        if cache_read and ckey in cache:
            value = cache[ckey]
            return _yes_no(node, ctx, value is not None, value, "lookup")
    value = do_lookup_spec(spec, query, key, ctx)
    if value is not None:
        value = str.__str__(value)       # lookup data is untainted
    if cacheable:
        cache[ckey] = value
    return _yes_no(node, ctx, value is not None, value, "lookup")


def cache_policy(spec: str) -> tuple[str | None, bool]:
    """(the spec the lookup cache files results under or None, whether to read it).

    ``cache=no_rd`` (spec 9.1) makes a lookup skip the cache but still write to it.
    """
    if spec.endswith(",cache=no_rd"):
        base = spec[:-len(",cache=no_rd")]
        return (base if base in _CACHEABLE else None), False
    return (spec if spec in _CACHEABLE else None), True


# Lookup types whose result depends only on (file, key): their results are cached in
# ctx.lookup_cache (wildlsearch expands keys, partial- records the match: not cached).
_CACHEABLE = frozenset(
    f"{name}{star}" for name in ("lsearch", "nwildlsearch", "iplsearch", "cdb", "dbm",
                                 "dbmnz", "dbmjz", "lmdb", "json", "dsearch")
    for star in ("", "*", "*@"))


def _json_value(obj: Any, strip_quotes: bool) -> str:
    """A JSON element as extract json prints it (jsons: strings without quotes)."""
    import json
    if strip_quotes:
        if not isinstance(obj, str):
            raise ExpandError("missing '\"' wrapping string result for extract jsons")
        return obj
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _extract_keyed(key: str, text: str) -> str | None:
    """Find ``key=value`` (value optionally quoted) in text; keys are caseless."""
    i, n = 0, len(text)
    lkey = key.lower()
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        j = i
        while j < n and not text[j].isspace() and text[j] != "=":
            j += 1
        name = text[i:j]
        while j < n and text[j].isspace():
            j += 1
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j].isspace():
                j += 1
        if j < n and text[j] == '"':
            j += 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            j += 1
            value = "".join(buf)
        else:
            k = j
            while k < n and not text[k].isspace():
                k += 1
            value = text[j:k]
            j = k
        if name.lower() == lkey:
            return value
        if j <= i:
            j = i + 1
        i = j
    return None


def _item_extract(node: Item, ctx: Any) -> str:
    args = node.args
    first = evaluate(args[0], ctx)
    tainted = isinstance(first, Tainted)
    if not first:
        raise ExpandError("first argument of \"extract\" must not be empty")
    if node.extra in ("json", "jsons"):
        import json
        if node.surplus is not None:    # json takes two arguments, then {yes}{no}
            raise ExpandError(not_closed(node.surplus))
        data = evaluate(args[1], ctx)
        tainted = tainted or isinstance(data, Tainted)
        positional = re.fullmatch(r"\s*-?\d+\s*", first) is not None
        if positional and int(first) <= 0:
            raise ExpandError("first argument of \"extract\" must be greater than zero")
        # the text must be exactly an array (positional) or an object (keyed)
        opener, closer, what = ("[", "]", "array") if positional else ("{", "}", "object")
        if positional:
            data = data.strip()         # exim4 takes white space around an array
        if not data.startswith(opener) and not (opener == "{" and data.lstrip().startswith("{")):
            raise ExpandError(f"missing '{opener}' wrapping {what} for extract json")
        if not data.endswith(closer):
            raise ExpandError(f"missing '{closer}' wrapping {what} for extract json")
        try:
            obj = json.loads(data)
        except ValueError:
            raise ExpandError(f"failed to parse JSON for extract {node.extra}") from None
        value = None
        if isinstance(obj, dict) and not positional:
            if first in obj:
                value = _json_value(obj[first], node.extra == "jsons")
        elif isinstance(obj, list) and positional:
            pos = int(first)
            if pos <= len(obj):
                value = _json_value(obj[pos - 1], node.extra == "jsons")
        rest = args[2:]
    elif (idx := extract_field_number(first)) is not None:
        if len(args) < 3:
            raise ExpandError("missing '{' for arg 3 of extract")
        seps = evaluate(args[1], ctx)
        data = evaluate(args[2], ctx)
        tainted = tainted or isinstance(data, Tainted)
        if seps:
            fields = re.split("[" + re.escape(seps) + "]", data)
        else:
            fields = [data]
        if idx == 0:
            value = data
        elif 0 < idx <= len(fields):
            value = fields[idx - 1]
        elif idx < 0 and -idx <= len(fields):
            value = fields[idx]
        else:
            value = None
        rest = args[3:]
    else:
        if node.surplus is not None:    # a key takes two arguments, then {yes}{no}
            raise ExpandError(not_closed(node.surplus))
        data = evaluate(args[1], ctx)
        tainted = tainted or isinstance(data, Tainted)
        value = _extract_keyed(first.strip(), data)
        rest = args[2:]
    # Surplus brace arguments are the yes/no strings.
    tail = Item("extract", [], rest[0] if rest else None, rest[1] if len(rest) > 1 else None,
                node.fail)
    if tail.yes is None:
        if value is None and node.fail:
            raise ExpandFail("\"extract\" failed and \"fail\" requested")
        return _t(value or "", tainted)
    return _t(_yes_no(tail, ctx, value is not None, value, "extract"), tainted)


def _item_listextract(node: Item, ctx: Any) -> str:
    if len(node.args) < 2:
        raise ExpandError(missing_arg("listextract", len(node.args)) or "")
    first = evaluate(node.args[0], ctx)
    _nonneg_arg(first, "listextract")           # Exim's errors for a bad number
    idx = extract_field_number(first) or 0      # as Exim reads it: a C int
    data = evaluate(node.args[1], ctx)
    items = split_list(data)
    if idx < 0:
        # Exim counts a negative index up by the number of items; one that is still
        # negative then (further back than the first item) gives the first item
        idx = max(idx + 1 + len(items), 1) if idx + 1 + len(items) != 0 else 0
    value = items[idx - 1] if 0 < idx <= len(items) else None
    tail = Item("listextract", [], node.args[2] if len(node.args) > 2 else None,
                node.args[3] if len(node.args) > 3 else None, node.fail)
    if tail.yes is None:
        if value is None and node.fail:
            raise ExpandFail("\"listextract\" failed and \"fail\" requested")
        return _t(value or "", isinstance(data, Tainted))
    return _t(_yes_no(tail, ctx, value is not None, value, "listextract"),
              isinstance(data, Tainted))


def _list_loop(node: Item, ctx: Any):
    """Expand the list argument; return (text, separator, items)."""
    data = evaluate(node.args[0], ctx)
    sep, _ = list_separator(data)
    return data, sep, split_list(data)


def _item_filter(node: Item, ctx: Any) -> str:
    from .conditions import eval_cond
    data, sep, items = _list_loop(node, ctx)
    out = []
    with _Scoped(ctx, item=None):
        for it in items:
            ctx.variables["item"] = it
            try:
                kept = eval_cond(node.args[1], ctx)
            except ExpandFail:
                raise
            except ExpandError as e:
                raise type(e)(f"{e.message} inside \"filter\" condition") from None
            if kept:
                out.append(it)
    return _t(join_list(out, sep), isinstance(data, Tainted))


def _item_map(node: Item, ctx: Any) -> str:
    if len(node.args) < 2:
        raise ExpandError(missing_arg("map", len(node.args)) or "")
    data, sep, items = _list_loop(node, ctx)
    out = []
    tainted = isinstance(data, Tainted)
    with _Scoped(ctx, item=None):
        for it in items:
            ctx.variables["item"] = it
            v = _in_item("map", node.args[1], ctx)
            tainted = tainted or isinstance(v, Tainted)
            out.append(v)
    return _t(_join_map(out, sep), tainted)


def _join_map(items: list[str], sep: str) -> str:
    """${map} output: separators inside items doubled, and an empty item after the
    first written as one space so that it cannot read as a doubled separator (what
    Exim 4.96 prints: ${map{a:b:c}{}} is ": : ")."""
    parts = []
    for k, it in enumerate(items):
        if k:
            parts.append(sep)
            if not it:
                parts.append(" ")
                continue
        parts.append(it.replace(sep, sep + sep))
    return "".join(parts)


def _item_reduce(node: Item, ctx: Any) -> str:
    if len(node.args) < 3:
        raise ExpandError(missing_arg("reduce", len(node.args)) or "")
    data, sep, items = _list_loop(node, ctx)
    value = evaluate(node.args[1], ctx)
    with _Scoped(ctx, item=None, value=None):
        for it in items:
            ctx.variables["item"] = it
            ctx.variables["value"] = value
            value = _in_item("reduce", node.args[2], ctx)
    return value


def _in_item(name: str, body: Any, ctx: Any) -> str:
    """Evaluate the per-item expression of ${map}/${reduce}: Exim says where an error
    came from (forced failure aside)."""
    try:
        return evaluate(body, ctx)
    except ExpandFail:
        raise
    except ExpandError as e:
        raise type(e)(f"{e.message} inside \"{name}\" item") from None


_SORT_CMPS = {"<", "<=", ">", ">=", "lt", "le", "gt", "ge", "lti", "lei", "gti", "gei"}


def _item_sort(node: Item, ctx: Any) -> str:
    from functools import cmp_to_key

    from .conditions import compare
    if len(node.args) < 3:
        raise ExpandError(missing_arg("sort", len(node.args)) or "missing argument in \"sort\"")
    data, sep, items = _list_loop(node, ctx)
    cmp = evaluate(node.args[1], ctx).strip()
    if cmp not in _SORT_CMPS:
        # Exim's text for a condition that does not order; for any other word it
        # gives an empty message, where pymta names the word
        raise ExpandError("comparator not handled for sort" if cmp in ALL_CONDITIONS
                          else f"bad comparator \"{cmp}\" in sort")
    keyed = []
    with _Scoped(ctx, item=None):
        for it in items:
            ctx.variables["item"] = it
            keyed.append((evaluate(node.args[2], ctx), it))

    def before(a: str, b: str) -> bool:
        try:
            return compare(cmp, a, b)
        except ExpandError:
            return False        # Exim leaves such items where they are

    def order(a, b):
        if before(a[0], b[0]):
            return -1
        if before(b[0], a[0]):
            return 1
        return 0
    keyed.sort(key=cmp_to_key(order))
    return _t(join_list([it for _, it in keyed], sep), isinstance(data, Tainted))


_STRTOL_RE = re.compile(r"[ \t\n\v\f\r]*([+-]?\d+)?")


def _strtol_int(text: str) -> int | None:
    """``(int)strtol(text, &end, 10)`` with nothing allowed after the number, as Exim
    reads the numbers of ${length}, ${substr}, ${hash} and ${nhash}: leading white space
    and a sign are allowed, empty is 0, an out-of-range value saturates to the C long
    range and is then cut to a C int.  None when something follows the number."""
    m = _STRTOL_RE.match(text)
    assert m is not None
    if m.end() != len(text) or (m.group(1) is None and text):
        return None
    v = int(m.group(1)) if m.group(1) else 0
    from .operators import _int32
    return _int32(max(min(v, (1 << 63) - 1), -(1 << 63)))


def _item_numeric_string(node: Item, ctx: Any) -> str:
    """${length{n}{s}}, ${substr{a}{b}{s}}, ${hash{..}}, ${nhash{..}}."""
    from .operators import op_hash, op_length, op_nhash, op_substr
    args = [evaluate(a, ctx) for a in node.args]
    if len(args) < 2:
        raise ExpandError(not_enough(node.name))
    texts, subject = args[:-1], args[-1]
    nums: list[int] = []
    for k, text in enumerate(texts):
        # Exim: ${length}'s number and any second number must not be negative; a
        # first number may be (substr counts from the end, nhash divides unsigned)
        positive = k > 0 or node.name == "length"
        v = _strtol_int(text)
        if v is None or (v < 0 and (positive or node.name == "hash")):
            # (a negative ${hash} length makes Exim 4.96 die; fail the expansion)
            kind = "a positive" if positive or v is not None else "a"
            raise ExpandError(f"\"{text}\" is not {kind} number (in \"{node.name}\" "
                              "expansion)")
        nums.append(v)
    second = nums[1] if len(nums) > 1 else None
    if node.name == "length":
        result = op_length(subject, nums[0])
    elif node.name == "substr":
        result = op_substr(subject, nums[0], second)
    elif node.name == "hash":
        result = op_hash(subject, nums[0], second)
    else:
        result = op_nhash(subject, nums[0], second)
    return _t(result, isinstance(subject, Tainted))


def _expand_args(node: Item, ctx: Any, count: int) -> list[str]:
    if len(node.args) < count:
        if node.name in ARG_COUNTS:
            raise ExpandError(not_enough(node.name))
        raise ExpandError(f"missing {('1st','2nd','3rd','4th')[len(node.args)]} string in {{}} "
                          f"after \"{node.name}\"")
    return [evaluate(a, ctx) for a in node.args[:count]]


def _item_sg(node: Item, ctx: Any) -> str:
    subject, pattern, repl = _expand_args(node, ctx, 3)
    rx = compile_regex(pattern)

    # Exim expands the (already expanded) replacement once more for each match, with
    # $0..$n set to the match and its groups; so \\1 ends up as the byte \x01
    tree = compile_expansion_cached(repl) if ("$" in repl or "\\" in repl) else None
    saved = ctx.numbered

    def sub(m: re.Match) -> str:
        if tree is None:
            return repl
        ctx.numbered = captures(m, subject)
        return evaluate(tree, ctx)
    try:
        result = rx.sub(sub, subject)
    finally:
        ctx.numbered = saved
    return _t(result, any(isinstance(x, Tainted) for x in (subject, repl)))


def _item_tr(node: Item, ctx: Any) -> str:
    subject, frm, to = _expand_args(node, ctx, 3)
    if not to:
        return subject
    from .bytesutil import from_bytes, to_bytes
    # byte by byte, as Exim: a UTF-8 character is its bytes here
    frm_b, to_b = to_bytes(frm), to_bytes(to)
    table = {}
    for i, b in enumerate(frm_b):
        table[b] = to_b[i] if i < len(to_b) else to_b[-1]
    out = bytes(table.get(b, b) for b in to_bytes(subject))
    return _t(from_bytes(out), isinstance(subject, Tainted))


def _item_hmac(node: Item, ctx: Any) -> str:
    import hashlib
    import hmac
    alg, secret, data = _expand_args(node, ctx, 3)
    from .bytesutil import to_bytes
    if alg not in ("md5", "sha1"):
        raise ExpandError(f"hmac algorithm \"{alg}\" is not recognised")
    return hmac.new(to_bytes(secret), to_bytes(data), getattr(hashlib, alg)).hexdigest()


def _item_listquote(node: Item, ctx: Any) -> str:
    sep, data = _expand_args(node, ctx, 2)
    # an empty item is represented by a single space so it survives list parsing;
    # an empty separator quotes nothing (as Exim 4.96)
    quoted = data.replace(sep[0], sep[0] * 2) if sep else data
    return _t(quoted or " ", isinstance(data, Tainted))


def call_acl(node_args: list, ctx: Any) -> tuple[str, str]:
    """Run the ACL named by the first argument with the rest as $acl_arg1..9.

    Returns (verdict, message).  Uses ``ctx.acl_runner`` when the caller set one (an SMTP
    session), otherwise the default runner the ACL engine registered (as a "data" ACL).
    """
    args = [evaluate(a, ctx) for a in node_args]
    if not args:
        raise ExpandError(not_enough("acl"))
    if len(args) > 10:
        raise ExpandError(too_many("acl"))
    name = args[0]
    runner = ctx.acl_runner or default_acl_runner()
    if runner is None:
        raise ExpandError(f"cannot run ACL \"{name}\": no ACL engine loaded")
    scoped = {f"acl_arg{i}": (args[i] if i < len(args) else "") for i in range(1, 10)}
    scoped["acl_narg"] = str(len(args) - 1)
    with _Scoped(ctx, **scoped):
        res = runner(name, args[1:], ctx)
    verdict = getattr(res, "verdict", res)
    message = getattr(res, "message", None) or ""
    if getattr(res, "error", False) or verdict not in ("accept", "deny", "defer"):
        raise ExpandError(f"ERROR from acl \"{name}\"")
    if verdict == "defer":
        raise ExpandFail(f"DEFER from acl \"{name}\"")
    return verdict, message


def _item_acl(node: Item, ctx: Any) -> str:
    """${acl{name}{args}}: the ACL's message for accept/deny; defer is a forced fail."""
    _, message = call_acl(node.args, ctx)
    return message


def _environment(ctx: Any) -> dict[str, str]:
    """The environment as Exim sees it: only keep_environment names survive (when set)."""
    main = getattr(getattr(ctx, "config", None), "main", None)
    keep = getattr(main, "keep_environment", None) if main is not None else None
    env = dict(os.environ)
    if keep is not None:
        import fnmatch
        pats = split_list(str(keep))
        env = {k: v for k, v in env.items()
               if any(re.search(p, k) if p.startswith("^") else fnmatch.fnmatchcase(k, p)
                      for p in pats)}
    add = getattr(main, "add_environment", None) if main is not None else None
    for item in split_list(str(add)) if add else []:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def environment(config: Any) -> dict[str, str]:
    """The environment variables expansions see (``-bP environment`` lists them)."""
    return _environment(type("_Ctx", (), {"config": config})())


def _item_env(node: Item, ctx: Any) -> str:
    args = [evaluate(a, ctx) for a in node.args[:1]]
    if not args:
        raise ExpandError("missing variable name for env")
    value = _environment(ctx).get(args[0])
    tail = Item("env", [], node.args[1] if len(node.args) > 1 else None,
                node.args[2] if len(node.args) > 2 else None, node.fail)
    return _yes_no(tail, ctx, value is not None, value, "env")


def _item_readfile(node: Item, ctx: Any) -> str:
    from ..taint import TaintError, check_untainted
    args = [evaluate(a, ctx) for a in node.args]
    if not args:
        raise ExpandError(not_enough("readfile"))
    try:
        check_untainted(args[0], "readfile")
    except TaintError as e:
        raise ExpandError(str(e)) from None
    if os.path.isdir(args[0]):
        return ""               # Exim opens a directory and reads nothing from it
    try:
        with open(args[0], "rb") as f:
            data = f.read()
    except OSError as e:
        raise ExpandError(f"failed to open {args[0]}: {e.strerror}") from None
    from .bytesutil import from_bytes
    text = from_bytes(data)
    if len(args) > 1:
        text = text.replace("\n", args[1])
    return text


def _split_pieces(pieces: list[tuple[bool, str]]) -> list[str]:
    """Split a command into arguments the way Exim does for ${run} and pipes.

    ``pieces`` are (is_literal, text) pairs.  Only literal text can separate or quote
    arguments; expanded values (is_literal False) are always part of the current
    argument.  An argument starting with ``'`` runs verbatim to the next ``'``; one
    starting with ``"`` runs to the next ``"`` with backslash escapes; any other runs to
    white space.
    """
    chars: list[tuple[bool, str]] = []
    for literal, text in pieces:
        if literal:
            chars.extend((True, c) for c in text)
        elif text:
            chars.append((False, text))
    argv: list[str] = []
    i, n = 0, len(chars)
    while i < n:
        lit, c = chars[i]
        if lit and c in " \t\n\r\f\v":
            i += 1
            continue
        buf: list[str] = []
        if lit and c in "'\"":
            quote = c
            i += 1
            while i < n and chars[i] != (True, quote):
                if quote == '"' and chars[i] == (True, "\\") and i + 1 < n:
                    i += 1
                buf.append(chars[i][1])
                i += 1
            i += 1
        else:
            while i < n and not (chars[i][0] and chars[i][1] in " \t\n\r\f\v"):
                buf.append(chars[i][1])
                i += 1
        argv.append("".join(buf))
    return argv


def split_command(cmd: str) -> list[str]:
    """Split an expanded command line at white space, honouring Exim's quoting."""
    return _split_pieces([(True, cmd)])


def _run_argv(node: Item, ctx: Any) -> list[str]:
    """The argv of ${run}: without ``preexpand`` the text is split before expansion, so a
    variable's value stays one argument; the command name must not be tainted."""
    if node.extra == "preexpand":
        cmd = evaluate(node.args[0], ctx)
        argv = split_command(cmd)
        if argv and isinstance(cmd, Tainted):
            raise ExpandError(f"attempt to use tainted value '{argv[0]}' for ${{run}} "
                              "command")
        return argv
    raw = node.extra[1] if isinstance(node.extra, tuple) else None
    if raw is None:                     # not from the parser: split the expanded text
        return split_command(evaluate(node.args[0], ctx))
    argv = []
    for n, word in enumerate(split_raw_command(raw)):
        try:
            value = evaluate(compile_expansion_cached(word), ctx)
        except ExpandFail:
            raise
        except ExpandError as e:
            raise ExpandError(f"Expansion of \"{word}\" from command \"{raw}\" in ${{run}} "
                              f"expansion failed: {e.message}") from None
        if n == 0 and isinstance(value, Tainted):
            raise ExpandError(f"attempt to use tainted value '{value}' for ${{run}} "
                              "command")
        argv.append(value)
    return argv


_ESCAPES = LETTER_ESCAPES


def interpret_escape(text: str, i: int) -> tuple[str, int]:
    """Interpret the backslash escape whose letter is at ``text[i]`` (as Exim's string
    de-quoting does); return the character and the index after the escape."""
    c = text[i]
    if c in "01234567":
        j = i
        while j < len(text) and j < i + 3 and text[j] in "01234567":
            j += 1
        v = int(text[i:j], 8) & 0xFF
    elif c == "x" and i + 1 < len(text) and text[i + 1] in "0123456789abcdefABCDEF":
        j = i + 1
        while j < len(text) and j < i + 3 and text[j] in "0123456789abcdefABCDEF":
            j += 1
        v = int(text[i + 1:j], 16)
    elif c == "x":
        return "\x00", i + 1      # Exim: \x without hex digits is a NUL byte
    else:
        return _ESCAPES.get(c, c), i + 1
    return (chr(v) if v < 0x80 else chr(0xDC00 + v)), j


def split_raw_command(raw: str) -> list[str]:
    """Exim's split of unexpanded command text: white space separates, even inside
    ``${...}``; ``'...'`` is verbatim; ``"..."`` ends at the next unescaped quote and
    has its backslash escapes interpreted."""
    argv: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c in " \t\n\r\f\v":
            i += 1
            continue
        if c == "'":
            j = raw.find("'", i + 1)
            j = n if j < 0 else j
            argv.append(raw[i + 1:j])
            i = j + 1
        elif c == '"':
            buf = []
            i += 1
            while i < n and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n:
                    ch, i = interpret_escape(raw, i + 1)
                    buf.append(ch)
                    continue
                buf.append(raw[i])
                i += 1
            argv.append("".join(buf))
            i += 1
        else:
            j = i
            while j < n and raw[j] not in " \t\n\r\f\v":
                j += 1
            argv.append(raw[i:j])
            i = j
    return argv


def _item_run(node: Item, ctx: Any) -> str:
    """${run{command}{yes}{no}}: no shell; stdout+stderr become $value (which persists)."""
    import subprocess
    if not node.args:
        raise ExpandError(missing_arg("run", 0) or "")
    argv = _run_argv(node, ctx)
    if not argv:
        raise ExpandError("empty command for ${run}")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=60)
        rc = proc.returncode
        out = proc.stdout.decode("utf-8", "surrogateescape")
    except subprocess.TimeoutExpired:
        rc, out = 1, ""
    except OSError:
        rc, out = 127, ""       # like a child whose exec failed
    ctx.variables["runrc"] = str(rc)
    ctx.variables["value"] = out
    yes = node.args[1] if len(node.args) > 1 else None
    no = node.args[2] if len(node.args) > 2 else None
    if rc == 0:
        check_skipped(no, ctx)
        return evaluate(yes, ctx) if yes is not None else out
    check_skipped(yes, ctx)
    if no is not None:
        return evaluate(no, ctx)
    if node.fail:
        raise ExpandFail("\"run\" failed and \"fail\" requested")
    return ""


def _lazy(name: str):
    def call(node: Item, ctx: Any) -> str:
        from . import extra_items
        return getattr(extra_items, name)(node, ctx)
    return call


_ITEMS = {
    "prvs": _lazy("item_prvs"),
    "prvscheck": _lazy("item_prvscheck"),
    "readsocket": _lazy("item_readsocket"),
    "imapfolder": _lazy("item_imapfolder"),
    "authresults": _lazy("item_authresults"),
    "srs_encode": _lazy("item_srs_encode"),
    "certextract": _lazy("item_certextract"),
    "if": _item_if,
    "lookup": _item_lookup,
    "extract": _item_extract,
    "listextract": _item_listextract,
    "filter": _item_filter,
    "map": _item_map,
    "reduce": _item_reduce,
    "sort": _item_sort,
    "length": _item_numeric_string,
    "substr": _item_numeric_string,
    "hash": _item_numeric_string,
    "nhash": _item_numeric_string,
    "sg": _item_sg,
    "tr": _item_tr,
    "hmac": _item_hmac,
    "listquote": _item_listquote,
    "acl": _item_acl,
    "env": _item_env,
    "readfile": _item_readfile,
    "run": _item_run,
}
