"""Peer facts of an SMTP connection (Postfix's smtpd_peer.c): who the client is.

The client's and our addresses and ports, the reverse lookup of its host name (forward
confirmed), the HELO name check (``verify = helo``), Exim's ``H=name (helo) [ip]`` text
and ``$sender_rcvhost``, and host-list matching of the client against main options.
"""
from __future__ import annotations

import socket
from typing import Any

from pymta.config.values import main_option
from pymta.logevents import host_field
from pymta.match import match_host
from pymta.taint import taint


def lookup_host_name(ip: str) -> str | None:
    """Reverse-resolve ``ip`` (DNS PTR, then the system resolver, like Exim's default
    host_lookup_order bydns:byaddr) and keep the name only if it resolves back to ``ip``."""
    names: list[str] = []
    try:
        import dns.resolver
        import dns.reversename
        res = dns.resolver.Resolver()
        res.lifetime = 5.0
        answer = res.resolve(dns.reversename.from_address(ip), "PTR")
        names = [str(r.target).rstrip(".") for r in answer]
    except Exception:
        names = []
    if not names:
        try:
            host, aliases, _ = socket.gethostbyaddr(ip)
            names = [host] + list(aliases)
        except (OSError, UnicodeError):
            return None
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        if ip in {str(i[4][0]).split("%")[0] for i in infos}:
            return name.lower()
    return None


def endpoints(sock: socket.socket) -> tuple[tuple[str, int], tuple[str, int]]:
    """(peer, local) address pairs of a connected socket (loopback stand-ins for
    socketpairs)."""
    try:
        peer = sock.getpeername()
        local = sock.getsockname()
    except OSError:
        peer = local = None
    if not isinstance(peer, tuple):
        peer = ("127.0.0.1", 0)
    if not isinstance(local, tuple):
        local = ("127.0.0.1", 0)
    return (peer[0], peer[1]), (local[0], local[1])


def host_in(config: Any, option: str, session: "PeerFacts", default: str | None) -> bool:
    """Does the client match the host list in ``option``?  (Deferral counts as no.)"""
    text = main_option(config, option, default)
    if not text:
        return False
    if text == "*":
        return True
    try:
        return bool(match_host(session.peer_ip, session.ctx.variables.get("sender_host_name")
                               or None, str(text), session.ctx))
    except Exception as exc:
        session.log.main(f"{session.host_ident()} {option}: host list check failed: {exc}")
        return False


class PeerFacts:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: the client as logs and the
    Received: header show it, and the HELO check."""

    config: Any
    log: Any
    ctx: Any
    peer_ip: str
    local_caller: Any
    _helo_checked: str | None

    # ------------------------------------------------------------------ log helpers
    def host_ident(self, with_h: bool = True) -> str:
        """Exim's host_and_ident: ``H=name (helo) [ip]`` (``U=login`` for -bs)."""
        if self.local_caller is not None:
            return f"U={self.local_caller.login}"
        ident = host_field(self.peer_ip, self.ctx.variables.get("sender_host_name") or "",
                           self.ctx.variables.get("sender_helo_name") or "")
        return ("H=" if with_h else "") + ident

    @property
    def log_prefix(self) -> str:
        return self.host_ident()

    def verify_helo(self) -> bool:
        """``verify = helo``: the HELO name is the client's IP literal, its looked-up
        name, or resolves to its address.  Sets $helo_verified; cached per HELO name."""
        v = self.ctx.variables
        if self.local_caller is not None:
            return True       # -bs: no TCP/IP client, so HELO always verifies (as Exim)
        helo = str(v.get("sender_helo_name") or "")
        if self._helo_checked == helo:
            return v.get("helo_verified") == "1"
        ok = False
        if helo.startswith("[") and helo.endswith("]"):
            inner = helo[1:-1]
            ok = inner.split(":", 1)[-1] == self.peer_ip if inner.lower().startswith("ipv6:") \
                else inner == self.peer_ip
        elif helo:
            name = str(v.get("sender_host_name") or "")
            ok = bool(name) and name.lower() == helo.lower()
            if not ok:
                try:
                    infos = socket.getaddrinfo(helo, None, proto=socket.IPPROTO_TCP)
                    ok = self.peer_ip in {str(i[4][0]).split("%")[0] for i in infos}
                except (OSError, UnicodeError):
                    ok = False
        self._helo_checked = helo
        v["helo_verified"] = "1" if ok else ""
        return ok

    def _rcvhost(self) -> str:
        """$sender_rcvhost as Exim builds it for the Received: header."""
        v = self.ctx.variables
        name, helo = v.get("sender_host_name") or "", v.get("sender_helo_name") or ""
        if name:
            extra = f" helo={helo}" if helo and helo.lower() != name.lower() else ""
            return taint(f"{name} ([{self.peer_ip}]{extra})")
        return taint(f"[{self.peer_ip}]" + (f" (helo={helo})" if helo else ""))
