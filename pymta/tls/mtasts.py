"""MTA-STS (RFC 8461) for the smtp transport: a pymta extension (Exim has no MTA-STS).

A recipient domain announces a policy with a TXT record at ``_mta-sts.<domain>``
(``v=STSv1; id=...``) and serves it at
``https://mta-sts.<domain>/.well-known/mta-sts.txt``.  The policy lists the MX host
names that may receive the domain's mail and a mode:

- ``enforce``: deliver only to a listed MX, over TLS with a certificate that passes
  PKIX verification and names the MX host;
- ``testing``: report (log) what would have failed, deliver anyway;
- ``none``: no policy.

Pieces, each usable on its own:

- :func:`parse_txt`, :func:`parse_policy` -- the two formats;
- :func:`fetch_policy` -- HTTPS GET with certificate verification, no redirects,
  a 64 KiB limit, a timeout and the ``text/plain`` media type required; the host
  ``mta-sts.<domain>`` is resolved through :mod:`pymta.dns`;
- :class:`PolicyCache` -- policies kept in the ``mtasts`` hints database;
- :func:`current_policy` -- the RFC 8461 section 5.1 procedure: the cached policy
  while its TXT id is unchanged and it has not expired, a new fetch when the id
  changes, the cached one kept when a fetch fails;
- :func:`decide` -- for one MX host: may it be used, and must TLS be verified?

Nothing fetched is expanded or used as a path: the policy text is only parsed.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pymta import dns as pdns

MAX_POLICY_SIZE = 64 * 1024                 # RFC 8461 3.3: at most 64 KiB
MAX_AGE_LIMIT = 31557600                    # RFC 8461 3.2: one year
WELL_KNOWN = "/.well-known/mta-sts.txt"
PORT_ENV = "PYMTA_MTA_STS_PORT"             # tests only: the HTTPS port (default 443)
MODES = ("enforce", "testing", "none")

_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")


class PolicyError(Exception):
    """A policy that cannot be fetched or parsed (the text says why)."""


@dataclass(frozen=True)
class Policy:
    """One parsed MTA-STS policy."""

    mode: str
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def mx_allowed(self, host: str) -> bool:
        """Does ``host`` match one of the policy's mx patterns?"""
        return any(mx_matches(p, host) for p in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 4.1: exact (case-insensitive) or ``*.`` standing for one leftmost label."""
    p = pattern.strip().rstrip(".").lower()
    h = host.strip().rstrip(".").lower()
    if not p or not h:
        return False
    if p.startswith("*."):
        label, _, rest = h.partition(".")
        return bool(label) and rest == p[2:]
    return p == h


# --------------------------------------------------------------------------- formats
def parse_txt(records: list[str]) -> str | None:
    """The policy id from the ``_mta-sts`` TXT records (each the joined strings of one
    record), or None: no record, several, or one that is malformed (RFC 8461 3.1)."""
    sts = [r for r in records if r.startswith("v=STSv1;") or r == "v=STSv1"]
    if len(sts) != 1:
        return None
    fields: dict[str, str] = {}
    for part in sts[0].split(";"):
        part = part.strip(" \t")
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", key):
            return None
        fields.setdefault(key, value)
    ident = fields.get("id", "")
    return ident if _ID.match(ident) else None


def parse_policy(text: str, ident: str = "") -> Policy:
    """Parse a policy body (RFC 8461 3.2); PolicyError if it is not a valid policy.
    Unknown fields are ignored; of repeated fields other than ``mx`` the first counts."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        key, value = key.strip(), value.strip(" \t")
        if not colon or not key:
            raise PolicyError(f"malformed policy line {line[:80]!r}")
        if key == "mx":
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?", value):
                raise PolicyError(f"malformed mx pattern {value[:80]!r}")
            mx.append(value)
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    mode = fields.get("mode", "")
    if mode not in MODES:
        raise PolicyError(f"policy mode {mode[:20]!r} is not enforce, testing or none")
    age = fields.get("max_age", "")
    if not re.fullmatch(r"[0-9]{1,10}", age):
        raise PolicyError("policy max_age missing or not a number")
    if mode != "none" and not mx:
        raise PolicyError("policy lists no mx")
    return Policy(mode, tuple(mx), min(int(age), MAX_AGE_LIMIT), ident)


# --------------------------------------------------------------------------- fetch
def default_port() -> int:
    """443, or ``$PYMTA_MTA_STS_PORT`` (for tests with a loopback HTTPS server)."""
    try:
        return int(os.environ.get(PORT_ENV, "") or 443)
    except ValueError:
        return 443


def _addresses(name: str) -> list[str]:
    import dns.exception
    out: list[str] = []
    for rtype in ("A", "AAAA"):
        try:
            out += [r.address for r in pdns.resolve(name, rtype)]
        except dns.exception.DNSException:
            continue
    return out


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection to a given address that verifies the certificate for
    ``host`` (the address comes from pymta's resolver, not the system's)."""

    def __init__(self, host: str, address: str, port: int, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._address = address
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)


def fetch_policy(domain: str, *, ca_file: str | None = None, timeout: float = 30.0,
                 port: int | None = None) -> str:
    """The policy text of ``domain`` from ``https://mta-sts.<domain>``; PolicyError
    with the reason if it cannot be had (RFC 8461 3.3: HTTPS with PKIX verification,
    status 200 only (no redirects), ``text/plain``, at most 64 KiB).

    ``ca_file`` replaces the system's trusted CAs (a pymta option, for private setups
    and tests)."""
    host = "mta-sts." + domain.rstrip(".").lower()
    port = port or default_port()
    context = ssl.create_default_context(cafile=ca_file) if ca_file else \
        ssl.create_default_context()
    addresses = _addresses(host)
    if not addresses:
        raise PolicyError(f"{host}: no address")
    deadline = time.monotonic() + timeout
    errors = []
    for address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn = _Connection(host, address, port, context, left)
        try:
            conn.request("GET", WELL_KNOWN, headers={"Accept": "text/plain",
                                                     "Connection": "close"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise PolicyError(f"{host}: HTTP status {resp.status} (only 200 is used)")
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "text/plain":
                raise PolicyError(f"{host}: content type {ctype or 'missing'!r} "
                                  "is not text/plain")
            body = _read_body(resp, deadline)
            if len(body) > MAX_POLICY_SIZE:
                raise PolicyError(f"{host}: policy larger than {MAX_POLICY_SIZE} bytes")
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError:
                raise PolicyError(f"{host}: policy is not UTF-8") from None
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{address}: {exc}")
        finally:
            conn.close()
    raise PolicyError(f"{host}: " + ("; ".join(errors) or "timed out"))


def _read_body(resp: http.client.HTTPResponse, deadline: float) -> bytes:
    """Up to MAX_POLICY_SIZE + 1 bytes, within the deadline (a server sending a byte
    at a time must not hold the delivery longer than mta_sts_timeout)."""
    body = b""
    while len(body) <= MAX_POLICY_SIZE:
        if time.monotonic() > deadline:
            raise TimeoutError("timed out reading the policy")
        chunk = resp.read1(min(16384, MAX_POLICY_SIZE + 1 - len(body)))
        if not chunk:
            break
        body += chunk
    return body


def lookup_txt(domain: str) -> str | None:
    """The policy id from ``_mta-sts.<domain>`` TXT, or None (none, invalid, or the
    lookup failed: then the cached policy, if any, goes on being used)."""
    import dns.exception
    try:
        answer = pdns.resolve("_mta-sts." + domain.rstrip("."), "TXT")
    except dns.exception.DNSException:
        return None
    texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return parse_txt(texts)


# --------------------------------------------------------------------------- cache
class KeyValueStore(Protocol):
    """What :class:`PolicyCache` needs of a hints database."""

    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes) -> None: ...


@dataclass(frozen=True)
class CachedPolicy:
    """A policy as kept in the hints database."""

    policy: Policy
    fetched: int
    expires: int

    def encode(self) -> bytes:
        p = self.policy
        return json.dumps({"id": p.id, "mode": p.mode, "mx": list(p.mx),
                           "max_age": p.max_age, "fetched": self.fetched,
                           "expires": self.expires}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> CachedPolicy | None:
        try:
            d = json.loads(data)
            policy = Policy(str(d["mode"]), tuple(str(m) for m in d["mx"]),
                            int(d["max_age"]), str(d["id"]))
            return cls(policy, int(d["fetched"]), int(d["expires"]))
        except (ValueError, KeyError, TypeError):
            return None     # a damaged hint is as good as none


class PolicyCache:
    """MTA-STS policies by domain in the ``mtasts`` hints database."""

    def __init__(self, spool_dir: str = "", db: KeyValueStore | None = None,
                 log: Any = None) -> None:
        if db is None:
            from pymta.hints.db import HintsDB
            db = HintsDB(spool_dir, "mtasts", log=log)
        self.db = db

    def get(self, domain: str) -> CachedPolicy | None:
        data = self.db.get(domain.lower())
        return None if data is None else CachedPolicy.decode(data)

    def put(self, domain: str, entry: CachedPolicy) -> None:
        self.db.put(domain.lower(), entry.encode())


@dataclass
class PolicyLookup:
    """The policy to apply for a domain and how it was obtained (for the log)."""

    policy: Policy | None
    source: str                 # "cache", "fetched", "stale-cache", "none"
    error: str = ""             # why a fetch failed, when it did


def current_policy(domain: str, cache: PolicyCache, *,
                   now: Callable[[], float] = time.time,
                   txt: Callable[[str], str | None] = lookup_txt,
                   fetch: Callable[[str], str] = fetch_policy) -> PolicyLookup:
    """The policy of ``domain`` by RFC 8461 section 5.1:

    - the TXT record names id X: a cached, unexpired policy with id X is used; else the
      policy is fetched and cached (valid for max_age seconds); when that fails, an
      unexpired cached policy (of any id) goes on being used;
    - no valid TXT record: an unexpired cached policy goes on being used, else none.
    """
    t = int(now())
    cached = cache.get(domain)
    if cached is not None and cached.expires <= t:
        cached = None
    ident = txt(domain)
    if ident is None:
        return PolicyLookup(cached.policy if cached else None, "cache" if cached else "none")
    if cached is not None and cached.policy.id == ident:
        return PolicyLookup(cached.policy, "cache")
    try:
        policy = parse_policy(fetch(domain), ident)
    except PolicyError as exc:
        return PolicyLookup(cached.policy if cached else None,
                            "stale-cache" if cached else "none", str(exc))
    cache.put(domain, CachedPolicy(policy, t, t + policy.max_age))
    return PolicyLookup(policy, "fetched")


# --------------------------------------------------------------------------- decision
@dataclass(frozen=True)
class StsDecision:
    """What the policy says about delivering to one MX host."""

    allowed: bool               # the host may be used
    require_tls: bool           # TLS with PKIX verification and a host-name check
    report: str = ""            # a failure to log (testing mode, or why not allowed)


def decide(policy: Policy | None, domain: str, mx_host: str) -> StsDecision:
    """Apply ``policy`` (of recipient ``domain``) to ``mx_host``.

    enforce: a listed MX must be used with verified TLS; an unlisted one is not used.
    testing: every MX is used as usual; an unlisted one is reported.
    none, or no policy: nothing changes.
    """
    if policy is None or policy.mode == "none":
        return StsDecision(True, False)
    listed = policy.mx_allowed(mx_host)
    if policy.mode == "enforce":
        if not listed:
            return StsDecision(False, False, f"MTA-STS: {mx_host} is not an MX allowed by "
                                             f"the enforced policy of {domain}")
        return StsDecision(True, True)
    if not listed:
        return StsDecision(True, False, f"MTA-STS (testing): {mx_host} is not an MX "
                                        f"allowed by the policy of {domain}")
    return StsDecision(True, False)


def testing_report(domain: str, mx_host: str, what: str) -> str:
    """The log text for a TLS failure under a testing policy (delivery goes on)."""
    return f"MTA-STS (testing): {mx_host} for {domain}: {what}"
