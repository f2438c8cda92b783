"""A real DNS server on 127.0.0.1 for tests, serving zones given as text (dnspython).

::

    zones = {"example.test": '''
        @      3600 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
        @           IN MX 10 mx1
        mx1         IN A 127.0.0.1
    '''}
    with DnsServer(zones) as dns_server:
        with dns_server.as_default_resolver():      # in-process: dns.resolver.resolve()
            ...
        dns_server.port                              # for other processes

Names listed in ``servfail`` get SERVFAIL; names in ``drop`` get no answer at
all (the client times out), to exercise "lookup deferred" paths.
``slow`` maps names to a delay in seconds before their answer (slow_lookup_log).
``follow_cname=False`` answers with the first CNAME only, as a resolver that does not
follow CNAME chains (dns_cname_loops).  Queries
outside every zone are REFUSED.  Both UDP and TCP are served on the same port.
Each received query is recorded in :attr:`DnsServer.queries` as (name, type).

``secure`` names zone origins (or True: every zone) whose answers are marked as
DNSSEC-validated: the AD flag is set, as a validating resolver sets it, when the
query asked for DNSSEC (the DO bit in EDNS0, or the AD bit; RFC 6840 5.7).  The
records are not signed: the server plays the part of the trusted validating
resolver, which is what an MTA relying on AD trusts.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
import time
from typing import Iterable, Iterator, Optional

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import dns.zone

_DEFAULT_SOA = "@ 3600 IN SOA ns.{o}. hostmaster.{o}. 1 3600 600 86400 60\n"


class DnsServer:
    """Authoritative DNS server for test zones on 127.0.0.1 (UDP and TCP)."""

    def __init__(self, zones: dict[str, str], *, port: int = 0,
                 servfail: Iterable[str] = (), drop: Iterable[str] = (),
                 secure: Iterable[str] | bool = (),
                 slow: dict[str, float] | None = None, follow_cname: bool = True) -> None:
        """``zones`` maps an origin to zone text in master-file format (names relative
        to the origin unless they end with a dot; an SOA is added when missing)."""
        self.zones: dict[dns.name.Name, dns.zone.Zone] = {}
        for origin, text in zones.items():
            origin = origin.rstrip(".")
            if " SOA " not in f" {text.upper()} ".replace("\t", " "):
                text = _DEFAULT_SOA.format(o=origin) + text
            zone = dns.zone.from_text(_dedent(text), origin=origin + ".", relativize=False,
                                      check_origin=False)
            self.zones[zone.origin] = zone
        self.servfail = {dns.name.from_text(n) for n in servfail}
        self.drop = {dns.name.from_text(n) for n in drop}
        self.slow = {dns.name.from_text(n): t for n, t in (slow or {}).items()}
        self.follow_cname = follow_cname
        self.secure_all = secure is True
        self.secure = set() if isinstance(secure, bool) else {
            dns.name.from_text(n.rstrip(".") + ".") for n in secure}
        self.queries: list[tuple[str, str]] = []
        self.edns_versions: list[int] = []     # per query: its EDNS version, -1 for none
        self._lock = threading.Lock()
        self._requested_port = port
        self.port = port
        self._udp: Optional[socketserver.UDPServer] = None
        self._tcp: Optional[socketserver.TCPServer] = None
        self._threads: list[threading.Thread] = []

    # -- answering -------------------------------------------------------

    def _zone_for(self, name: dns.name.Name) -> Optional[dns.zone.Zone]:
        best = None
        for origin, zone in self.zones.items():
            if name.is_subdomain(origin) and (best is None or len(origin) > len(best.origin)):
                best = zone
        return best

    def answer(self, wire: bytes) -> Optional[bytes]:
        """The wire-format response to one query (None: stay silent)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        with self._lock:
            self.queries.append((q.name.to_text(omit_final_dot=True),
                                 dns.rdatatype.to_text(q.rdtype)))
            self.edns_versions.append(query.edns)
        if q.name in self.drop:
            return None
        if q.name in self.slow:
            time.sleep(self.slow[q.name])
        if q.name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        asked_dnssec = bool(query.ednsflags & dns.flags.DO) or bool(query.flags & dns.flags.AD)
        name, seen = q.name, set()
        secure = True
        while True:
            zone = self._zone_for(name)
            if zone is None or not (self.secure_all or zone.origin in self.secure):
                secure = False      # every name on the way must be in a secure zone
            if zone is None:
                if name == q.name:
                    response.set_rcode(dns.rcode.REFUSED)
                break
            node = zone.get_node(name)
            if node is None:
                if name == q.name:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(response, zone)
                break
            rds = node.get_rdataset(dns.rdataclass.IN, q.rdtype)
            if rds is not None:
                response.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
                break
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is not None and q.rdtype != dns.rdatatype.CNAME and name not in seen:
                seen.add(name)
                response.answer.append(dns.rrset.from_rdata_list(name, cname.ttl, list(cname)))
                if not self.follow_cname:
                    break
                name = cname[0].target
                continue
            self._add_soa(response, zone)  # NODATA
            break
        if secure and asked_dnssec and response.rcode() in (dns.rcode.NOERROR,
                                                             dns.rcode.NXDOMAIN):
            response.flags |= dns.flags.AD
        return response.to_wire()

    @staticmethod
    def _add_soa(response: dns.message.Message, zone: dns.zone.Zone) -> None:
        soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
        if soa is not None:
            response.authority.append(dns.rrset.from_rdata_list(zone.origin, soa.ttl, list(soa)))

    # -- lifecycle -------------------------------------------------------

    def start(self) -> "DnsServer":
        """Bind UDP and TCP on the same free port and serve in daemon threads."""
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = server.answer(data)
                if out is not None:
                    if len(out) > 512:  # no EDNS: tell the client to retry over TCP
                        msg = dns.message.from_wire(out)
                        msg.answer, msg.authority, msg.additional = [], [], []
                        msg.flags |= dns.flags.TC
                        out = msg.to_wire()
                    sock.sendto(out, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                conn.settimeout(5)
                while True:
                    head = _recv_exact(conn, 2)
                    if not head:
                        return
                    data = _recv_exact(conn, struct.unpack("!H", head)[0])
                    if not data:
                        return
                    out = server.answer(data)
                    if out is None:
                        return
                    conn.sendall(struct.pack("!H", len(out)) + out)

        for _ in range(20):  # the UDP port may be taken for TCP; try another
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", self._requested_port), Udp)
            port = udp.server_address[1]
            try:
                socketserver.ThreadingTCPServer.allow_reuse_address = True
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
            except OSError:
                udp.server_close()
                if self._requested_port:
                    raise
                continue
            break
        else:
            raise OSError("no port free for both UDP and TCP")
        udp.daemon_threads = tcp.daemon_threads = True
        self._udp, self._tcp, self.port = udp, tcp, port
        for srv in (udp, tcp):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop both servers and wait for their threads."""
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for t in self._threads:
            t.join(5)
        self._udp = self._tcp = None
        self._threads = []

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------

    def resolver(self, timeout: float = 2.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only this server."""
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = ["127.0.0.1"]
        res.port = self.port
        res.timeout = res.lifetime = timeout
        res.search = []
        return res

    @contextlib.contextmanager
    def as_default_resolver(self, timeout: float = 2.0) -> Iterator[dns.resolver.Resolver]:
        """Make this server dnspython's default resolver (in this process) for a while,
        so code calling ``dns.resolver.resolve()`` asks it."""
        old = dns.resolver.default_resolver
        res = self.resolver(timeout)
        dns.resolver.default_resolver = res
        try:
            yield res
        finally:
            dns.resolver.default_resolver = old


    @contextlib.contextmanager
    def as_pymta_server(self, timeout: float = 1.0) -> Iterator["DnsServer"]:
        """Make this server the one pymta's DNS lookups ask (in this process) for a
        while; then back to the system's, with the DNSSEC settings reset."""
        from pymta import dns as pdns
        from pymta import dnssec
        pdns.set_server("127.0.0.1", self.port, timeout=timeout)
        try:
            yield self
        finally:
            pdns.set_resolver(None)
            dnssec.configure()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        try:
            chunk = conn.recv(n - len(buf))
        except OSError:
            return b""
        if not chunk:
            return b""
        buf += chunk
    return buf


def _dedent(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines()) + "\n"
