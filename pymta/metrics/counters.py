"""The metric families pymta counts, and one small call per event.

Every call is a no-op (one test of a global) unless :func:`pymta.metrics.multiproc.enable`
ran in the daemon's master before it forked: then the value lives in this process's
memory-mapped file, and an increment is a write to memory, no system call.
Processes outside a daemon with ``metrics_listen`` (``pymta -q``, ``sendmail``) count
nothing, and do not even import prometheus_client (it costs ~45 ms per command).

Counting never disturbs mail: a failure in it (a file that cannot be opened) turns
counting off in that process, once, instead of reaching the caller.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from pymta.metrics.families import Families

#: set by activate() (multiproc.enable() in the master; children inherit it)
_f: Families | None = None

DELIVERY_RESULTS = ("delivered", "deferred", "failed")


def activate() -> None:
    """Create the metric families (after prometheus_client's value class was chosen)."""
    global _f
    from pymta.metrics.families import Families  # here: only a daemon with metrics pays
    _f = Families()


def _broken() -> None:
    global _f
    _f = None


def enabled() -> bool:
    """Whether this process counts (for a caller whose label costs work)."""
    return _f is not None


def start_process(transports: Iterable[str]) -> None:
    """In a freshly forked child: open its files now, with the ids it has now, and give
    the series every child can touch a zero (a series that appears only with its first
    event makes rate() miss that event)."""
    if _f is None:
        return
    try:
        for result in ("accepted", "refused"):
            _f.smtp_connections.labels(result)
        for t in transports:
            for result in DELIVERY_RESULTS:
                _f.deliveries.labels(t, result)
            _f.delivery_latency.labels(t)
    except Exception:
        _broken()


def received(protocol: str) -> None:
    """A message was accepted (its "<=" line)."""
    if _f is not None:
        try:
            _f.messages_received.labels(protocol or "unknown").inc()
        except Exception:
            _broken()


def delivered(transport: str, latency: float) -> None:
    """An address was delivered (its "=>" line) ``latency`` seconds after reception."""
    if _f is not None:
        try:
            _f.deliveries.labels(transport, "delivered").inc()
            _f.delivery_latency.labels(transport).observe(max(0.0, latency))
        except Exception:
            _broken()


def deferred(transport: str) -> None:
    """An address was deferred (its "==" line)."""
    if _f is not None:
        try:
            _f.deliveries.labels(transport, "deferred").inc()
        except Exception:
            _broken()


def failed(transport: str) -> None:
    """An address failed for good (its "**" line): it is bounced."""
    if _f is not None:
        try:
            _f.deliveries.labels(transport, "failed").inc()
        except Exception:
            _broken()


def connection(result: str) -> None:
    """An inbound connection was ``accepted`` or ``refused``."""
    if _f is not None:
        try:
            _f.smtp_connections.labels(result).inc()
        except Exception:
            _broken()


def acl_rejection(option: str, code: int) -> None:
    """The ACL of ``option`` (acl_smtp_rcpt, ...) refused with reply ``code``."""
    if _f is not None and code >= 400:
        try:
            _f.acl_rejections.labels(option, f"{code // 100}xx").inc()
        except Exception:
            _broken()


def tls_session(direction: str, version: str) -> None:
    """A TLS handshake completed (``inbound`` or ``outbound``), e.g. version TLS1.3."""
    if _f is not None:
        try:
            _f.tls_sessions.labels(direction, version or "unknown").inc()
        except Exception:
            _broken()
