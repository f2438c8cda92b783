"""The "percent hack" (main option percent_hack_domains): a local part holding ``%`` in
one of those domains is read as a new address, the last ``%`` becoming ``@``
(``u%other.example@gw.example`` is ``u@other.example``).  Exim applies it to recipients
only: the RCPT ACL sees the new address in $local_part/$domain while the message keeps
the original, and routing routes the new address as the original's child (-bt shows
the original after ``<--``)."""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_option
from pymta.match import match_domain


def percent_hack(local_part: str, domain: str, config: Any, ctx: Any) -> str | None:
    """The address ``local_part@domain`` stands for under percent_hack_domains, or None
    when the option does not apply to it."""
    domains = main_option(config, "percent_hack_domains")
    if not domains or "%" not in local_part:
        return None
    if not match_domain(domain.lower(), str(domains), ctx.child() if ctx else ctx):
        return None
    cut = local_part.rindex("%")
    return f"{local_part[:cut]}@{local_part[cut + 1:]}"
