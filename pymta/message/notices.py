"""Who automatically made messages (bounces, warnings, DMARC reports) come from."""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_option
from pymta.expand import ExpandContext, ExpandError, ExpandFail, expand_string
from pymta.routing import support


def mailer_daemon(config: Any) -> str:
    return f"Mailer-Daemon@{support.qualify_domain(config)}"


def dsn_from(config: Any, ctx: Any = None, log: Any = None) -> str:
    """The From: of bounces, warnings and other notices: dsn_from expanded; when the
    expansion fails the failure goes to the main and panic logs and Exim's default is
    used."""
    text = main_option(config, "dsn_from", None)
    if text:
        try:
            return expand_string(str(text), ctx if ctx is not None else ExpandContext(config))
        except (ExpandError, ExpandFail) as exc:
            if log is not None:
                note = f"Failed to expand dsn_from (using default): {exc}"
                log.main(note)
                log.panic(note)
    return f"Mail Delivery System <{mailer_daemon(config)}>"
