"""String expansion (Exim 4.96 chapter "String expansions").

Public API: :func:`expand_string`, :func:`eval_condition`, :func:`compile_expansion`,
:func:`evaluate`, and the exceptions :class:`ExpandError`, :class:`ExpandFail`,
:class:`ExpandDefer`.
"""
from __future__ import annotations

from pymta.debuglog import debug
from pymta.truth import exim_true

from .context import ExpandContext
from .errors import ExpandDefer, ExpandError, ExpandFail
from .evaluator import evaluate
from .parser import compile_condition, compile_expansion

__all__ = ["expand_string", "eval_condition", "compile_expansion", "compile_condition",
           "evaluate",
           "ExpandContext", "ExpandError", "ExpandFail", "ExpandDefer",
           "expand_bool_condition"]


def expand_string(text: str, ctx: ExpandContext) -> str:
    """Expand ``text`` in ``ctx``.  Plain text without ``$`` or ``\\`` is returned as is."""
    if "$" not in text and "\\" not in text:
        return text
    if debug.expand:
        return _traced(text, ctx)
    if not debug.any:
        return _evaluate(text, ctx)
    # what is traced while expanding (a list matched by a condition) is one level in,
    # as in Exim's output
    debug.indent += 1
    try:
        return _evaluate(text, ctx)
    finally:
        debug.indent -= 1


def _evaluate(text: str, ctx: ExpandContext) -> str:
    try:
        return evaluate(compile_expansion(text), ctx)
    except RecursionError:
        raise ExpandError("expansion nested too deeply") from None


def _traced(text: str, ctx: ExpandContext) -> str:
    """expand_string with +expand tracing: the string in, the result or failure out."""
    debug.printf(f"considering: {text}")
    try:
        result = evaluate(compile_expansion(text), ctx)
    except ExpandFail as exc:
        debug.printf(f"failed to expand: {text}\n   error message: {exc}\n"
                     "   failure was forced")
        raise
    except (ExpandError, ExpandDefer) as exc:
        debug.printf(f"failed to expand: {text}\n   error message: {exc}")
        raise
    except RecursionError:
        raise ExpandError("expansion nested too deeply") from None
    debug.printf(f"  expanding: {text}\n     result: {result}")
    return result


def expand_bool_condition(value: str) -> bool:
    """Interpret an expanded ``condition =`` value: "", "0", "no", "false" are false."""
    return exim_true(value)


def eval_condition(text: str, ctx: ExpandContext) -> bool:
    """Expand ``text`` and interpret the result as an Exim boolean (for ``condition =``).

    An integer is true when non-zero; "yes"/"true" are true, "no"/"false"/"" false; any
    other string is true (as in router/ACL ``condition``).
    """
    return expand_bool_condition(expand_string(text, ctx))
