"""The value of smtp_ratelimit_mail and smtp_ratelimit_rcpt: "threshold,delay,factor,limit"
(Exim 4.96; the delays may have decimal fractions, "0.5s").  A malformed value is a
configuration error when the file is read."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pymta.config.model import ConfigError

_TIME_RE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(text: str, option: str) -> float:
    m = _TIME_RE.match(text)
    if m is None:
        raise ConfigError(f'bad time value "{text.strip()}" in {option}')
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class RateLimit:
    """One smtp_ratelimit_mail/_rcpt setting: no delay up to ``threshold`` commands;
    then ``delay`` seconds, growing by ``factor`` each time, at most ``limit``."""

    threshold: int
    delay: float
    factor: float
    limit: float

    @classmethod
    def parse(cls, text: str, option: str) -> "RateLimit":
        """Read "threshold,delay,factor,limit" (``2,0.5s,1.05,4m``)."""
        parts = [p.strip() for p in text.split(",")]
        try:
            if len(parts) != 4:
                raise ValueError
            threshold, factor = int(parts[0]), float(parts[2])
        except ValueError:
            raise ConfigError(f'{option} must be four comma-separated values '
                              f'(threshold,delay,factor,limit): "{text}"') from None
        return cls(threshold, _seconds(parts[1], option), factor, _seconds(parts[3], option))

    def pause(self, count: int) -> float:
        """The delay before answering the ``count``-th command (0 within the threshold)."""
        over = count - self.threshold
        if over <= 0:
            return 0.0
        return min(self.delay * self.factor ** (over - 1), self.limit)


def check_ratelimit_option(name: str, value: Any, file: str | None,
                           line: int | None) -> None:
    """A malformed smtp_ratelimit_mail/_rcpt is a configuration error."""
    if name in ("smtp_ratelimit_mail", "smtp_ratelimit_rcpt") and value:
        try:
            RateLimit.parse(str(value), name)
        except ConfigError as exc:
            raise ConfigError(exc.message, file, line) from None
