"""``pymta -brt`` (which retry rule applies) and ``pymta -brw`` (address rewriting
test), with exim -brt/-brw's output."""
from __future__ import annotations

import re

from pymta.config.options import format_time, parse_time
from pymta.delivery.retry import find_retry_rule

#: Error names a -brt argument may be (as in the retry section); quota_<time> and
#: (rcpt|mail|data)_4xx variants are matched by pattern.
_ERROR_NAMES = re.compile(
    r"^(?:\*|auth_failed|lookup|lost_connection|tls_required|quota(?:_\w+)?"
    r"|refused(?:_mx|_a)?|timeout(?:_connect)?(?:_mx|_a)?"
    r"|(?:rcpt|mail|data)_4[0-9x][0-9x])$", re.I)

# exim -brt shows these rule errors by name and any other as "*"
_SHOWN_ERRORS = re.compile(r"^(?:refused|timeout|auth_failed|quota)", re.I)


def _rule_text(kind: str, cutoff: int, params: tuple) -> str:
    parts = [kind, format_time(cutoff), format_time(int(params[0]))]
    if kind == "G":
        parts.append(str(float(params[1])))       # 1.5, 2.0, 1.25 as exim prints them
    return ",".join(parts)


def rule_line(rule: object) -> str:
    """``Retry rule: <pattern>  <error>  F,2h,15m; G,16h,1h,1.5; `` for a rule."""
    error = getattr(rule, "error", "*")
    shown = error if _SHOWN_ERRORS.match(error) else "*"
    chain = "".join(f"{_rule_text(k, c, p)}; " for k, c, p in getattr(rule, "rules", []))
    return f"Retry rule: {getattr(rule, 'pattern', '')}  {shown}  {chain}"


def _runtime_error(name: str) -> str:
    """An error name as the delivery code reports it (quota_<time> in seconds)."""
    m = re.fullmatch(r"quota_(\w+)", name, re.I)
    if m:
        try:
            return f"quota_{parse_time(m.group(1))}"
        except ValueError:
            return name
    return name


def retry_test(config: object, args: list[str], sender: str | None) -> tuple[str, int]:
    """The output and exit status of ``-brt <address|domain> [<domain>] [<error>]``."""
    if not args:
        return "-brt needs a domain or address argument\n", 1
    subject, alt, error = args[0], None, None
    warning = ""
    if "@" not in subject and "." not in subject:
        warning = (f'Warning: "{subject}" contains no \'@\' and no \'.\' characters. '
                   "It is being \ntreated as a one-component domain, not as a local "
                   "part.\n\n")
    for extra in args[1:3]:
        if "." in extra and alt is None:
            alt = extra
        elif _ERROR_NAMES.match(extra):
            error = _runtime_error(extra)
        else:
            return f'unknown or malformed retry error "{extra}"\n', 1
    rule = find_retry_rule(config, subject, error, sender=sender, alt_domain=alt)
    if rule is None:
        return warning + "No retry information found\n", 0
    return warning + rule_line(rule) + "\n", 0
