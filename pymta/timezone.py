"""The ``timezone`` main option: the TZ the whole process (and its children) runs in.

Exim sets TZ in its environment at start, so every local time it writes (log lines,
Received: and Date: headers, $tod_* variables) is in that zone.  Unset leaves the TZ
pymta was started with; an empty value removes TZ (the system's zone).
"""
from __future__ import annotations

import os
import time
from typing import Any

from pymta.config.values import main_option


def apply_timezone(config: Any) -> None:
    """Set (or remove) TZ from ``timezone`` and make the C library's time calls use it."""
    value = main_option(config, "timezone")
    if value is None:
        return
    value = str(value)
    if value:
        if os.environ.get("TZ") == value:
            return
        os.environ["TZ"] = value
    elif "TZ" in os.environ:
        del os.environ["TZ"]
    else:
        return
    time.tzset()
