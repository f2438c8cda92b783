"""Whether a message just received is only queued: queue_only_file, queue_only_load and
queue_only_load_latch, and how -od options override queue_only (queue_only_override).

Exim decides this at reception: queue_only (or -odq), an existing queue_only_file, or a
load average above queue_only_load leave the message for a queue run.  The load check
latches for the rest of an SMTP connection unless queue_only_load_latch is false.
"""
from __future__ import annotations

import os
from typing import Any

from pymta.config.values import main_option
from pymta.osutil import load_average


def _fixed(value: int) -> str:
    """Thousandths as Exim prints a load average ("%.2f")."""
    return f"{value / 1000:.2f}"


def queue_only_files(text: str | None, smtp: bool = False) -> list[str]:
    """The paths of queue_only_file (a colon-separated list of absolute paths) that
    set queue_only, or with ``smtp`` those written "smtp/path" (queue_smtp_domains)."""
    items = [p.strip() for p in str(text or "").split(":") if p.strip()]
    return [p[4:] for p in items if p.startswith("smtp")] if smtp \
        else [p for p in items if not p.startswith("smtp")]


def queue_only_file_exists(config: Any, smtp: bool = False) -> bool:
    """Does one of the queue_only_file paths exist (looked at for each message)?  With
    ``smtp``: one of those prefixed "smtp", which make queue_smtp_domains "*"."""
    return any(os.path.exists(p)
               for p in queue_only_files(main_option(config, "queue_only_file"), smtp))


def apply_delivery_mode(config: Any, mode: str | None) -> None:
    """-odb/-odi/-odf/-odq on the command line: they replace queue_only unless
    queue_only_override is false, when only -odq still takes effect (Exim's rule:
    queueing can always be asked for, never be refused by the command line)."""
    if mode is None:
        return
    wants_queue = mode == "q"
    if wants_queue or main_option(config, "queue_only_override", True):
        config.main.set("queue_only", wants_queue)


class LoadQueueing:
    """queue_only_load for one caller (an SMTP connection or one non-SMTP message):
    ``reason()`` is Exim's "load average N.NN" when the message is only queued."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.latched: int | None = None

    def reason(self) -> str | None:
        limit = main_option(self.config, "queue_only_load")
        if limit is None:
            return None
        if self.latched is not None:
            return f"load average {_fixed(self.latched)}"
        load = load_average()
        if load is None or load <= int(limit):
            return None
        # Once one message of a connection is queued for the load, the later ones are
        # too (unless queue_only_load_latch is false): delivering them but not the
        # first would be odd.
        if main_option(self.config, "queue_only_load_latch", True):
            self.latched = load
        return f"load average {_fixed(load)}"
