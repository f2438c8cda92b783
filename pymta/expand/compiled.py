"""Turn parsed expansion trees into Python closures (the fast, compiled path).

A tree from :mod:`.parser` is turned, on first evaluation, into nested closures that
capture everything known at parse time (literals, variable names, operator names,
which conditions apply), so evaluating a cached tree does no dispatch on node types.
Common shapes get specialised closures; everything else calls the generic item and
condition code, so behaviour is the same on both paths.
"""
from __future__ import annotations

from typing import Any, Callable

from ..taint import Quoted, Tainted, captures
from .errors import ExpandError, ExpandFail
from .parser import Cond, Item, Op, Seq, Var

Fn = Callable[[Any], str]
CondFn = Callable[[Any], bool]


def _cut(v: str) -> str:
    """Cut at the first NUL (see evaluator.evaluate), keeping taint."""
    i = v.find("\x00")
    if i < 0:
        return v
    return Tainted(v[:i]) if isinstance(v, Tainted) else v[:i]


def _var_fn(name: str, braced: bool) -> Fn:
    from .variables import get_variable
    if name == "sender_host_name":          # looked up when first used
        return lambda ctx: get_variable(name, ctx, braced)

    def var(ctx: Any) -> str:
        v = ctx.variables.get(name)
        if v is None:
            v = get_variable(name, ctx, braced)
        return v
    return var


def _node_fn(node: Any) -> Fn:
    """A closure for one part of a sequence (a Var, Op or Item)."""
    if isinstance(node, Var):
        return _var_fn(node.name, node.braced)
    if isinstance(node, Op):
        from .operators import apply_operator, fresh_result
        arg = seq_fn(node.arg)
        name = node.name

        quoter = name.startswith("quote_")
        fresh = fresh_result(name)

        def op(ctx: Any) -> str:
            a = arg(ctx)
            r = apply_operator(name, a, ctx)
            if isinstance(a, Tainted) and not fresh:
                if quoter or isinstance(a, Quoted):
                    return r if isinstance(r, Quoted) else Quoted(r)
                if not isinstance(r, Tainted):
                    return Tainted(r)
            return r
        return op
    if isinstance(node, Item):
        if node.name == "if":
            return _if_fn(node)
        from .forbid import MESSAGES, check_allowed
        if node.name in MESSAGES:
            inner = _node_fn_plain(node)
            feature = node.name

            def guarded(ctx: Any) -> str:
                check_allowed(feature, ctx)
                return inner(ctx)
            return guarded
        return _node_fn_plain(node)
    from .evaluator import evaluate
    return lambda ctx: evaluate(node, ctx)


def _node_fn_plain(node: Item) -> Fn:
    """The closure for an item, without the forbid check."""
    if node.name == "lookup" and "$" not in node.extra:
        return _lookup_fn(node)
    from .evaluator import _ITEMS
    fn = _ITEMS.get(node.name)
    if fn is None:
        name = node.name

        def unsupported(ctx: Any) -> str:     # only an error when reached
            raise ExpandError(f"\"{name}\" expansion item is not supported")
        return unsupported
    return lambda ctx: fn(node, ctx)


def seq_fn(seq: Seq) -> Fn:
    """The closure for a sequence: constant text, one node, or a concatenation."""
    parts = seq.parts
    if all(isinstance(p, str) for p in parts):
        const = _cut("".join(parts))
        return lambda ctx: const
    if len(parts) == 1:
        one = _node_fn(parts[0])

        def single(ctx: Any) -> str:
            v = one(ctx)
            return _cut(v) if "\x00" in v else v
        return single
    # literal parts are kept as they are; node results are cut at a NUL except an
    # item's (Exim appends those with their length), then the whole is cut
    fns: list[tuple[bool, Any]] = []
    for p in parts:
        if isinstance(p, str):
            fns.append((True, p))
        else:
            fns.append((type(p) is Item, _node_fn(p)))

    def concat(ctx: Any) -> str:
        out = []
        tainted = quoted = False
        for keep, f in fns:
            if f.__class__ is str:
                out.append(f)
                continue
            v = f(ctx)
            if isinstance(v, Tainted):
                tainted = True
                quoted = isinstance(v, Quoted)      # the last tainted part decides
            if not keep and "\x00" in v:
                v = _cut(v)
            out.append(v)
        r = "".join(out)
        if "\x00" in r:
            r = r[:r.index("\x00")]
        return (Quoted(r) if quoted else Tainted(r)) if tainted else r
    return concat


def _needs_skip_check(node: Any) -> bool:
    """Whether check_skipped can find anything in this subtree (variables, def:, bool)."""
    if node is None or isinstance(node, str):
        return False
    if isinstance(node, Seq):
        return any(_needs_skip_check(p) for p in node.parts)
    return True


