"""Expansion conditions (``${if <condition> ...}``, ``filter``, ``forall``...)."""
from __future__ import annotations

import os
import re
from typing import Any

from pymta.taint import captures
from pymta.truth import exim_true

from .bytesutil import ascii_lower, to_bytes
from .errors import ExpandDefer, ExpandError, ExpandFail
from .evaluator import compile_regex, evaluate, get_int
from .forbid import check_allowed
from .lists import split_list
from .parser import Cond

_NUMERIC = {"==": lambda a, b: a == b, "=": lambda a, b: a == b,
            "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_STRING = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
           "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def compare(op: str, a: str, b: str) -> bool:
    """Binary comparison by Exim's condition name (numeric or string, caseless with i)."""
    if op in _NUMERIC:
        return _NUMERIC[op](number_operand(a), number_operand(b))
    if op.endswith("i") and op[:-1] in _STRING:
        return _STRING[op[:-1]](_strcmpic(a, b), 0)
    if op in _STRING:
        return _STRING[op](a, b)
    raise ExpandError(f"unknown comparison \"{op}\"")


def _strcmpic(a: str, b: str) -> int:
    """Exim 4.96's caseless compare (lti, lei, gti, gei): byte-wise, but a string that
    is a proper prefix of the other compares greater, not less ("0" gei "0x10")."""
    x, y = to_bytes(ascii_lower(a)), to_bytes(ascii_lower(b))
    for i, c in enumerate(x):
        if i >= len(y):
            return c
        if c != y[i]:
            return c - y[i]
    return y[len(x)] if len(y) > len(x) else 0


def number_operand(text: str) -> int:
    """An operand of a numeric condition; an empty (or all blank) one counts as 0."""
    return get_int(text) if text.strip() else 0


def _bool(value: str, lax: bool) -> bool:
    v = value.strip(" \t\n\v\f\r")
    if not v:
        return False
    if all(c in "0123456789" for c in (v[1:] if v[0] == "-" else v)):
        # a number ("-" alone included) is read by atoi(): saturated to a C long, then
        # cut to a C int, so "4294967296" is false; bool_lax: only "0" itself is false
        if lax and len(v) > 1:
            return True
        from .operators import _int32
        n = int(v) if v != "-" else 0
        return _int32(max(min(n, (1 << 63) - 1), -(1 << 63))) != 0
    lv = ascii_lower(v)
    if lv in ("true", "yes"):
        return True
    if lv in ("false", "no"):
        return False
    if lax:
        return True
    raise ExpandError(f"unrecognised boolean value \"{v}\"")


def _isip(value: str, version: int | None) -> bool:
    if value != value.strip():
        return False            # Exim does not skip white space here
    try:
        from .operators import exim_ip_address
        ip = exim_ip_address(value)
    except ValueError:
        return False
    return version is None or ip.version == version


def _crypteq(password: str, encrypted: str) -> bool:
    """Exim's crypteq: {md5}/{sha1} (hex, any case, or base64) or crypt()."""
    import base64
    import hashlib
    import hmac as _h

    from .bytesutil import to_bytes
    low = encrypted.lower()
    for mech, fn in (("{md5}", hashlib.md5), ("{sha1}", hashlib.sha1)):
        if low.startswith(mech):
            digest = fn(to_bytes(password))
            rest = encrypted[len(mech):]
            if len(rest) == 2 * digest.digest_size:
                return _h.compare_digest(to_bytes(rest.lower()),
                                         to_bytes(digest.hexdigest()))
            return _h.compare_digest(to_bytes(rest), base64.b64encode(digest.digest()))
    if encrypted.startswith("{"):
        mech = low[:low.find("}") + 1]
        if mech not in ("{crypt}", "{crypt16}"):
            raise ExpandError(f"unknown encryption mechanism in \"{encrypted}\"")
        encrypted = encrypted[len(mech):]
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        raise ExpandError("crypt() is not available") from None
    try:
        hashed = crypt.crypt(password, encrypted) or ""
    except UnicodeEncodeError:
        return False        # Python's crypt() takes only UTF-8 text
    return _h.compare_digest(to_bytes(hashed), to_bytes(encrypted))


def eval_cond(cond: Cond, ctx: Any) -> bool:
    """Evaluate a parsed condition node."""
    r = _eval(cond, ctx)
    return (not r) if cond.negate else r


_DEFER_PREFIX = re.compile(r'^lookup of ".*?" gave DEFER: ', re.DOTALL)


def _list_match(name: str, args: list[str], ctx: Any) -> bool:
    """match_domain, match_local_part, match_address and match_ip."""
    from .. import match as list_match
    # the matched item (or lookup data) becomes $value, as in Exim 4.96
    if name == "match_domain":
        return list_match.match_domain(args[0], args[1], ctx, expand=False, data_var="value")
    if name == "match_local_part":
        return list_match.match_localpart(args[0], args[1], ctx, expand=False,
                                 data_var="value")
    if name == "match_address":
        return list_match.match_address(args[0], args[1], ctx, expand=False, data_var="value")
    subject = args[0]       # Exim takes no white space around the address
    if subject:
        from .operators import exim_ip_address
        try:
            exim_ip_address(subject)
        except ValueError:
            raise ExpandError(f"\"{subject}\" is not an IP address") from None
    return list_match.match_host(subject, None, args[1], ctx, ip_only=True, data_var="value")


def _args(cond: Cond, ctx: Any) -> list[str]:
    return [evaluate(a, ctx) for a in cond.args]


def _eval(cond: Cond, ctx: Any) -> bool:
    name = cond.name
    if name == "def":
        from .variables import lookup_variable, unknown_note
        v = None if cond.extra.isdigit() else lookup_variable(cond.extra, ctx)
        if v is None:
            raise ExpandError(f"unknown variable \"{cond.extra}\" after \"def:\""
                              f"{unknown_note(cond.extra, ctx)}")
        return v != ""
    if name in ("and", "or"):
        want = name == "or"
        subs = cond.args
        for k, sub in enumerate(subs):
            try:
                hit = eval_cond(sub, ctx) == want
            except ExpandError as e:
                if isinstance(e, ExpandFail):
                    raise
                raise type(e)(f"{e.message} inside \"{name}{{...}}\" condition") from None
            if hit:
                from .evaluator import check_skipped
                for rest in subs[k + 1:]:   # still checked, not evaluated, as Exim does
                    try:
                        check_skipped(rest, ctx)
                    except ExpandError as e:
                        raise ExpandError(f"{e.message} inside \"{name}{{...}}\" "
                                          "condition") from None
                return want
        return not want
    if name in ("forall", "forany", "forall_json", "forany_json", "forall_jsons",
                "forany_jsons"):
        data = evaluate(cond.args[0], ctx)
        if name.endswith(("_json", "_jsons")):
            import json
            try:
                arr = json.loads(data) if data.strip() else []
            except ValueError:
                raise ExpandError(f"\"{data}\" is not a JSON array") from None
            if not isinstance(arr, list):
                raise ExpandError(f"\"{data}\" is not a JSON array")
            from .evaluator import _json_value
            items = [_json_value(x, name.endswith("s")) for x in arr]
        else:
            items = split_list(data)
        want_any = name.startswith("forany")
        if not items:
            return False        # Exim 4.96: an empty list makes forall false too
        saved = ctx.variables.get("item")
        try:
            for it in items:
                ctx.variables["item"] = it
                try:
                    held = eval_cond(cond.args[1], ctx)
                except ExpandFail:
                    raise
                except ExpandError as e:    # Exim says where the error came from
                    raise type(e)(f"{e.message} inside \"{name}\" condition") from None
                if held == want_any:
                    return want_any
        finally:
            if saved is None:
                ctx.variables.pop("item", None)
            else:
                ctx.variables["item"] = saved
        return not want_any
    if name == "first_delivery":
        return exim_true(ctx.variables.get("first_delivery"))
    if name == "queue_running":
        return exim_true(ctx.variables.get("queue_running"))
    if name in _NUMERIC:
        # Exim reads each number as soon as it is expanded, so a bad first number is
        # reported before the second argument is expanded
        x = number_operand(evaluate(cond.args[0], ctx))
        return _NUMERIC[name](x, number_operand(evaluate(cond.args[1], ctx)))
    args = _args(cond, ctx)
    if name == "eq":
        return args[0] == args[1]
    if name == "eqi":
        return ascii_lower(args[0]) == ascii_lower(args[1])
    if name in _NUMERIC or name in ("lt", "le", "gt", "ge", "lti", "lei", "gti", "gei"):
        return compare(name, args[0], args[1])
    if name == "match":
        m = compile_regex(args[1]).search(args[0])
        if m is None:
            return False
        ctx.numbered = captures(m, args[0])
        return True
    if name in ("inlist", "inlisti"):
        needle = args[0]
        items = split_list(args[1])
        if name == "inlisti":
            needle = ascii_lower(needle)
            return any(needle == ascii_lower(it) for it in items)
        return needle in items
    if name in ("match_domain", "match_local_part", "match_address", "match_ip"):
        try:
            return _list_match(name, args, ctx)
        except ExpandDefer as e:
            if e.list_item is None:
                raise
            # Exim's wording: the list item, then the lookup's own reason
            reason = _DEFER_PREFIX.sub("", e.message, count=1)
            raise ExpandDefer(f"unable to complete match against \"{e.list_item}\": "
                              f"{reason}") from None
    if name in ("bool", "bool_lax"):
        return _bool(args[0], name == "bool_lax")
    if name == "exists":
        check_allowed("exists", ctx)
        # Exim 4.96 allows a tainted name here (checked with exim -bem)
        return os.path.exists(args[0])
    if name in ("isip", "isip4", "isip6"):
        return _isip(args[0], None if name == "isip" else int(name[-1]))
    if name == "inbound_srs":
        from .extra_items import cond_inbound_srs
        return cond_inbound_srs(args[0], args[1], ctx)
    if name == "crypteq":
        return _crypteq(args[0], args[1])
    if name == "acl":
        from .evaluator import call_acl
        verdict, message = call_acl(cond.args, ctx)
        ctx.variables["value"] = message
        return verdict == "accept"
    if name == "ldapauth":
        from ..config.values import main_opt
        from ..lookups.ldap import ldap_auth
        config = getattr(ctx, "config", None)
        return ldap_auth(args[0], lambda option: main_opt(config, option))
    raise ExpandError(f"condition \"{name}\" is not supported")
