"""The ``ratelimit`` ACL condition (spec 44.39-44.44).

``ratelimit = <m> / <p> / <options> / <key>`` measures a client's smoothed rate of events
per period ``p`` and is true when that rate is at least ``m``.  The rate is an
exponentially weighted moving average: after an interval ``i`` since the last update,
with ``a = exp(-i/p)``, the new rate is ``(1 - a) * count / (i/p) + a * old_rate``, and
never less than ``count`` (an isolated event counts as "count per period", however long
the silence before it).  A new key starts at ``count``.  These numbers were checked
against Exim 4.96 (tests/data/ratelimit/).

As in Exim, the stored key is ``<p>/<per_*>/[unique/]<key>`` (per_byte is per_mail with
the message size as count; per_addr is per_rcpt with ``unique=$local_part@$domain``), a
condition seen again for the same key in the same connection, message or command uses
the rate computed the first time (:class:`RatelimitCache`), and a readonly check neither
uses nor fills that cache.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from pymta.acl.verify import WHERE_NAMES
from pymta.debuglog import debug
from pymta.hints.ratelimit import RatelimitDB, RateRecord

#: The unique= event set is thrown away (a new epoch starts) beyond this many events
#: per unit of limit, and beyond MAX_EVENTS in any case, to bound the record's size.
EVENTS_PER_LIMIT = 4
MAX_EVENTS = 65536

_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TIME = re.compile(r"(\d+)([wdhms])")
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MULTIPLIERS = {"k": 1024.0, "m": 1024.0 ** 2, "g": 1024.0 ** 3}

# Where each kind of measurement may update the database (elsewhere it is readonly,
# and strict/leaky are an error).  per_cmd is allowed everywhere.
_MAIL_WHERES = frozenset(("mail", "rcpt", "predata", "mime", "data", "dkim", "prdr",
                          "notsmtp", "notsmtp_mime"))
_RCPT_WHERES = frozenset(("rcpt", "predata", "mime", "data", "dkim", "prdr"))
_NOT_SMTP_WHERES = frozenset(("notsmtp", "notsmtp_mime", "notsmtp_start"))


class RatelimitError(Exception):
    """The arguments of a ratelimit condition are wrong (an ACL error: 451)."""

    def __init__(self, text: str):
        super().__init__(f'error in arguments to "ratelimit" condition: {text}')


@dataclass
class RatelimitSpec:
    """A parsed, expanded ratelimit condition."""

    limit: float
    limit_text: str          # $sender_rate_limit: m as written
    period: int
    period_text: str         # $sender_rate_period: p as written
    per: str                 # per_conn, per_mail, per_rcpt, per_cmd (the stored kind)
    mode: str                # strict, leaky or readonly
    count: float
    unique: str | None
    key: str                 # the full database key

    @property
    def readonly(self) -> bool:
        return self.mode == "readonly"


@dataclass(frozen=True)
class RateFacts:
    """What the condition needs to know about the session at this point."""

    where: str
    host_address: str = ""
    message_size: int = -1
    recipients_count: int = 0
    local_part: str = ""
    domain: str = ""


def parse_limit(text: str) -> float:
    """``m``: a non-negative number with an optional K, M or G multiplier."""
    m = _NUMBER.match(text)
    rest = text[m.end():] if m else text
    value = float(m.group()) if m else 0.0
    if rest[:1].lower() in _MULTIPLIERS:
        value *= _MULTIPLIERS[rest[:1].lower()]
        rest = rest[1:]
    if m is None or rest or value < 0:
        raise RatelimitError(f'"{text}" is not a positive number')
    return value


def parse_period(text: str | None) -> int:
    """``p``: an Exim time interval (units are lower case), more than zero."""
    if text is None:
        raise RatelimitError('"NULL" is not a time value')
    if re.fullmatch(r"\d+", text):
        seconds = int(text)
    elif text and _TIME.sub("", text) == "":
        seconds = sum(int(n) * _TIME_UNITS[u] for n, u in _TIME.findall(text))
    else:
        seconds = 0
    if seconds <= 0:
        raise RatelimitError(f'"{text}" is not a time value')
    return seconds


def _count(option: str) -> float:
    text = option[len("count="):]
    if not text.strip():
        return 0.0
    m = _NUMBER.fullmatch(text)
    if m is None or float(text) < 0:
        raise RatelimitError(f'"{option}" is not a positive number')
    return float(text)


def parse_ratelimit(arg: str, facts: RateFacts) -> RatelimitSpec:
    """Parse the expanded argument of a ratelimit condition."""
    parts = [p.strip() for p in arg.split("/")]
    limit_text = parts[0]
    limit = parse_limit(limit_text)
    period_text = parts[1] if len(parts) > 1 else None
    period = parse_period(period_text)
    assert period_text is not None
    per: str | None = None
    per_count: float | None = None
    update: str | None = None
    noupdate = False
    count: float | None = None
    unique: str | None = None
    key_parts: list[str] = []
    for option in parts[2:]:
        word = option.lower()
        if word in ("strict", "leaky", "readonly"):
            if update is not None:
                raise RatelimitError("conflicting update modes")
            update = word
        elif word == "noupdate":
            noupdate = True           # like readonly, without the conflict check
        elif word in ("per_conn", "per_mail", "per_byte", "per_rcpt", "per_addr",
                      "per_cmd"):
            if per is not None:
                raise RatelimitError("conflicting per_* options")
            per = word
        elif word.startswith("count="):
            count = _count(option)
        elif word.startswith("unique="):
            unique = option[len("unique="):]
        else:
            key_parts.append(option)
    per = per or "per_mail"
    if per == "per_byte":
        per_count = float(max(facts.message_size, 0))
        per = "per_mail"
    elif per in ("per_rcpt", "per_addr"):
        if per == "per_addr" and unique is None:
            unique = f"{facts.local_part}@{facts.domain}"
        per_count = 1.0 if facts.where == "rcpt" else float(facts.recipients_count)
        per = "per_rcpt"
    if not _may_update(per, facts.where):
        if update in ("strict", "leaky"):
            raise RatelimitError(f'"{per}" must not have /leaky or /strict option, or '
                                 f"cannot be used in {WHERE_NAMES.get(facts.where, facts.where)}"
                                 " ACL")
        update = "readonly"
    if noupdate:
        update = "readonly"
    mode = update or "leaky"
    if mode == "readonly":
        final_count = 0.0
    elif count is not None:
        final_count = count
    else:
        final_count = per_count if per_count is not None else 1.0
    key = "/".join(key_parts) if key_parts else facts.host_address
    db_key = f"{period_text}/{per}/{'unique/' if unique is not None else ''}{key}"
    return RatelimitSpec(limit, limit_text, period, period_text, per, mode, final_count,
                         unique, db_key)


def _may_update(per: str, where: str) -> bool:
    if per == "per_conn":
        return where not in _NOT_SMTP_WHERES
    if per == "per_mail":
        return where in _MAIL_WHERES
    if per == "per_rcpt":
        return where in _RCPT_WHERES
    return True


def event_hash(value: str) -> bytes:
    """The 8-byte fingerprint of a unique= value kept in the event set."""
    return hashlib.blake2b(value.encode("utf-8", "surrogateescape"), digest_size=8).digest()


def smoothed_rate(record: RateRecord | None, now: float, period: float,
                  count: float) -> float:
    """The rate after an event of size ``count`` at ``now`` (see the module docstring)."""
    if record is None:
        return count
    interval = now - record.time
    if interval <= 0:
        interval = 1e-9              # same instant, or the clock went back
    i_over_p = interval / period
    a = math.exp(-i_over_p)
    # 1 - a, computed without cancellation: for events microseconds apart (concurrent
    # clients) 1 - exp(-x) in floating point loses most of its digits
    rate = -math.expm1(-i_over_p) * count / i_over_p + a * record.rate
    return max(rate, count)


def measure(spec: RatelimitSpec, record: RateRecord | None,
            now: float, trace: bool = False) -> tuple[float, RateRecord | None]:
    """The client's rate now, and the record to store (None: leave the database).
    ``trace``: say what happens, in the words of Exim's debug output (which calls
    pymta's exact set of recent events its Bloom filter)."""
    count = spec.count
    events: set[bytes] = set()
    epoch = 0.0
    unique = spec.unique is not None and not spec.readonly
    if trace:
        debug.printf("ratelimit found key in database" if record is not None else
                     "ratelimit creating new Bloom filter" if unique else
                     "ratelimit creating new rate data block")
    if unique:
        assert spec.unique is not None
        if record is not None and record.epoch and now - record.epoch <= spec.period \
                and len(record.events) < _events_cap(spec.limit):
            events, epoch = set(record.events), record.epoch
        else:
            epoch = now               # a new (or too old, or over-full) event set
        fingerprint = event_hash(spec.unique)
        seen = fingerprint in events
        if seen:
            count = 0.0               # seen this period: not a new event
        events.add(fingerprint)
        if trace:
            debug.printf(f"ratelimit checking uniqueness of {spec.unique}")
            debug.printf(f"ratelimit event {'found in' if seen else 'added to'} Bloom filter")
    if trace and record is None:
        debug.printf("ratelimit initializing new key's rate data")
    rate = smoothed_rate(record, now, spec.period, count)
    over = rate >= spec.limit
    if spec.mode == "strict" or (spec.mode == "leaky" and not over):
        if trace:
            debug.printf("ratelimit db updated")
        return rate, RateRecord(now, rate, epoch, events)
    if trace:
        debug.printf("ratelimit db not updated: " + ("readonly mode" if spec.readonly
                                                    else "over the limit, but leaky"))
    return rate, None


