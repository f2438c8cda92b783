"""Mail filters: Exim filter files and Sieve scripts (the filter manual).

A filter is run for one address (a user's ``.forward`` through the redirect router) or
once per message (the system filter).  Running it delivers nothing: it returns a
:class:`~pymta.filter.result.FilterResult` listing the deliveries to set up, which the
caller turns into generated addresses.  Only ``logwrite`` acts at once, as in Exim.
"""
from __future__ import annotations

from .result import FilterAction, FilterError, FilterResult, ReplySpec, bare_address, filter_kind

__all__ = ["FilterAction", "FilterError", "FilterResult", "ReplySpec", "bare_address",
           "filter_kind"]
