"""One hints record as exim_dumpdb prints it, for every kind of database."""
from __future__ import annotations

import json

from pymta.admin.common import print_time
from pymta.hints import callout, inventory, wait
from pymta.hints.ratelimit import HASH_SIZE, RateRecord
from pymta.hints.retry import RetryRecord
from pymta.hints.seen import SeenDB


class Corrupted(Exception):
    """A record that cannot be decoded (exim_dumpdb says "Data for KEY corrupted")."""


def retry_lines(key: str, rec: RetryRecord, utc: bool) -> str:
    """Two lines: key and errors, then first failure, last try, next try and ``*``
    when the final cutoff has passed."""
    return (f"  {key} {rec.basic_errno} {rec.more_errno} {rec.text}\n"
            f"{print_time(rec.first_failed, utc)}  {print_time(rec.last_try, utc)}  "
            f"{print_time(rec.next_try, utc)} {'*' if rec.expired else ''}\n")


def _cache_word(result: object) -> str:
    # Exim prints accept, reject or unknown; "reject_mfnull" is a kind of reject
    if result == callout.ACCEPT:
        return "accept"
    if result in (callout.REJECT, callout.REJECT_MFNULL):
        return "reject"
    return "unknown"


def _callout_line(key: str, rec: dict[str, object], utc: bool) -> str:
    stamp = rec.get("time_stamp")
    if not isinstance(stamp, (int, float)):
        raise Corrupted(key)
    head = f"{print_time(stamp, utc)} {key} callout={_cache_word(rec.get('result'))}"
    if "postmaster_result" not in rec:
        return head + "\n"
    out = [head]
    for name in ("postmaster", "random"):
        word = _cache_word(rec.get(f"{name}_result"))
        out.append(f" {name}={word}")
        sub = rec.get(f"{name}_stamp")
        if word != "unknown" and isinstance(sub, (int, float)):
            out.append(f" ({print_time(sub, utc)})")
    return "".join(out) + "\n"


def _ratelimit_line(key: str, rec: RateRecord, utc: bool) -> str:
    sec = int(rec.time)
    usec = int(round((rec.time - sec) * 1_000_000)) % 1_000_000
    head = f"{print_time(sec, utc)}.{usec:06d} rate: {rec.rate:10.3f} "
    if "/unique/" in key:
        return (head + f"epoch: {print_time(rec.epoch, utc)} "
                f"size: {len(rec.events) * HASH_SIZE} key: {key}\n")
    return head + f"key: {key}\n"


def _mtasts_line(key: str, value: bytes, utc: bool) -> str:
    # pymta's own database (Exim has none): time fetched, domain, the policy
    try:
        d = json.loads(value)
        return (f"{print_time(float(d['fetched']), utc)} {key} mode={d['mode']} "
                f"max_age={d['max_age']} id={d['id']} mx={':'.join(d['mx'])}\n")
    except (ValueError, KeyError, TypeError):
        raise Corrupted(key) from None


def record_text(name: str, key: str, value: bytes, utc: bool = False) -> bytes:
    """The exim_dumpdb output for one record of database ``name`` (bytes: a TLS
    session is printed raw, as Exim prints it).  Raises :class:`Corrupted`."""
    kind = inventory.db_type(name)
    if kind == "retry":
        rec = RetryRecord.decode(value)
        if rec is None:
            raise Corrupted(key)
        text = retry_lines(key, rec, utc)
    elif kind == "wait":
        text = key + " " + "".join(f"{i} " for i in wait.decode_ids(value)) + "\n"
    elif kind == "misc":
        stamp = inventory.record_time(name, key, value)
        text = f"{print_time(stamp or 0, utc)} {key}\n"
    elif kind == "callout":
        raw = callout.decode_record(value)
        if raw is None:
            raise Corrupted(key)
        text = _callout_line(key, raw, utc)
    elif kind == "ratelimit":
        rate = RateRecord.decode(value)
        if rate is None:
            raise Corrupted(key)
        text = _ratelimit_line(key, rate, utc)
    elif kind == "seen":
        stamp = SeenDB.decode(value)
        if stamp is None:
            raise Corrupted(key)
        text = f"{key}\t{print_time(stamp, utc)}\n"
    elif kind == "tls":
        return f"  {key} ".encode() + value + b"\n"
    elif kind == "mtasts":
        text = _mtasts_line(key, value, utc)
    else:
        raise ValueError(f"{name} is not a hints database")
    return text.encode("utf-8", "surrogateescape")