#: A shared (Redis) record expires this many periods after its last update: by then the
#: stored rate has decayed by e**-30, so a new record gives the same result.
RECORD_LIFETIME_PERIODS = 30


def _events_cap(limit: float) -> int:
    return int(min(MAX_EVENTS, max(16.0, EVENTS_PER_LIMIT * limit)))


class RatelimitCache:
    """Rates already computed in this connection, message and command, by key.

    The session calls :meth:`new_message` when a message starts (MAIL, RSET, HELO) and
    :meth:`new_command` before each command's ACL.
    """

    def __init__(self) -> None:
        self.conn: dict[str, float] = {}
        self.mail: dict[str, float] = {}
        self.cmd: dict[str, float] = {}

    def new_message(self) -> None:
        self.mail.clear()

    def new_command(self) -> None:
        self.cmd.clear()

    def anchor(self, spec: RatelimitSpec, where: str) -> dict[str, float]:
        """The cache a result belongs in: per_conn lasts the connection, per_mail (and
        per_rcpt counted once per message) the message, the others one command."""
        if spec.per == "per_conn":
            return self.conn
        if spec.per == "per_mail" or (spec.per == "per_rcpt" and where != "rcpt"
                                      and spec.unique is None):
            return self.mail
        return self.cmd


def check_ratelimit(spec: RatelimitSpec, db: RatelimitDB, cache: RatelimitCache,
                    where: str, now: float) -> float:
    """The client's rate for ``spec`` (from the cache or the database, updated as the
    mode says); the condition is true when it is at least ``spec.limit``."""
    trace = debug.acl
    if trace:
        debug.printf(f"ratelimit condition count={spec.count:.0f} {spec.limit:.1f}/{spec.key}")
    anchor = None if spec.readonly else cache.anchor(spec, where)
    if anchor is not None and spec.key in anchor:
        if trace:
            debug.printf(f"ratelimit found pre-computed rate {anchor[spec.key]:.1f}")
        return anchor[spec.key]
    if spec.readonly:
        rate, _ = measure(spec, db.get(spec.key), now, trace)
    else:
        rate = db.update(spec.key, lambda rec: measure(spec, rec, now, trace),
                         measure(spec, None, now)[0], RECORD_LIFETIME_PERIODS * spec.period)
    if anchor is not None:
        anchor[spec.key] = rate
    if trace:
        debug.printf(f"ratelimit computed rate {rate:.1f}")
    return rate
