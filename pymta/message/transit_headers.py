"""Headers that only a final delivery adds, removed from incoming messages.

Delivery-date:, Envelope-to: and Return-path: are written by transports
(delivery_date_add, envelope_to_add, return_path_add) at final delivery.  A message that
arrives already carrying them was delivered once and is being sent on, so the main
options delivery_date_remove, envelope_to_remove and return_path_remove (all true by
default) mark them deleted at reception.  As in Exim they stay in the -H file with the
'*' flag, so that nothing later (ACLs, routers, transports) sees them.
"""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_opt
from pymta.message.headers import header_name
from pymta.spool.model import SpoolHeader

#: lower-cased header name -> the main option that removes it
TRANSIT_HEADER_OPTIONS: dict[str, str] = {
    "delivery-date": "delivery_date_remove",
    "envelope-to": "envelope_to_remove",
    "return-path": "return_path_remove",
}


def removed_transit_names(config: Any) -> frozenset[str]:
    """The lower-cased header names that the configuration removes on reception."""
    return frozenset(name for name, option in TRANSIT_HEADER_OPTIONS.items()
                     if main_opt(config, option, True))


def mark_transit_headers(headers: list[SpoolHeader], names: frozenset[str]) -> list[SpoolHeader]:
    """``headers`` with each one named in ``names`` flagged deleted ('*')."""
    if not names:
        return headers
    return [SpoolHeader("*", h.text) if header_name(h.text).strip().lower() in names else h
            for h in headers]
