"""A transport's headers_rewrite rules (rewriting at delivery, headers only)."""
from __future__ import annotations

from typing import Any

from pymta.config.reader import parse_rewrite_rule
from pymta.expand.lists import nonempty_items
from pymta.rewrite.engine import Rewriter
from pymta.rewrite.rules import Rule, compile_rules
from pymta.rewrite.setup import qualify_recipient


def transport_rules(instance: Any) -> tuple[Rule, ...]:
    """A transport's headers_rewrite: a colon-separated list whose items are written
    like lines of the rewrite section (headers only: E, F, T and S are errors)."""
    text = str((getattr(instance, "options", {}) or {}).get("headers_rewrite") or "")
    if not text:
        return ()
    file, line = getattr(instance, "file", ""), getattr(instance, "line", 0)
    for setting in getattr(instance, "settings", []) or []:
        if getattr(setting, "name", None) == "headers_rewrite":
            file, line = setting.file, setting.line
    parsed = [parse_rewrite_rule(item, file, line) for item in nonempty_items(text)]
    return compile_rules(parsed, transport=True)


def transport_rewriter(config: Any, instance: Any) -> Rewriter | None:
    """A Rewriter over a transport's headers_rewrite, or None when it has none."""
    rules = transport_rules(instance)
    if not rules:
        return None
    return Rewriter(rules, config, None, False, qualify_recipient(config))
