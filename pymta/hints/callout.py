"""The ``callout`` hints database: cached results of verification callouts (spec 44.48).

Two kinds of record, as in Exim:

* a domain record (key ``domain``): whether callouts to the domain can be made at all
  (``result``: accept, or reject when the connection, HELO or ``MAIL FROM:<>`` was
  refused), and the results of the ``postmaster`` and ``random`` checks, each with the
  time it was learnt;
* an address record (key ``address``, or ``address/<sender>`` when the callout used a
  non-empty sender): accept or reject.

Values are compact JSON.  Expiry is decided when a record is read, from the main options
``callout_positive_expire``, ``callout_negative_expire``,
``callout_domain_positive_expire`` and ``callout_domain_negative_expire``; an expired or
damaged record counts as absent.  In a shared (Redis) database a record also expires on
its own once the longest of those times has passed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from pymta.hints.store import HintsStore

ACCEPT, REJECT, UNKNOWN = "accept", "reject", "unknown"
#: A domain record result: ``MAIL FROM:<>`` was refused (fails only empty-sender callouts).
REJECT_MFNULL = "reject_mfnull"


@dataclass
class DomainRecord:
    """What is known about callouts to one domain (times are Unix seconds)."""

    time_stamp: float
    result: str = UNKNOWN             # reject: connection/HELO/MAIL FROM:<> refused
    postmaster_result: str = UNKNOWN
    postmaster_stamp: float = 0.0
    random_result: str = UNKNOWN
    random_stamp: float = 0.0


@dataclass(frozen=True)
class CacheExpiry:
    """The four expiry times, in seconds (Exim's defaults)."""

    positive: float = 86400.0
    negative: float = 7200.0
    domain_positive: float = 7 * 86400.0
    domain_negative: float = 3 * 3600.0


def decode_record(data: bytes) -> dict[str, object] | None:
    """A record's fields (domain records have ``postmaster_result``); None if damaged."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class CalloutCache:
    """Read and write callout records; ``None`` for the database disables the cache."""

    def __init__(self, db: HintsStore | None, expiry: CacheExpiry):
        self.db = db
        self.expiry = expiry

    def _get(self, key: str) -> dict[str, object] | None:
        if self.db is None:
            return None
        data = self.db.get(key)
        return None if data is None else decode_record(data)

    def _put(self, key: str, value: dict[str, object], ttl: float) -> None:
        if self.db is not None:
            self.db.put(key, json.dumps(value, separators=(",", ":")).encode(), ttl)

    # -- domain records ---------------------------------------------------------------
    def domain(self, domain: str, now: float) -> DomainRecord | None:
        """The live domain record, with expired sub-results reset to unknown."""
        raw = self._get(f"D:{domain.lower()}")
        if raw is None:
            return None
        try:
            rec = DomainRecord(float(raw["time_stamp"]), str(raw["result"]),  # type: ignore[arg-type]
                               str(raw["postmaster_result"]),
                               float(raw["postmaster_stamp"]),  # type: ignore[arg-type]
                               str(raw["random_result"]),
                               float(raw["random_stamp"]))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return None
        negative = rec.result in (REJECT, REJECT_MFNULL) or rec.postmaster_result == REJECT
        life = self.expiry.domain_negative if negative else self.expiry.domain_positive
        if now - rec.time_stamp > life:
            return None
        for field in ("postmaster", "random"):
            result = getattr(rec, f"{field}_result")
            life = self.expiry.domain_positive if result == ACCEPT \
                else self.expiry.domain_negative
            if result != UNKNOWN and now - getattr(rec, f"{field}_stamp") > life:
                setattr(rec, f"{field}_result", UNKNOWN)
        return rec

    def put_domain(self, domain: str, rec: DomainRecord) -> None:
        # the postmaster and random results live as long as the positive domain time
        ttl = max(self.expiry.domain_positive, self.expiry.domain_negative)
        self._put(f"D:{domain.lower()}", asdict(rec), ttl)

    # -- address records --------------------------------------------------------------
    @staticmethod
    def address_key(address: str, sender: str) -> str:
        """Exim's key: the address, with ``/<sender>`` when the callout used one."""
        return f"A:{address}" + (f"/<{sender}>" if sender else "")

    def address(self, key: str, now: float) -> str | None:
        """ACCEPT or REJECT from a live address record, else None."""
        raw = self._get(key)
        if raw is None:
            return None
        result, stamp = raw.get("result"), raw.get("time_stamp")
        if result not in (ACCEPT, REJECT) or not isinstance(stamp, (int, float)):
            return None
        life = self.expiry.positive if result == ACCEPT else self.expiry.negative
        return str(result) if now - stamp <= life else None

    def put_address(self, key: str, result: str, now: float) -> None:
        ttl = self.expiry.positive if result == ACCEPT else self.expiry.negative
        self._put(key, {"result": result, "time_stamp": now}, ttl)
