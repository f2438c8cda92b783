"""Peer facts of an SMTP connection (Postfix's smtpd_peer.c): who the client is.

The client's and our addresses and ports, the reverse lookup of its host name (forward
confirmed), the HELO name check (``verify = helo``), Exim's ``H=name (helo) [ip]`` text
and ``$sender_rcvhost``, and host-list matching of the client against main options.
"""
from __future__ import annotations

import socket
from typing import Any, Protocol

from pymta import dns as pdns
from pymta import match
from pymta.config.values import main_option
from pymta.debuglog import debug
from pymta.hostname import HostLookupDeferred, rcvhost
from pymta.log import log_selected
from pymta.logevents import host_field
from pymta.match import fixed_domain_list, match_domain, match_host
from pymta.smtp.ident import query_ident
from pymta.smtp.proxy_protocol import ProxyError, read_proxy_header
from pymta.smtp.xclient import XclientCommand
from pymta.taint import taint

#: Exim's answer to every command but QUIT after the PROXY header could not be read.
PROXY_FAILED = "Command refused, required Proxy negotiation failed"


def forward_addresses(name: str) -> set[str]:
    """The IP addresses of a host name (:func:`pymta.dns.host_addresses`)."""
    return pdns.host_addresses(name)


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


def _discard_waiting_input(sock: socket.socket) -> None:
    """Read and drop whatever the client has already sent (without waiting)."""
    try:
        while sock.recv(4096, socket.MSG_DONTWAIT):
            pass
    except OSError:
        pass


#: helo_lookup_domains misses, by (configuration, list, HELO name); see helo_lookup.
_HELO_LOOKUP_MISSES: dict[tuple[int, str, str], Any] = {}
_HELO_LOOKUP_MISSES_MAX = 1024


class Client(Protocol):
    """What :func:`host_in` needs of a session."""

    peer_ip: str
    ctx: Any
    log: Any

    def host_ident(self) -> str: ...