def _if_fn(node: Item) -> Fn:
    from .evaluator import check_skipped
    cond = cond_fn(node.args[0])
    yes = seq_fn(node.yes) if node.yes is not None else (lambda ctx: "true")
    no = seq_fn(node.no) if node.no is not None else None
    check_yes = node.yes if _needs_skip_check(node.yes) else None
    check_no = node.no if _needs_skip_check(node.no) else None
    fail = node.fail

    def if_(ctx: Any) -> str:
        saved = ctx.numbered
        variables = ctx.variables
        saved_value = variables.get("value")
        try:
            if cond(ctx):
                if check_no is not None:
                    check_skipped(check_no, ctx)
                return yes(ctx)
            if check_yes is not None:
                check_skipped(check_yes, ctx)
            if no is not None:
                return no(ctx)
        finally:
            # $1.. and $value set by the condition do not leak out of the if
            ctx.numbered = saved
            if saved_value is None:
                variables.pop("value", None)
            else:
                variables["value"] = saved_value
        if fail:
            raise ExpandFail("\"if\" failed and \"fail\" requested")
        return ""
    return if_


def _lookup_fn(node: Item) -> Fn:
    """${lookup...} with a fixed type: the generic code with the parse-time work done
    once, and cached results served without a call into the lookup code."""
    from ..lookups import do_lookup_spec
    from .evaluator import cache_policy, check_skipped
    spec = node.extra
    key_fn = seq_fn(node.args[0]) if node.args[0] is not None else None
    query_fn = seq_fn(node.args[1])
    cache_spec, cache_read = cache_policy(spec)
    cacheable = cache_spec is not None and key_fn is not None
    yes = seq_fn(node.yes) if node.yes is not None else None
    no = seq_fn(node.no) if node.no is not None else None
    check_yes = node.yes if _needs_skip_check(node.yes) else None
    check_no = node.no if _needs_skip_check(node.no) else None
    fail = node.fail

    def with_value(f: Fn, value: str | None, ctx: Any) -> str:
        variables = ctx.variables
        saved = variables.get("value")
        if value is None:
            variables.pop("value", None)
        else:
            variables["value"] = value
        try:
            return f(ctx)
        finally:
            if saved is None:
                variables.pop("value", None)
            else:
                variables["value"] = saved

    def lookup(ctx: Any) -> str:
        key = key_fn(ctx) if key_fn is not None else None
        query = query_fn(ctx)
        if cacheable and not isinstance(query, Tainted):
            ckey = (cache_spec, str.__str__(query), str.__str__(key))
            cache = ctx.lookup_cache
            if cache_read and ckey in cache:
                value = cache[ckey]
            else:
                value = do_lookup_spec(spec, query, key, ctx)
                if value is not None:
                    value = str.__str__(value)      # lookup data is untainted
                cache[ckey] = value
        else:
            value = do_lookup_spec(spec, query, key, ctx)
            if value is not None:
                value = str.__str__(value)
        if value is not None:
            if check_no is not None:
                check_skipped(check_no, ctx)
            if yes is None:
                return value
            return with_value(yes, value, ctx)
        if check_yes is not None:
            check_skipped(check_yes, ctx)
        if no is not None:
            return with_value(no, None, ctx)
        if fail:
            raise ExpandFail("\"lookup\" failed and \"fail\" requested")
        return ""
    return lookup


def cond_fn(cond: Cond) -> CondFn:
    """The closure for a condition, negation included."""
    f = _cond_fn(cond)
    if cond.negate:
        return lambda ctx: not f(ctx)
    return f


def _cond_fn(cond: Cond) -> CondFn:
    from . import conditions as c
    name = cond.name
    if name in ("eq", "eqi", "match") or name in c._NUMERIC or \
            name in ("lt", "le", "gt", "ge", "lti", "lei", "gti", "gei"):
        a, b = seq_fn(cond.args[0]), seq_fn(cond.args[1])
        if name == "eq":
            return lambda ctx: a(ctx) == b(ctx)
        if name == "eqi":
            from .bytesutil import ascii_lower
            return lambda ctx: ascii_lower(a(ctx)) == ascii_lower(b(ctx))
        if name == "match":
            from .evaluator import compile_regex

            def match(ctx: Any) -> bool:
                subject = a(ctx)
                m = compile_regex(b(ctx)).search(subject)
                if m is None:
                    return False
                ctx.numbered = captures(m, subject)
                return True
            return match
        if name in c._NUMERIC:
            # Exim reads each number as soon as it is expanded: a bad first number is
            # reported before the second argument is expanded
            op, operand = c._NUMERIC[name], c.number_operand
            return lambda ctx: op(operand(a(ctx)), operand(b(ctx)))
        compare = c.compare
        return lambda ctx: compare(name, a(ctx), b(ctx))
    if name in ("and", "or"):
        return _and_or_fn(cond)
    return lambda ctx: c._eval(cond, ctx)


def _and_or_fn(cond: Cond) -> CondFn:
    from .evaluator import check_skipped
    name = cond.name
    want = name == "or"
    subs = [(sub, cond_fn(sub)) for sub in cond.args]

    def and_or(ctx: Any) -> bool:
        for k, (sub, f) in enumerate(subs):
            try:
                hit = f(ctx) == want
            except ExpandError as e:
                if isinstance(e, ExpandFail):
                    raise
                raise type(e)(f"{e.message} inside \"{name}{{...}}\" condition") from None
            if hit:
                for rest, _f in subs[k + 1:]:   # still checked, not evaluated
                    try:
                        check_skipped(rest, ctx)
                    except ExpandError as e:
                        raise ExpandError(f"{e.message} inside \"{name}{{...}}\" "
                                          "condition") from None
                return want
        return not want
    return and_or
