"""DANE and MTA-STS options of the smtp transport, turned into per-host requirements.

The smtp transport makes one :class:`OutboundSecurity` per delivery and asks it,
for each host before connecting, for the :class:`pymta.tls.outbound.HostRequirements`
(see that module for what the transport must then do).  Options read:

- ``hosts_try_dane`` / ``hosts_require_dane`` (Exim's, host lists) and the main
  option ``dns_dnssec_ok`` (DNS answers count as DNSSEC-secure only when it is 1);
- ``mta_sts`` (pymta's: look MTA-STS policies up for recipient domains; default
  false), ``mta_sts_ca_file`` (CAs trusted for the policy's HTTPS server; unset: the
  system's) and ``mta_sts_timeout`` (the whole policy fetch; default 30s).

MTA-STS applies to hosts the router found as MX records of the recipient domain
(``Host.mx >= 0``), as RFC 8461 describes; hosts from ``hosts``/``route_list`` are
a local decision and keep the transport's own TLS options.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymta.address import Host
from pymta.tls.dane import host_is_secure, mx_is_secure
from pymta.tls.mtasts import Policy, PolicyCache, current_policy, fetch_policy
from pymta.tls.outbound import HostRequirements, host_requirements


class OutboundSecurity:
    """DANE and MTA-STS decisions for one delivery of one smtp transport.

    ``opt`` reads a transport option, ``host_in`` matches a host against a host-list
    option, ``log`` (a Logger, optional) receives main-log lines.
    """

    def __init__(self, opt: Callable[[str], Any], host_in: Callable[[str, Host], bool],
                 *, spool_dir: str, dnssec_ok: int, log: Any = None,
                 resolver: Any = None) -> None:
        self.opt = opt
        self.host_in = host_in
        self.spool_dir = spool_dir
        self.dnssec_ok = dnssec_ok == 1
        self.log = log
        self.resolver = resolver
        self._policies: dict[str, Policy | None] = {}

    def sts_policy(self, domain: str) -> Policy | None:
        """The MTA-STS policy of ``domain`` (None when mta_sts is off or there is none);
        looked up once per delivery, through the ``mtasts`` hints database."""
        if not self.opt("mta_sts") or not domain:
            return None
        key = domain.lower()
        if key not in self._policies:
            ca_file = self.opt("mta_sts_ca_file") or None
            timeout = float(self.opt("mta_sts_timeout") or 30)
            found = current_policy(
                key, PolicyCache(self.spool_dir, log=self.log),
                fetch=lambda d: fetch_policy(d, ca_file=ca_file, timeout=timeout))
            if found.error:
                self._note(f"MTA-STS policy fetch for {key} failed: {found.error}")
            self._policies[key] = found.policy
        return self._policies[key]

    def requirements(self, host: Host, domain: str, port: int) -> HostRequirements:
        """What the connection to ``host`` (for recipient ``domain``) must do."""
        try_dane = self.host_in("hosts_try_dane", host)
        require_dane = self.host_in("hosts_require_dane", host)
        secure = False
        if (try_dane or require_dane) and self.dnssec_ok and host.name != host.address:
            secure = ((host.mx < 0 or mx_is_secure(domain, True, self.resolver))
                      and host_is_secure(host.name, True, self.resolver))
        req = host_requirements(
            host.name, port, domain=domain, try_dane=try_dane, require_dane=require_dane,
            host_secure=secure, dnssec_ok=self.dnssec_ok,
            sts_policy=self.sts_policy(domain) if host.mx >= 0 else None,
            resolver=self.resolver)
        for line in req.log_lines:
            self._note(line)
        return req

    def _note(self, text: str) -> None:
        if self.log is not None:
            self.log.main(text)
