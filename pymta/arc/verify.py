"""The ``verify = arc`` ACL condition: evaluate the ARC chain of a received message.

The chain is judged in the order RFC 8617 section 5.2 gives, as Exim does: collect the
ARC sets (none: state "none"); check their form (instances 1..N, one of each of the
three fields per instance, no seal saying cv=fail); verify the newest
ARC-Message-Signature; verify every ARC-Seal.  The signatures themselves are checked
by dkimpy (``dkim.ARC.verify_instance``), with public keys looked up through pymta's
resolver.  Each AMS is verified from the newest down while they pass, which gives
``$arc_oldest_pass``.

Nothing here raises on a bad message: a malformed set, a key that cannot be found or
a DNS failure gives state "fail" with a reason, so the ACL decides what happens.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import dkim
import dns.exception
import dns.resolver

from pymta import dns as pdns
from pymta.expand.extra_items import AUTHRES_ARC
from pymta.taint import taint

#: What ``verify = arc`` accepts when no list follows it (as Exim).
DEFAULT_ACCEPT = ("none", "pass")
#: RFC 8617 5.1.1.1: a chain has at most 50 sets (also bounds the work a forged i=
#: can cause).
MAX_INSTANCE = 50

_ARC_NAMES = {b"arc-authentication-results": "aar", b"arc-message-signature": "ams",
              b"arc-seal": "as"}
_INSTANCE = re.compile(rb"(?:^|[\s;])i\s*=\s*(\d+)\s*(?:;|$)", re.IGNORECASE)
_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.IGNORECASE)

#: dkimpy's TXT lookup hook: name -> the record's text, or None.
DnsFunc = Callable[..., bytes | None]


@dataclass
class ArcResult:
    """The outcome of one ARC evaluation: the values of the $arc_* variables, and
    what ${authresults} reports."""

    state: str = "none"
    reason: str = ""
    #: d= of each instance's ARC-Seal, instance 1 first ("" where there is none)
    domains: list[str] = field(default_factory=list)
    oldest_pass: int = 0
    #: the newest instance, once the chain's form is good (0 otherwise)
    received_instance: int = 0
    #: s= of the newest ARC-Message-Signature (for Authentication-Results)
    received_selector: str = ""


class _Capture(logging.Handler):
    """Keeps dkimpy's log messages: they say why a signature did not verify."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def dns_txt(name: bytes | str, timeout: float = 5) -> bytes | None:
    """dkimpy's dnsfunc through pymta's resolver: the first TXT record at ``name``,
    None when there is none; a DNS failure raises dkimpy's DnsTimeoutError, which it
    counts as a failed key lookup."""
    qname = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    try:
        answer = pdns.resolve(qname, "TXT", lifetime=float(timeout))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except dns.exception.DNSException as e:
        raise dkim.DnsTimeoutError(f"DNS lookup of {qname} failed: {e}") from None
    for rr in answer:
        return b"".join(rr.strings)
    return None


def _tags(value: bytes) -> dict[str, str]:
    return {m.group(1).lower().decode(): m.group(2).strip().decode("ascii", "replace")
            for m in _TAG.finditer(value)}


def message_bytes(headers: list[str], body: bytes) -> bytes:
    """A received message (header lines as the ACL sees them, body as spooled with LF
    line ends) as the CRLF text dkimpy verifies."""
    head = "".join(h if h.endswith("\n") else h + "\n" for h in headers)
    text = head.encode("utf-8", "surrogateescape") + b"\n" + body
    return re.sub(rb"\r?\n", b"\r\n", text)


def evaluate(message: bytes, dnsfunc: DnsFunc = dns_txt) -> ArcResult:
    """The ARC state of ``message`` (CRLF line ends)."""
    capture = _Capture()
    logger = logging.getLogger("pymta.arc.dkimpy")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    try:
        return _evaluate(message, dnsfunc, logger, capture)
    except Exception as e:  # noqa: BLE001 - a message must never break the ACL
        return ArcResult("fail", f"cannot evaluate: {_first_line(e)}")
    finally:
        logger.removeHandler(capture)