def host_in(config: Any, option: str, session: Client, default: str | None) -> bool:
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
    peer_port: int
    local_caller: Any
    _helo_checked: str | None

    # ------------------------------------------------------------------ PROXY protocol
    def read_proxy(self, sock: socket.socket) -> bool:
        """hosts_proxy: a client that matches must begin with a PROXY header naming the
        real client, whose address and port then replace the proxy's everywhere
        ($sender_host_address, H=, Received:).  The proxy's own address becomes
        $proxy_local_address/_port, the address the client reached on the proxy
        $proxy_external_address/_port.  Returns False when the header was missing, late
        or malformed: the session then refuses every command but QUIT (as Exim), with
        $proxy_session true and $proxy_external_address empty."""
        if not self.peer_ip or not host_in(self.config, "hosts_proxy", self, None):
            return True
        v = self.ctx.variables
        v["proxy_session"] = "yes"
        timeout = float(main_option(self.config, "proxy_protocol_timeout", 3) or 0)
        try:
            header = read_proxy_header(sock, timeout)
        except ProxyError:
            # What is left of a bad header is thrown away, not taken as early SMTP.
            _discard_waiting_input(sock)
            return False
        if header.source is None or header.destination is None:
            return True               # LOCAL / UNKNOWN: the connection's own addresses
        v.update(proxy_local_address=self.peer_ip, proxy_local_port=str(self.peer_port),
                 proxy_external_address=header.destination[0],
                 proxy_external_port=str(header.destination[1]))
        self._become_client(*header.source)
        # Exim looks the real client's name up whatever host_lookup says.
        self._lookup_host_name()
        return True

    def _become_client(self, ip: str, port: int) -> None:
        """The proxied client replaces the proxy as the session's client.  ``ip`` is a
        validated, normalised IP literal: untainted, like the socket's own address."""
        self.peer_ip, self.peer_port = ip, port
        v = self.ctx.variables
        v.update(sender_host_address=ip, host_address=ip, sender_host_port=str(port),
                 sender_rcvhost=f"[{ip}]")
        for name in ("sender_host_name", "host_lookup_failed", "host_lookup_deferred",
                     "sender_host_dnssec"):
            v.pop(name, None)

    # ------------------------------------------------------------------ RFC 1413
    def ident_call(self) -> None:
        """rfc1413_hosts / rfc1413_query_timeout: ask the client's ident server who
        owns the connection; the answer (tainted) becomes $sender_ident.  Only for real
        TCP clients, and not for PROXY-protocol sessions (the socket's far end is the
        proxy, not the client)."""
        v = self.ctx.variables
        timeout = float(main_option(self.config, "rfc1413_query_timeout", 0) or 0)
        if timeout <= 0 or self.local_caller is not None or not self.peer_ip \
                or v.get("proxy_session") == "yes" \
                or not host_in(self.config, "rfc1413_hosts", self, "@[]"):
            return
        local = (str(v.get("interface_address") or ""), int(v.get("interface_port") or 0))
        result = query_ident(local, (self.peer_ip, self.peer_port), timeout)
        if result.connect_timed_out and log_selected(self.config, "ident_timeout"):
            self.log.main(f"ident connection to {self.peer_ip} timed out")
        if result.user:
            v["sender_ident"] = result.user
            v["sender_rcvhost"] = self._rcvhost()

    # ------------------------------------------------------------------ XCLIENT
    def apply_xclient(self, command: XclientCommand) -> None:
        """A successful XCLIENT (see :mod:`pymta.smtp.xclient`): its client becomes the
        session's client; the proxy's address is kept in $proxy_local_address/_port and
        the address the client reached in $proxy_external_address/_port."""
        v = self.ctx.variables
        if v.get("proxy_session") != "yes":
            v.update(proxy_session="yes", proxy_local_address=self.peer_ip,
                     proxy_local_port=str(self.peer_port))
        if command.given("ADDR") or command.given("PORT"):
            self._become_client(command.get("ADDR") or self.peer_ip,
                                int(command.get("PORT") or self.peer_port))
        if command.given("NAME"):
            name = command.get("NAME")
            if name:
                v["sender_host_name"] = taint(name.lower())
            else:
                v.pop("sender_host_name", None)
        if v.get("sender_host_name"):
            v["sender_rcvhost"] = self._rcvhost()
        if command.given("LOGIN"):
            login = command.get("LOGIN")
            v.update(authenticated_id=taint(login or ""),
                     sender_host_authenticated="xclient" if login else "")
        for attr, var in (("DESTADDR", "proxy_external_address"),
                          ("DESTPORT", "proxy_external_port")):
            if command.given(attr):
                v[var] = command.get(attr) or ""

    # ------------------------------------------------------------------ log helpers
    def host_ident(self, with_h: bool = True) -> str:
        """Exim's host_and_ident: ``H=name (helo) [ip]`` (``U=login`` for -bs)."""
        if self.local_caller is not None:
            return f"U={self.local_caller.login}"
        v = self.ctx.variables
        ident = host_field(self.peer_ip, v.get("sender_host_name") or "",
                           v.get("sender_helo_name") or "")
        if v.get("sender_ident") and with_h:   # an RFC 1413 answer, or -oMt
            # as Exim: U= only in lines with H= ("SMTP connection from" has none)
            ident += f" U={v['sender_ident']}"
        return ("H=" if with_h else "") + ident

    @property
    def log_prefix(self) -> str:
        return self.host_ident()

    def lookup_sender_host_name(self) -> str | None:
        """The client's host name, looked up (forward confirmed) on first need; sets
        $sender_host_name or $host_lookup_failed (and logs the failure, as Exim)."""
        v = self.ctx.variables
        if v.get("sender_host_name"):
            return str(v["sender_host_name"])
        if v.get("host_lookup_failed") == "1" or not self.peer_ip \
                or self.local_caller is not None:
            return None
        return self._lookup_host_name()

    def _lookup_host_name(self) -> str | None:
        """Ask now (a deferral leaves $host_lookup_deferred set and no name: a later
        need asks again, as Exim does)."""
        try:
            name = match.lookup_client_name(self.ctx, self.peer_ip, self.log.main).name
        except HostLookupDeferred:
            return None
        return name

    def helo_lookup(self, helo: str) -> None:
        """helo_lookup_domains: a client that greets with one of these names (by default
        ours, or our address in brackets) has its real name looked up."""
        text = main_option(self.config, "helo_lookup_domains", "@ : @[]")
        if not text or not helo or self.local_caller is not None \
                or self.ctx.variables.get("sender_host_name"):
            return              # (a client whose name is known already is not asked)
        text = str(text)
        key = (id(self.config), text, helo.lower())
        if key in _HELO_LOOKUP_MISSES:
            return
        try:
            hit = match_domain(helo, text, self.ctx, option="helo_lookup_domains")
        except Exception as exc:  # noqa: BLE001 - a lookup defer counts as no match
            self.log.main(f"{self.host_ident()} helo_lookup_domains: check failed: {exc}")
            return
        if hit:
            self.lookup_sender_host_name()
        elif fixed_domain_list(text):
            # Every EHLO of every session asks; with the default list the answer for
            # a name never changes, and matching it was 4% of a STARTTLS session.
            if len(_HELO_LOOKUP_MISSES) >= _HELO_LOOKUP_MISSES_MAX:
                _HELO_LOOKUP_MISSES.clear()
            _HELO_LOOKUP_MISSES[key] = self.config     # holds it: its id stays unique

    def verify_helo(self) -> bool:
        """``verify = helo``: the HELO name is the client's IP literal, its host name
        (looked up now if need be), or resolves to its address.  Sets $helo_verified;
        cached per HELO name."""
        v = self.ctx.variables
        if self.local_caller is not None:
            return True       # -bs: no TCP/IP client, so HELO always verifies (as Exim)
        helo = str(v.get("sender_helo_name") or "")
        if self._helo_checked == helo:
            return v.get("helo_verified") == "1"
        ok = False
        trace = debug.receive or debug.host_checking
        if trace and helo:
            debug.printf(f'verifying EHLO/HELO argument "{helo}"')
        if helo.startswith("[") and helo.endswith("]"):
            inner = helo[1:-1]
            ok = inner.split(":", 1)[-1] == self.peer_ip if inner.lower().startswith("ipv6:") \
                else inner == self.peer_ip
            if ok and trace:
                debug.printf("matched host address")
        elif helo:
            name = self.lookup_sender_host_name() or ""
            ok = bool(name) and name.lower() == helo.lower()
            if ok and trace:
                debug.printf("matched host name")
            if not ok:
                if trace:
                    debug.printf(f"getting IP address for {helo}")
                if debug.lists:
                    # Exim's forward lookup asks for DNSSEC for any name ("*") and
                    # requires it for none (""), and traces both matches
                    debug.printf(f'{helo} in ""? no (end of list)')
                    debug.printf(f'{helo} in "*"? yes (matched "*")')
                ok = self.peer_ip in forward_addresses(helo)
                if ok and trace:
                    debug.printf(f"IP address for {helo} matches calling address")
                    debug.printf("Forward DNS security status: unverified")
        self._helo_checked = helo
        v["helo_verified"] = "1" if ok else ""
        return ok

    def _rcvhost(self) -> str:
        """$sender_rcvhost as Exim builds it for the Received: header."""
        return rcvhost(self.ctx.variables, self.peer_ip)
