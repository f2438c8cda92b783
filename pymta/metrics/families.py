"""The metric families pymta counts (imported only when metrics are on)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

#: seconds from a message's reception to a delivery: from "at once" to a week's retries
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                   3600.0, 4 * 3600.0, 86400.0, 4 * 86400.0, float("inf"))


class Families:
    """One object per metric family.  ``registry=None``: the values are gathered from
    the processes' files (see multiproc.py), not from one process's memory."""

    def __init__(self) -> None:
        self.messages_received = Counter(
            "pymta_messages_received", "Messages accepted onto the spool, by protocol",
            ["protocol"], registry=None)
        self.deliveries = Counter(
            "pymta_deliveries", "Delivery outcomes of addresses by transport and result "
            "(delivered, deferred, failed); transport empty: decided while routing",
            ["transport", "result"], registry=None)
        self.delivery_latency = Histogram(
            "pymta_delivery_latency_seconds",
            "Time from a message's reception to the delivery of an address, by transport",
            ["transport"], buckets=LATENCY_BUCKETS, registry=None)
        self.smtp_connections = Counter(
            "pymta_smtp_connections", "Inbound SMTP connections: accepted (the session "
            "started) or refused (connection limits, host_reject_connection)",
            ["result"], registry=None)
        self.acl_rejections = Counter(
            "pymta_acl_rejections", "SMTP commands and messages an ACL refused, by ACL "
            "option and reply class (4xx, 5xx)", ["acl", "reply"], registry=None)
        self.tls_sessions = Counter(
            "pymta_tls_sessions", "TLS sessions established, by direction (inbound, "
            "outbound) and protocol version", ["direction", "version"], registry=None)