def _evaluate(message: bytes, dnsfunc: DnsFunc, logger: logging.Logger,
              capture: _Capture) -> ArcResult:
    try:
        arc = dkim.ARC(message, logger=logger, minkey=1024)
    except dkim.DKIMException as e:
        return ArcResult("fail", f"collecting headers: {_first_line(e)}")
    # 1. collect the ARC sets (fields by instance)
    sets: dict[int, dict[str, list[bytes]]] = {}
    unnumbered = False
    for name, value in arc.headers:
        kind = _ARC_NAMES.get(name.lower())
        if kind is None:
            continue
        m = _INSTANCE.search(value)
        if m is None:
            unnumbered = True
            continue
        sets.setdefault(int(m.group(1)), {}).setdefault(kind, []).append(value)
    if not sets:
        if unnumbered:
            return ArcResult("fail", "collecting headers: ARC header without instance")
        return ArcResult("none")
    top = max(sets)
    if top > MAX_INSTANCE:
        return ArcResult("fail", f"i={top} (more than {MAX_INSTANCE} sets)")
    result = ArcResult("fail", domains=_domains(sets, top))
    # 2. the form of every set, newest first
    for inst in range(top, 0, -1):
        s = sets.get(inst)
        if s is None:
            result.reason = f"(sequence; expected i={inst})"
            return result
        if any(len(s.get(k, ())) != 1 for k in ("aar", "ams", "as")):
            result.reason = f"i={inst} (missing header)" if any(
                k not in s for k in ("aar", "ams", "as")) else f"i={inst} (duplicate header)"
            return result
        if _tags(s["as"][0]).get("cv", "").lower() == "fail":
            result.reason = f"i={inst} (cv)"
            return result
    if unnumbered:
        result.reason = "collecting headers: ARC header without instance"
        return result
    result.received_instance = top
    result.received_selector = _tags(sets[top]["ams"][0]).get("s", "")
    # dkimpy's view of the sets: (instance, relaxed (name, value)), as it sorts them
    _, numbered = arc.sorted_arc_headers()
    verdicts: dict[int, dict[str, Any]] = {}
    for inst in range(top, 0, -1):
        del capture.messages[:]
        try:
            verdicts[inst] = arc.verify_instance(numbered, inst, dnsfunc=dnsfunc)
        except Exception as e:  # noqa: BLE001 - dkimpy raises more than DKIMException
            result.reason = f"i={inst} {_first_line(e)}"
            return result
        verdicts[inst]["why"] = list(capture.messages)
    # 3. oldest passing AMS (newest down, while they pass) and the newest AMS
    for inst in range(top, 0, -1):
        if not verdicts[inst]["ams-valid"]:
            break
        result.oldest_pass = inst
    if not verdicts[top]["ams-valid"]:
        result.reason = _ams_reason(verdicts[top]["why"])
        return result
    # 4. every seal, newest first: cv must be "none" on instance 1 and "pass" above
    for inst in range(top, 0, -1):
        v = verdicts[inst]
        cv = v["cv"].decode("ascii", "replace").lower()
        if (inst == 1) != (cv == "none") or cv not in ("none", "pass"):
            result.reason = "seal cv state"
            return result
        if not v["as-valid"]:
            result.reason = "seal sigverify error"
            return result
    result.state, result.reason = "pass", ""
    return result


def _ams_reason(messages: list[str]) -> str:
    text = " ".join(messages)
    if "body hash mismatch" in text:
        return "AMS body hash miscompare"
    if any(w in text for w in ("KeyFormatError", "DnsTimeoutError", "missing public key",
                               "public key", "unknown algorithm")):
        return "pubkey problem"
    return "AMS sig nonverify"


def _domains(sets: dict[int, dict[str, list[bytes]]], top: int) -> list[str]:
    out = []
    for inst in range(1, top + 1):
        seals = sets.get(inst, {}).get("as", [])
        out.append(_tags(seals[0]).get("d", "") if len(seals) == 1 else "")
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def set_variables(variables: dict[str, Any], result: ArcResult) -> None:
    """$arc_state, $arc_state_reason, $arc_domains and $arc_oldest_pass, and the ARC
    part of ${authresults}."""
    # The domains and reasons are text of the message: tainted.
    variables.update(arc_state=result.state, arc_state_reason=taint(result.reason),
                     arc_domains=taint(":".join(d.replace(":", "::")
                                                for d in result.domains)),
                     arc_oldest_pass=str(result.oldest_pass))
    variables[AUTHRES_ARC] = authres(result, str(variables.get("sender_host_address") or ""))


def clear_variables(variables: dict[str, Any]) -> None:
    """A new message in the session: no ARC state yet (as Exim's reset)."""
    variables.update(arc_state="", arc_state_reason="", arc_domains="", arc_oldest_pass="0")
    variables.pop(AUTHRES_ARC, None)


def authres(result: ArcResult, remote_ip: str) -> str:
    """The ARC part of ${authresults} (after the authserv-id), in Exim's form:
    ``arc=<state>``, then for a chain whose form was good the newest instance, the
    reason of a failure, the newest AMS selector, the oldest passing instance and
    the client's address."""
    out = f";\n\tarc={result.state}"
    if result.received_instance:
        out += f" (i={result.received_instance})"
        if result.reason:
            out += f"({result.reason})"
        out += (f" header.s={result.received_selector}"
                f" arc.oldest-pass={result.oldest_pass}")
        if remote_ip:
            out += f" smtp.remote-ip={remote_ip}"
    elif result.reason:
        out += f" ({result.reason})"
    return taint(out)       # the selector and the reason are text of the message


def accepted(result: ArcResult, spec: str | None) -> bool:
    """Whether the state is in the colon list after ``verify = arc/`` (default
    none:pass)."""
    wanted = [w.strip() for w in spec.split(":")] if spec else list(DEFAULT_ACCEPT)
    return result.state in wanted
