"""Thin wrappers over expansion and list matching used by routers and delivery.

They call :mod:`pymta.expand` and :mod:`pymta.match` (other engineers' modules).  While those
are incomplete, small fallbacks keep routing usable: ``$name``/``${name}`` substitution and
plain list matching (literal, ``*suffix``, ``^regex``, ``!`` negation, ``+named`` lists,
``@`` for the primary host name).  The fallbacks are never used once the real modules exist.
"""
from __future__ import annotations

import re
from typing import Any

try:
    from pymta.expand import ExpandDefer, ExpandError, ExpandFail  # type: ignore
except ImportError:  # pragma: no cover - until pymta.expand provides them
    class ExpandError(Exception):  # type: ignore[no-redef]
        """Expansion failed (stand-in)."""

    class ExpandFail(ExpandError):  # type: ignore[no-redef]
        """Forced expansion failure (stand-in)."""

    class ExpandDefer(ExpandError):  # type: ignore[no-redef]
        """A lookup deferred (stand-in)."""


_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand(text: str | None, ctx: Any) -> str | None:
    """Expand ``text`` in ``ctx``; None stays None."""
    if text is None:
        return None
    try:
        from pymta.expand import expand_string  # type: ignore
    except ImportError:
        return _fallback_expand(text, ctx)
    return expand_string(text, ctx)


def _fallback_expand(text: str, ctx: Any) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in ctx.variables:
            return str(ctx.variables[name])
        main = getattr(ctx.config, "main", None)
        value = getattr(main, name, None)
        if value is None:
            raise ExpandError(f"unknown variable name \"{name}\"")
        return str(value)
    return _VAR.sub(sub, text)


def condition_true(text: str, ctx: Any) -> bool:
    """Evaluate a router ``condition`` (Exim's boolean interpretation of the expansion)."""
    try:
        from pymta.expand import eval_condition  # type: ignore
    except ImportError:
        value = _fallback_expand(text, ctx).strip()
        return value.lower() not in ("", "0", "no", "false")
    return eval_condition(text, ctx)


def split_list(text: str, sep: str = ":") -> list[str]:
    """Split an Exim list (``<x`` changes the separator, doubled separators are literal)."""
    text = text.strip()
    if text.startswith("<") and len(text) > 1 and not text[1].isalnum() and not text[1].isspace():
        sep, text = text[1], text[2:]
    items: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == sep:
            if i + 1 < len(text) and text[i + 1] == sep:
                cur.append(sep)
                i += 2
                continue
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur).strip())
    return [x for x in items if x]


def _fallback_match(value: str, list_text: str, ctx: Any, kind: str, caseless: bool) -> bool:
    named = {}
    if ctx is not None and ctx.config is not None:
        named = getattr(ctx.config, "named_lists", {}).get(kind, {})
    for item in split_list(list_text):
        neg = item.startswith("!")
        if neg:
            item = item[1:].strip()
        if item.startswith("+"):
            hit = _fallback_match(value, named.get(item[1:], ""), ctx, kind, caseless)
        elif item.startswith("^"):
            hit = re.search(item, value, re.I if caseless else 0) is not None
        elif item == "@" and kind == "domain":
            main = getattr(ctx.config, "main", None)
            hit = value.lower() == str(getattr(main, "primary_hostname", "")).lower()
        elif item.startswith("*"):
            hit = (value.lower() if caseless else value).endswith(
                item[1:].lower() if caseless else item[1:])
        else:
            hit = value.lower() == item.lower() if caseless else value == item
        if hit:
            return not neg
    return False


def match_domain(domain: str, list_text: str, ctx: Any) -> bool:
    try:
        from pymta.match import match_domain as real  # type: ignore
    except ImportError:
        return _fallback_match(domain, list_text, ctx, "domain", True)
    return real(domain, list_text, ctx)


def match_localpart(local_part: str, list_text: str, ctx: Any, caseless: bool = False) -> bool:
    try:
        from pymta.match import match_localpart as real  # type: ignore
    except ImportError:
        return _fallback_match(local_part, list_text, ctx, "localpart", caseless)
    try:
        return real(local_part, list_text, ctx, caseless=caseless)
    except TypeError:
        return real(local_part, list_text, ctx)


def match_address(address: str, list_text: str, ctx: Any) -> bool:
    try:
        from pymta.match import match_address as real  # type: ignore
    except ImportError:
        return _fallback_match(address, list_text, ctx, "address", True)
    return real(address, list_text, ctx)


def main_option(config: Any, name: str, default: Any = None) -> Any:
    """A main option value, tolerating a partial ``MainOptions`` object."""
    main = getattr(config, "main", None)
    value = getattr(main, name, None) if main is not None else None
    return default if value is None else value


def qualify_domain(config: Any) -> str:
    return (main_option(config, "qualify_domain") or main_option(config, "primary_hostname")
            or "localhost")


def qualify_recipient(config: Any) -> str:
    return main_option(config, "qualify_recipient") or qualify_domain(config)
