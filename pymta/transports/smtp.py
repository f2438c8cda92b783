"""The smtp transport: deliver a batch of addresses to remote hosts over SMTP.

Hosts come from the router (``Address.hosts``) or from the ``hosts`` option (used when the
router supplied none, or always with ``hosts_override``).  Each host is tried in order
until every address has a final answer: host errors (refused, timeout, closed, bad
banner) and temporary replies move the still-pending addresses on to the next host.
"""
from __future__ import annotations

import atexit
import ipaddress
import os
import random
import socket
import time
import weakref
from typing import Any

from pymta import proctitle
from pymta.address import Host
from pymta.auth.configured import client_authenticators
from pymta.auth.expander import ExpansionError
from pymta.config.model import ConfigError
from pymta.config.option_tables import driver_options
from pymta.config.values import main_option
from pymta.drivers import register
from pymta.dscp import dscp_byte
from pymta.errnos import EximErrno
from pymta.expand.errors import ExpandDefer, ExpandError, ExpandFail
from pymta.hints.misc import MiscDB
from pymta.hints.pipe_connect import EhloCache
from pymta.i18n import address_to_alabel
from pymta.match import match_domain, match_host
from pymta.osutil import interface_for, tcp_port
from pymta.routing.hosts import local_addresses
from pymta.smtp import client as smtp_client
from pymta.smtp.bdat_client import mail_rcpt_bdat
from pymta.smtp.socks import SocksProxy, parse_socks_proxies
from pymta.tls.outbound import HostRequirements
from pymta.tls.session import TLSFacts
from pymta.transports import smtp_dnssec
from pymta.transports.base import Transport, TransportError, expand, set_results, split_list
from pymta.transports.content import body_size, write_message
from pymta.transports.dkim_sign import DkimSigning, signing_configured
from pymta.transports.filter import TransportFilter, TransportFilterFailed, transport_filter
from pymta.transports.smtp_auth import authenticate, mail_auth_parameter
from pymta.transports.smtp_dsn import mail_dsn_param, rcpt_dsn_param
from pymta.transports.smtp_events import (
    banner_event,
    cert_hook,
    connection_events,
    dane_tls_failed_event,
    dane_unusable_event,
    ehlo_event,
    host_defer_event,
    message_defer_event,
    rcpt_defer_events,
    tls_fallback_event,
)
from pymta.transports.smtp_security import OutboundSecurity
from pymta.transports.smtp_tls import (
    HostTLS,
    OutgoingTLS,
    SessionStore,
    TLSSetupError,
    out_variables,
    record_on_addresses,
)

#: Why an SMTPUTF8 message that may not be downconverted fails at a server without
#: SMTPUTF8 (Exim's wording).
UTF8_NOT_OFFERED = "utf8 support required but not offered for forwarding"

# Transports holding open connections; they say QUIT when the process exits normally.
_with_connections: "weakref.WeakSet[SmtpTransport]" = weakref.WeakSet()


@atexit.register
def _quit_all() -> None:
    for t in list(_with_connections):
        try:
            t.close_connections()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def is_local_address(ip: str, config: Any = None) -> bool:
    """True for loopback and wildcard addresses, addresses of local interfaces and
    literal IPs in hosts_treat_as_local (the router's ``self`` check uses the same set)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified or ip in local_addresses(config)


class _TryLimits:
    """hosts_max_try / hosts_max_try_hardlimit (spec 30.5): past the first limit only
    one address of each higher MX value is still tried, up to the hard limit."""

    def __init__(self, max_try: int, hard: int):
        self.max_try, self.hard = max_try, hard
        self.tried = 0
        self.last_mx = -1

    def may_try(self, host: Host) -> bool:
        if self.hard and self.tried >= self.hard:
            return False
        if self.max_try and self.tried >= self.max_try:
            if host.mx < 0 or host.mx <= self.last_mx:
                return False
        self.tried += 1
        self.last_mx = max(self.last_mx, host.mx)
        return True


def _parse_host_item(item: str) -> Host:
    """``name``, ``ip``, ``[ip]:port`` or ``name:port`` (after list-colon undoubling)."""
    if item.startswith("["):
        end = item.find("]")
        addr, rest = item[1:end], item[end + 1:]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        return Host(addr, addr, port)
    head, sep, tail = item.rpartition(":")
    if sep and tail.isdigit() and ":" not in head:
        item, port = head, int(tail)
    else:
        port = None
    try:
        ipaddress.ip_address(item)
        return Host(item, item, port)
    except ValueError:
        return Host(item, None, port)


def _set_tls_out(ctx: Any, facts: Any) -> None:
    """$tls_out_* for the rest of this delivery (emptied before each connection)."""
    if ctx is not None:
        ctx.variables.update(out_variables(facts))


def _tls_failed(addrs: list, message: str, errno: int) -> None:
    for a in addrs:
        a.result, a.message, a.basic_errno = "defer", message, errno


@register("transport", "smtp")
class SmtpTransport(Transport):
    """Remote delivery over SMTP with ESMTP PIPELINING, SIZE and 8BITMIME."""

    options = driver_options("transport", "smtp")
    is_local = False

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        if self.opt("transport_filter") and signing_configured(self):
            # Exim signs the filter's output; pymta signs the header block before it.
            raise ConfigError(f"transport_filter together with DKIM or ARC signing in "
                              f"the {self.name} transport is not supported")

    # -- configuration at delivery time --------------------------------------------
    def _port(self, ctx: Any) -> int:
        text = self.opt("port")
        protocol = self.opt("protocol")
        default = {"smtps": "465", "lmtp": "lmtp"}.get(protocol, "smtp")
        if protocol == "lmtp" and text == "smtp" and not self.is_set("port"):
            text = None         # the default port follows the protocol
        value = expand(text, ctx) if text else default
        try:
            return tcp_port(value)
        except ValueError:
            raise TransportError(f'TCP port "{value.strip()}" is not defined for {self.name} '
                                 "transport") from None

    def _uses_own_hosts(self, job: Any) -> bool:
        """Whether the ``hosts`` option is used (no hosts from the router, or
        ``hosts_override``) rather than the router's list."""
        from_router = bool(job.addresses and job.addresses[0].hosts)
        return bool(self.opt("hosts")) and (bool(self.opt("hosts_override")) or not from_router)

    def _hosts(self, job: Any, ctx: Any) -> list[Host]:
        from_router: list[Host] = list(job.addresses[0].hosts) if job.addresses else []
        if self._uses_own_hosts(job):
            text = expand(self.opt("hosts"), ctx)
            hosts = [_parse_host_item(i) for i in split_list(text)]
            if self.opt("hosts_randomize"):
                random.shuffle(hosts)
            return hosts
        if not from_router:
            raise TransportError(f"{self.name} transport called with no hosts set")
        return from_router

    def _resolve(self, host: Host, default_port: int, ctx: Any = None) -> list[Host]:
        """Hosts with an address each (a name may have several).  A name this transport
        looks up itself goes to the DNS asking for DNSSEC as dnssec_request_domains /
        dnssec_require_domains say (raising smtp_dnssec.InsecureHostLookup), else to the
        system resolver."""
        port = host.port or default_port
        if host.address:
            return [Host(host.name, host.address, port, host.mx, dnssec=host.dnssec)]
        if ctx is not None:
            found = smtp_dnssec.lookup(host, port, smtp_dnssec.policy(
                lambda option, name: self._domain_in(option, name, ctx)),
                qualify_single=self.opt("dns_qualify_single") is not False,
                search_parents=bool(self.opt("dns_search_parents")))
            if found:
                return found
        try:
            infos = socket.getaddrinfo(host.name, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        out, seen = [], set()
        for info in infos:
            ip = str(info[4][0])
            if ip not in seen:
                seen.add(ip)
                out.append(Host(host.name, ip, port, host.mx))
        return out

    def _message_size(self, job: Any, header: bytes) -> int:
        body = body_size(job.data_path)
        lines = header.count(b"\n") - 1      # the blank separator line is not counted
        try:
            lines += int(job.message.variables.get("body_linecount", "0"))
        except ValueError:
            pass
        return len(header) + body + lines + int(self.opt("size_addition"))

    @staticmethod
    def _is_8bit(job: Any) -> bool:
        m = job.message
        return ("8bitmime" in m.flags or "body_8bitmime" in m.flags
                or m.variables.get("body_8bitmime") in ("8", "1"))

    def rcpt_address(self, a: Any) -> str:
        """The address RCPT TO names for ``a`` (with its affixes if so configured)."""
        return self._rcpt(a)

    def _rcpt(self, a: Any) -> str:
        return str(a.rcpt_address(bool(self.opt("rcpt_include_affixes"))))

    # -- delivery --------------------------------------------------------------
    def deliver(self, job: Any) -> None:
        addrs = list(job.addresses)
        for a in addrs:
            a.result, a.message, a.basic_errno = None, None, 0
            a.chunking_used = False
        try:
            ctx = self.context(job, addrs[0] if addrs else None)
            limit = int(self.opt("message_linelength_limit") or 0)
            longest = int(job.message.variables.get("max_received_linelength", "0") or 0)
            if limit > 0 and longest > limit:
                set_results(addrs, "fail", "message has lines too long for transport",
                            EximErrno.UNKNOWNERROR)
                return
            hosts = self._hosts(job, ctx)
            port = self._port(ctx)
            self._socks_proxies(ctx)        # a bad socks_proxy defers before any host
            helo = expand(self.opt("helo_data"), ctx) or socket.gethostname()
            utf8_mode = self._utf8_downconvert(job, ctx)
            dkim = DkimSigning(self, job, ctx)
            header = dkim.apply(self.header_block(job, ctx))
            self.check_size_limit(job, ctx, len(header) + body_size(job.data_path))
        except TransportError as e:
            set_results(addrs, e.result, e.message, e.errno)
            return
        except Exception as e:  # noqa: BLE001 - expansion failures defer
            set_results(addrs, "defer", str(e), EximErrno.EXPANDFAIL)
            return

        pending = addrs
        tried_any = False
        security = self._security(job, ctx)
        # As in Exim, only hosts from this transport's own hosts/fallback_hosts are
        # checked for being this host; a router's hosts were checked by its "self" option.
        own_hosts = self._uses_own_hosts(job)
        fallback: list[Host] = []
        if self.opt("fallback_hosts"):
            fallback = [_parse_host_item(i) for i in split_list(self.opt("fallback_hosts"))]
        limits = _TryLimits(int(self.opt("hosts_max_try") or 0),
                            int(self.opt("hosts_max_try_hardlimit") or 0))
        for n, h in enumerate([*hosts, *fallback]):
            if n == len(hosts) and fallback:
                # Fallback hosts only get what is still deferred after the main list.
                pending = [a for a in pending if a.result in (None, "defer")]
                if not pending:
                    break
            try:
                resolved = self._resolve(h, port, ctx)
            except smtp_dnssec.InsecureHostLookup as exc:
                for a in pending:
                    a.result, a.basic_errno = "defer", EximErrno.UNKNOWNHOST
                    a.message = str(exc)
                continue
            if not resolved:
                for a in pending:
                    a.result, a.basic_errno = "defer", EximErrno.UNKNOWNHOST
                    a.message = f"all hosts for '{a.domain}' have been failed" \
                        if tried_any else f"unknown host {h.name}"
                continue
            for host in resolved:
                if not pending:
                    break
                tried_any = True
                if (own_hosts or n >= len(hosts)) and not self.opt("allow_localhost") \
                        and is_local_address(host.address or "", self.config):
                    for a in pending:
                        a.result = "defer"
                        a.basic_errno = EximErrno.HOST_IS_LOCAL
                        a.message = f"{self.name} transport found host {h.name} to be local"
                    continue
                if n < len(hosts) and not limits.may_try(host):
                    continue            # hosts_max_try: left for a later attempt
                req = security.requirements(host, pending[0].domain, host.port or port)
                if not req.use_host:
                    # DANE cannot be satisfied / MTA-STS forbids this MX: not contacted.
                    self._log_main(job, f"H={host.name} [{host.address}]: {req.message}")
                    _tls_failed(pending, req.message, req.errno)
                    dane_unusable_event(self, job, host, req,
                                        self.host_in("hosts_require_dane", host, ctx), ctx)
                    continue
                serial = self._serialize(job, host, pending, ctx)
                if serial is False:
                    continue
                try:
                    self._deliver_to_host(job, host, pending, helo, header, ctx, req,
                                          keep_open=serial is None, utf8_mode=utf8_mode,
                                          dkim=dkim)
                finally:
                    if serial:
                        MiscDB(job.spool_dir, job.log).release(serial)
                pending = [a for a in pending if a.result == "defer"]
        for a in pending:
            if a.result is None:
                a.result, a.message = "defer", a.message or "no usable hosts"
        message_defer_event(self, job, addrs, ctx)

    def connect_for(self, job: Any) -> tuple[Any, Host, Any] | None:
        """Open a session to the first usable host of ``job``'s first address, as a
        delivery would (banner, EHLO, STARTTLS, AUTH): (client, host, context), or None
        when no host could be reached.  For a cutthrough delivery, which then runs the
        transaction itself while the message is still being received.  Not with DKIM
        signing, which needs the whole message before it sends the header (as in
        Exim)."""
        if signing_configured(self):
            return None
        addrs = list(job.addresses)
        try:
            ctx = self.context(job, addrs[0] if addrs else None)
            hosts = self._hosts(job, ctx)
            port = self._port(ctx)
            helo = expand(self.opt("helo_data"), ctx) or socket.gethostname()
        except Exception:  # noqa: BLE001 - no cutthrough; the delivery reports it later
            return None
        for h in hosts:
            try:
                resolved = self._resolve(h, port, ctx)
            except smtp_dnssec.InsecureHostLookup:
                continue
            for host in resolved:
                try:
                    cl = self._open_connection(job, host, helo, addrs, ctx)
                except (smtp_client.SmtpError, OSError):
                    continue
                if cl is not None:
                    for a in addrs:
                        a.host_used = host
                    return cl, host, ctx
                return None         # the host answered and refused: no fallback now
        return None

    def _filter(self, job: Any, host: Host, ctx: Any) -> TransportFilter | None:
        """transport_filter for delivery to ``host`` ($host and $host_address set); it
        runs as the transport's user, by default the Exim user."""
        if not self.opt("transport_filter"):
            return None
        hctx = ctx.child(host=host.name or host.address or "",
                         host_address=host.address or "") if ctx is not None else None
        return transport_filter(self, job, hctx, self.delivery_ids(hctx, job.addresses[0]))

    def message_writer(self, job: Any, ctx: Any) -> Any:
        """``writer(sock) -> bytes written`` that sends ``job``'s message as this
        transport delivers it (headers as delivered, dot-stuffed, final dot)."""
        header = self.header_block(job, ctx)

        def writer(sock: socket.socket) -> int:
            return write_message(sock, header, job.data_path, use_crlf=True,
                                 dot_stuff=True, end_dot=True,
                                 body_only=self.opt("body_only"),
                                 headers_only=self.opt("headers_only"))
        return writer

    def _utf8_downconvert(self, job: Any, ctx: Any) -> int | None:
        """How an SMTPUTF8 message's envelope goes out (None: not an SMTPUTF8 message).

        1: always in A-label form; -1: in A-label form when the server does not offer
        SMTPUTF8; 0: never converted, so a server without SMTPUTF8 cannot take it.  The
        transport's utf8_downconvert, when it expands to something, overrides the ACL's
        control = utf8_downconvert (kept in the spool as Exim keeps it)."""
        flags = job.message.flags
        if "smtputf8" not in flags:
            return None
        text = expand(self.opt("utf8_downconvert") or "", ctx).strip()
        if not text:
            return 1 if "utf8_downcvt" in flags else -1 if "utf8_optdowncvt" in flags else 0
        if text not in ("1", "0", "-1"):
            raise TransportError(f'bad value "{text}" for utf8_downconvert '
                                 f"in {self.name} transport", "defer", EximErrno.EXPANDFAIL)
        return int(text)

    def _security(self, job: Any, ctx: Any) -> OutboundSecurity:
        """DANE and MTA-STS decisions for this delivery (smtp_security)."""
        return OutboundSecurity(
            self.opt, lambda option, host: self.host_in(option, host, ctx),
            spool_dir=job.spool_dir,
            dnssec_ok=int(main_option(self.config, "dns_dnssec_ok", -1) or -1),
            log=getattr(job, "log", None))

    def _domain_in(self, option: str, name: str, ctx: Any) -> bool:
        """Whether host ``name`` matches the domain list in ``option`` (unset: no)."""
        text = self.opt(option)
        if not text:
            return False
        try:
            return match_domain(name.lower(), text, ctx)
        except Exception:  # noqa: BLE001 - a lookup defer: behave as not listed
            return False

    def host_in(self, option: str, host: Host, ctx: Any) -> bool:
        """Whether ``host`` matches the host list in ``option`` (unset: no)."""
        text = self.opt(option)
        if not text:
            return False
        try:
            return match_host(host.address, host.name, text, ctx)
        except Exception:  # noqa: BLE001 - a lookup defer: behave as not listed
            return False

    def _source_address(self, host: Host, ctx: Any) -> tuple[str, int] | None:
        """The ``interface`` option: the first address of the host's IP family."""
        text = self.opt("interface")
        if not text:
            return None
        return interface_for(split_list(expand(text, ctx)), host.address or "")

    def _client(self, source: tuple[str, int] | None = None, ctx: Any = None,
                job: Any = None) -> Any:
        return smtp_client.SmtpClient(connect_timeout=self.opt("connect_timeout"),
                                      socks=self._socks_proxies(ctx),
                                      on_socks_failure=lambda text: self._log_main(job, text),
                                      command_timeout=self.opt("command_timeout"),
                                      data_timeout=self.opt("data_timeout"),
                                      final_timeout=self.opt("final_timeout"),
                                      source_address=source,
                                      nodelay=bool(self.opt("tcp_nodelay")),
                                      keepalive=self.opt("keepalive") is not False,
                                      dscp=self._dscp(ctx) if ctx is not None else None)

    def _socks_proxies(self, ctx: Any) -> list[SocksProxy]:
        """socks_proxy, expanded: the SOCKS5 proxies to connect through (none: direct)."""
        text = self.opt("socks_proxy")
        if not text:
            return []
        try:
            return parse_socks_proxies(expand(text, ctx))
        except ExpandError as e:
            raise TransportError(f"failed to expand socks_proxy in {self.name} "
                                 f"transport: {e}", "defer", EximErrno.EXPANDFAIL) from None
        except ValueError as e:
            raise TransportError(f"{e} in {self.name} transport", "defer",
                                 EximErrno.EXPANDFAIL) from None

    def _dscp(self, ctx: Any) -> int | None:
        """The dscp option (expanded): the TOS byte, or None (unset, empty or not a
        value Exim knows: then nothing is marked, as in Exim)."""
        raw = self.opt("dscp")
        if not raw:
            return None
        try:
            return dscp_byte(expand(str(raw), ctx))
        except (ExpandError, ExpandFail, ExpandDefer):
            return None                 # unmarked, as Exim when the value is unusable

    # -- connection reuse ----------------------------------------------------------
    # A long-lived delivery worker keeps the connection to a host open after a message
    # and starts the next message to the same host with RSET instead of a new
    # connect + EHLO.  Idle connections are closed with QUIT after REUSE_IDLE seconds.
    REUSE_IDLE = 30.0

    def _cache(self) -> dict:
        if not hasattr(self, "_open"):
            self._open: dict[tuple, list] = {}   # key -> [client, last_used, count, pid]
            _with_connections.add(self)
        return self._open

    def close_connections(self, idle_only: bool = False) -> None:
        """QUIT cached connections (all, or only those idle for too long)."""
        now = time.monotonic()
        for key, entry in list(self._cache().items()):
            if entry[3] != os.getpid():
                # Inherited across fork: the parent owns the conversation; just drop it.
                del self._cache()[key]
                entry[0].sock = None
            elif not idle_only or now - entry[1] > self.REUSE_IDLE:
                del self._cache()[key]
                entry[0].quit()

    def _reuse(self, key: tuple) -> tuple[Any, int] | None:
        entry = self._cache().pop(key, None)
        if entry is None or entry[3] != os.getpid():
            return None
        cl, _last, count, _pid = entry
        try:
            if cl.rset().ok():
                return cl, count
        except smtp_client.SmtpError:
            pass
        cl.close()
        return None

    def _release(self, key: tuple, cl: Any, count: int) -> None:
        limit = int(self.opt("connection_max_messages") or 0)
        if limit and count >= limit:
            cl.quit()
            return
        old = self._cache().pop(key, None)
        if old is not None and old[3] == os.getpid():
            old[0].quit()
        self._cache()[key] = [cl, time.monotonic(), count, os.getpid()]

    def _tls(self) -> OutgoingTLS:
        if not hasattr(self, "_outgoing_tls"):
            self._outgoing_tls = OutgoingTLS(self)
        return self._outgoing_tls

    def _open_connection(self, job: Any, host: Host, helo: str, addrs: list,
                         ctx: Any, req: HostRequirements | None = None) -> Any | None:
        """Connect, read the banner, say hello and start TLS as the options say; None
        after a negative reply or a TLS problem (the addresses then have their result)."""
        policy = self._tls().for_host(host, ctx)
        if req is not None:
            policy.apply(req)
        try_tls = not policy.avoid
        smtps = self.opt("protocol") == "smtps"      # TLS from the first byte, no fallback
        port = host.port or (465 if smtps else 25)
        while True:
            _set_tls_out(ctx, None)
            cl = self._client(self._source_address(host, ctx), ctx, job)
            connection_events(self, job, cl, host, ctx)
            if smtps:
                wrap, facts, resume_key = self._tls_wrapper(job, host, port, policy, ctx)
                try:
                    banner = cl.connect(host.address, port, tls_on_connect=wrap)
                except TLSSetupError as e:
                    dane_tls_failed_event(self, job, host, req, ctx)
                    _tls_failed(addrs, e.message, e.errno)
                    return None
                self._tls_up(job, cl, facts[0], resume_key, req, ctx)
            else:
                early = self._early_ehlo(job, host, port, helo, ctx)
                banner = cl.connect(host.address, port, early_line=early)
            if not banner.ok():
                self._host_reply_error(addrs, "initial connection", banner)
                cl.quit()
                return None
            banner_event(self, job, cl, host, banner, ctx)
            if not smtps and early:
                reply, cmd = cl.early_ehlo_reply(early), early
                if reply.kind == "5":
                    reply, cmd = cl.helo(helo), f"HELO {helo}"
            else:
                reply, cmd = self._hello(cl, host, helo, ctx)
            ehlo_event(self, job, host, reply, cmd, ctx)
            if not smtps:
                self._remember_ehlo(job, host, port, helo, cl, reply, ctx)
            if not reply.ok():
                self._host_reply_error(addrs, cmd, reply)
                cl.quit()
                return None
            offered = cl.has("STARTTLS")
            if try_tls and offered and not cl.tls:
                wrap, facts, resume_key = self._tls_wrapper(job, host, port, policy, ctx,
                                                            ehlo=reply)
                try:
                    reply = cl.starttls(wrap)
                except TLSSetupError as e:
                    cl.close()
                    dane_tls_failed_event(self, job, host, req, ctx)
                    if policy.require or not policy.tryclear:
                        _tls_failed(addrs, e.message, e.errno)
                        return None
                    # As Exim: the connection is in an unknown state; a new one in clear.
                    tls_fallback_event(self, job, host, addrs, e.message, e.errno, ctx)
                    self._log_main(job, f"{e.message}: delivering unencrypted to "
                                        f"H={host.name} [{host.address}] "
                                        "(not in hosts_require_tls)")
                    try_tls = False
                    continue
                if reply.code == 220:
                    self._tls_up(job, cl, facts[0], resume_key, req, ctx)
                    reply, cmd = self._hello(cl, host, helo, ctx)
                    ehlo_event(self, job, host, reply, cmd, ctx)
                    if not reply.ok():
                        self._host_reply_error(addrs, cmd, reply)
                        cl.quit()
                        return None
                elif reply.kind == "4" and not policy.tryclear:
                    self._host_reply_error(addrs, "STARTTLS", reply)
                    cl.quit()
                    return None
                # 5xx (or 4xx with tls_tempfail_tryclear): go on in clear if allowed
            if not cl.tls and req is not None and req.sts_testing:
                self._log_main(job, req.pkix_failed("no TLS session"))
            if not cl.tls and policy.require:
                why = ("an attempt to start TLS failed" if offered and try_tls
                       else "the server did not offer TLS support")
                err = smtp_client.SmtpError(f"a TLS session is required, but {why}",
                                            EximErrno.TLSREQUIRED)
                self._log_host_error(job, host, err)
                _tls_failed(addrs, err.message, err.errno)
                cl.quit()
                return None
            if not self._authenticate(job, cl, host, addrs, ctx):
                return None
            return cl

    def _authenticate(self, job: Any, cl: Any, host: Host, addrs: list, ctx: Any) -> bool:
        """hosts_require_auth / hosts_try_auth (after STARTTLS, as Exim); False when the
        addresses were deferred and the connection closed."""
        require = self.host_in("hosts_require_auth", host, ctx)
        attempt = self.host_in("hosts_try_auth", host, ctx)
        if not (require or attempt):
            return True
        res = authenticate(cl, host, client_authenticators(self.config), ctx,
                           require=require, attempt=attempt,
                           log_main=lambda text: self._log_main(job, text))
        if res.reply is not None:                   # a 4xx: try this host later
            self._host_reply_error(addrs, res.command, res.reply)
            cl.quit()
            return False
        if res.errno:
            _tls_failed(addrs, res.message, res.errno)
            cl.quit()
            return False
        if res.ok:
            cl.facts["auth"] = res
        return True

    def _tls_wrapper(self, job: Any, host: Host, port: int, policy: HostTLS, ctx: Any,
                     ehlo: smtp_client.SmtpReply | None = None) -> tuple[Any, list, str]:
        """The TLS wrap for this host (offering a stored session under
        tls_resumption_hosts), the list its facts arrive in, and the session's key."""
        stored, resume_key = self._stored_session(job, host, port, policy, ctx, ehlo)
        wrap, facts = self._tls().wrapper(host, policy, ctx, float(self.opt("command_timeout")),
                                          session=stored,
                                          on_cert=cert_hook(self, job, host, ctx))
        return wrap, facts, resume_key

    def _tls_up(self, job: Any, cl: Any, facts: TLSFacts, resume_key: str,
                req: HostRequirements | None, ctx: Any) -> None:
        """A handshake succeeded (STARTTLS or smtps): keep its facts for the log lines
        and $tls_out_*, and report what DANE / MTA-STS testing want reported."""
        cl.facts["tls"] = facts
        if resume_key:
            cl.facts["resume_key"] = resume_key
        _set_tls_out(ctx, facts)
        if req is not None and req.dane is not None and ctx is not None:
            ctx.variables["tls_out_tlsa_usage"] = str(req.dane.tlsa_usage)
        if req is not None and req.sts_testing and not facts.certificate_verified:
            self._log_main(job, req.pkix_failed("certificate not verified"))

    def _sessions(self, job: Any) -> SessionStore:
        return SessionStore(job.spool_dir, self.name, getattr(job, "log", None))

    def _stored_session(self, job: Any, host: Host, port: int, policy: HostTLS, ctx: Any,
                        ehlo: smtp_client.SmtpReply | None = None) -> tuple[Any, str]:
        """tls_resumption_hosts: the session stored for ``host`` (or None) and its key."""
        if not policy.resume:
            return None, ""
        store = self._sessions(job)
        sni = (policy.security.sni if policy.security is not None else None) or ""
        key = store.key(host, port, sni, self._server_name(policy, ehlo, ctx))
        try:
            return store.load(key, self._tls().context_for(policy, ctx)), key
        except Exception:  # noqa: BLE001 - a hint, never a reason not to deliver
            return None, key

    def _server_name(self, policy: HostTLS, ehlo: smtp_client.SmtpReply | None,
                     ctx: Any) -> str:
        """host_name_extract: the name of the server behind a load balancer, taken from
        its EHLO reply ($item) so that a stored session is offered to that server only.
        There is no EHLO before TLS on an smtps connection, so nothing then."""
        text = self.opt("host_name_extract")
        if not text or ehlo is None or ctx is None:
            return ""
        try:
            return str(expand(text, ctx.child(**policy.variables, item=ehlo.text)))
        except ExpandFail:
            return ""

    def _save_session(self, job: Any, cl: Any) -> None:
        """Keep the (possibly renewed) session of a TLS connection for next time."""
        key = cl.facts.get("resume_key")
        conn = getattr(cl.sock, "conn", None)
        if key and conn is not None:
            try:
                self._sessions(job).save(key, conn)
            except Exception:  # noqa: BLE001 - a hint
                pass

    def _pipe_connect_host(self, host: Host, ctx: Any) -> bool:
        return self.opt("protocol") != "lmtp" and \
            self.host_in("hosts_pipe_connect", host, ctx) and \
            not self.host_in("hosts_avoid_esmtp", host, ctx)

    def _ehlo_cache(self, job: Any) -> EhloCache:
        expire = int(main_option(self.config, "retry_data_expire", 7 * 86400))
        return EhloCache(job.spool_dir, getattr(job, "log", None), expire)

    def _early_ehlo(self, job: Any, host: Host, port: int, helo: str, ctx: Any) -> str:
        """"EHLO name" to send before the banner (PIPECONNECT), or "": only to hosts in
        hosts_pipe_connect whose EHLO reply offered PIPECONNECT last time."""
        if not self._pipe_connect_host(host, ctx):
            return ""
        try:
            cached = self._ehlo_cache(job).get(host.address or "", port, helo)
        except Exception:  # noqa: BLE001 - a hint: without it, wait for the banner
            return ""
        return f"EHLO {helo}" if cached else ""

    def _remember_ehlo(self, job: Any, host: Host, port: int, helo: str, cl: Any,
                       reply: Any, ctx: Any) -> None:
        """Keep (or drop) the EHLO reply of a hosts_pipe_connect host for next time."""
        if not self._pipe_connect_host(host, ctx):
            return
        try:
            cache = self._ehlo_cache(job)
            if reply.ok() and cl.has("PIPECONNECT"):
                cache.put(host.address or "", port, helo, list(reply.lines))
            else:
                cache.forget(host.address or "", port, helo)
        except Exception:  # noqa: BLE001 - a hint; the delivery goes on
            pass

    def _hello(self, cl: Any, host: Host, helo: str, ctx: Any) -> tuple[Any, str]:
        if self.opt("protocol") == "lmtp":
            return cl.lhlo(helo), f"LHLO {helo}"
        if self.host_in("hosts_avoid_esmtp", host, ctx):
            return cl.helo(helo), f"HELO {helo}"
        return cl.hello(helo)

    @staticmethod
    def _log_main(job: Any, text: str) -> None:
        log = getattr(job, "log", None)
        if log is None:
            return
        try:
            log.main(text, job.message.id)
        except Exception:  # noqa: BLE001 - logging must not change the outcome
            pass

    def _serialize(self, job: Any, host: Host, addrs: list, ctx: Any) -> Any:
        """serialize_hosts: one connection at a time to a listed host.  Returns the
        misc-hints key held (release it after the delivery), None for a host not
        listed, or False when another process is delivering there (the addresses
        stay deferred)."""
        if not self.host_in("serialize_hosts", host, ctx):
            return None
        key = f"tpt-serialize-{host.name}:{host.address}:{host.port or 25}"
        if MiscDB(job.spool_dir, job.log).acquire(key, 1):
            return key
        for a in addrs:
            if a.result is None:
                a.result, a.basic_errno = "defer", EximErrno.UNKNOWNERROR
                a.message = (f"host {host.name} [{host.address}] is in use by another "
                              "delivery (serialize_hosts)")
        return False

    def _deliver_to_host(self, job: Any, host: Host, addrs: list, helo: str,
                         header: bytes, ctx: Any = None,
                         req: HostRequirements | None = None,
                         keep_open: bool = True, utf8_mode: int | None = None,
                         dkim: DkimSigning | None = None) -> None:
        """Try one host; every address in ``addrs`` ends with a result.  With
        ``keep_open`` false the connection is closed afterwards (serialize_hosts);
        ``utf8_mode`` is :meth:`_utf8_downconvert`'s answer; ``dkim`` signs the
        header block when it has to be built again here."""
        try:
            tf = self._filter(job, host, ctx)
        except TransportError as e:
            # before any connection, and logged without a host (as Exim does)
            set_results(addrs, e.result, e.message, e.errno)
            for a in addrs:
                a.host_used = None
            return
        for a in addrs:
            a.host_used = host
        key = (host.address, host.port or 25, helo)
        self.close_connections(idle_only=True)
        reused = self._reuse(key)
        cl, count = reused if reused else (None, 0)
        for a in addrs:
            a.continued_connection = cl is not None
            a.sending_interface = cl.local if cl is not None else None
            a.sending_proxy = cl.proxy if cl is not None else None
        proctitle.delivering_to_host(job.message.id, host.name, host.address)
        # Exim 4.96 writes its per-host log line for host errors, except for timeouts
        # once the message transaction has started (those only reach the address lines).
        setup = cl is None
        try:
            if cl is None:
                cl = self._open_connection(job, host, helo, addrs, ctx, req)
                if cl is None:
                    host_defer_event(self, job, host, addrs, ctx)
                    return
            setup = False
            for a in addrs:
                a.sending_interface = cl.local
                a.sending_proxy = cl.proxy
            record_on_addresses(addrs, cl.facts.get("tls"))
            _set_tls_out(ctx, cl.facts.get("tls"))
            authenticated = cl.facts.get("auth")
            for a in addrs:
                a.authenticator = authenticated.name if authenticated else ""
                a.auth_id = authenticated.auth_id if authenticated else ""
            try:
                auth_param = mail_auth_parameter(self, ctx, authenticated is not None,
                                                 job.message.variables)
            except ExpansionError as e:
                _tls_failed(addrs, str(e), EximErrno.EXPANDFAIL)
                self._release(key, cl, count)
                return
            if cl.facts:
                # headers_add may name $tls_out_*: Exim expands it while writing the
                # message, after the session has started.
                try:
                    rebuilt = self.header_block(job, ctx)
                except Exception:  # noqa: BLE001 - it expanded before; keep that result
                    rebuilt = None
                if rebuilt is not None:
                    try:
                        header = dkim.apply(rebuilt) if dkim is not None else rebuilt
                    except TransportError as e:
                        _tls_failed(addrs, e.message, e.errno)
                        self._release(key, cl, count)
                        return
            offered = cl.has("SMTPUTF8")
            if utf8_mode == 0 and not offered:
                for a in addrs:
                    a.result, a.message, a.basic_errno = "fail", UTF8_NOT_OFFERED, 0
                self._log_main(job, f"H={host.name} [{host.address}]: {UTF8_NOT_OFFERED}")
                self._release(key, cl, count)
                return
            # Downconvert when told to, or when the server cannot take UTF-8 (-1).
            downconvert = utf8_mode == 1 or (utf8_mode == -1 and not offered)
            utf8 = utf8_mode is not None and not downconvert
            rp = self.return_path(job)
            if downconvert:
                rp = address_to_alabel(rp)
            size = self._message_size(job, header) if self.opt("size_addition") >= 0 else None
            body8 = self._is_8bit(job)
            max_rcpt = int(self.opt("max_rcpt") or 0) or len(addrs)
            pipelining = not self.host_in("hosts_avoid_pipelining", host, ctx)
            # BDAT instead of DATA when the server offers CHUNKING (never for LMTP).
            # A filter's output has no size known in advance: no BDAT then (as Exim).
            chunking = self.opt("protocol") != "lmtp" and cl.has("CHUNKING") \
                and self.host_in("hosts_try_chunking", host, ctx) and tf is None
            try_prdr = self.host_in("hosts_try_prdr", host, ctx)
            for start in range(0, len(addrs), max_rcpt):
                chunk = addrs[start:start + max_rcpt]
                if start:
                    cl.rset()
                # PRDR's per-recipient verdicts come after DATA: with several
                # recipients for a PRDR server, DATA is used even where BDAT could be.
                prdr = try_prdr and len(chunk) > 1 and cl.has("PRDR")
                if chunking and not prdr:
                    self._bdat_transaction(cl, job, chunk, rp, size, body8, header,
                                           pipelining, auth_param, utf8=utf8,
                                           downconvert=downconvert)
                    continue
                self._transaction(cl, job, chunk, rp, size, body8, header, pipelining,
                                  auth_param, utf8=utf8, downconvert=downconvert,
                                  try_prdr=try_prdr, transport_filter=tf)
            rcpt_defer_events(self, job, host, addrs, ctx)
            self._save_session(job, cl)
            if (cl.tls and self.host_in("hosts_nopass_tls", host, ctx)) or not keep_open:
                cl.quit()           # no further message down this session
            else:
                self._release(key, cl, count + 1)
        except smtp_client.SmtpError as e:
            if setup or not isinstance(e, smtp_client.SmtpTimeout):
                self._log_host_error(job, host, e)
            # A timeout after connecting is a plain "timeout" for retry rules, not the
            # "timeout_connect" that ETIMEDOUT alone would suggest.
            kind = "timeout" if isinstance(e, smtp_client.SmtpTimeout) else None
            for a in addrs:
                if a.result in (None, "defer"):
                    a.result, a.message, a.basic_errno = "defer", e.message, e.errno
                    if kind and hasattr(a, "error_kind"):
                        a.error_kind = kind
            if cl is not None:
                cl.close()
            host_defer_event(self, job, host, addrs, ctx)
        except OSError as e:
            for a in addrs:
                if a.result in (None, "defer"):
                    a.result, a.message = "defer", e.strerror or str(e)
                    a.basic_errno = e.errno or EximErrno.UNKNOWNERROR
            if cl is not None:
                cl.close()
            host_defer_event(self, job, host, addrs, ctx)
        except TransportFilterFailed as e:
            # The message is half sent: the connection is dropped without the final
            # dot, so the server discards it; the message stays queued (Exim's text).
            message = "SMTP timeout after sending data block" if e.timed_out else e.text()
            for a in addrs:
                if a.result in (None, "defer"):
                    a.result, a.message, a.basic_errno = "defer", message, e.errno
                    if e.timed_out and hasattr(a, "error_kind"):
                        a.error_kind = "timeout"
            if cl is not None:
                cl.close()

    @staticmethod
    def _log_host_error(job: Any, host: Host, e: Any) -> None:
        """The main-log line Exim writes for each failing host (besides the address
        lines the delivery code writes)."""
        log = getattr(job, "log", None)
        if log is None or not getattr(job, "log_host_errors", False):
            return
        where = f"H={host.name} [{host.address}]"
        if isinstance(e, smtp_client.SmtpConnectError):
            text = f"{where} {getattr(e, 'log_text', e.message)}"
        elif isinstance(e, smtp_client.SmtpTimeout):
            text = f"{where}: {e.message}: Connection timed out"
        else:
            text = f"{where}: {e.message}"
        try:
            log.main(text, job.message.id)
        except Exception:  # noqa: BLE001 - logging must not change the outcome
            pass

    @staticmethod
    def _error_text(stage: str, reply: Any) -> str:
        return f"SMTP error from remote mail server after {stage}: {reply.text}"

    def _host_reply_error(self, addrs: list, stage: str, reply: Any) -> None:
        # A bad greeting or HELO is a problem with the host: defer and try the next one.
        for a in addrs:
            a.result, a.message = "defer", self._error_text(stage, reply)
            a.basic_errno, a.more_errno = 0, reply.code

    def _envelope_commands(self, cl: Any, job: Any, chunk: list, rp: str, size: int | None,
                           body8: bool, auth_param: str, *, utf8: bool = False,
                           downconvert: bool = False,
                           prdr: bool = False) -> tuple[str, list[str]]:
        """MAIL and the RCPTs for ``chunk`` (DATA and BDAT alike): SMTPUTF8 or A-label
        addresses, the DSN requests for a server that offers DSN (RFC 3461), LMTP's
        IGNOREQUOTA.  Clears each address's result."""
        rcpts = []
        dsn = cl.has("DSN")
        for a in chunk:
            a.result = None
            a.dsn_aware = "yes" if dsn else "no"
            rcpt = self._rcpt(a)
            if downconvert:
                converted = address_to_alabel(rcpt)
                a.sent_as = converted if converted != rcpt else ""
                rcpt = converted
            rcpts.append(rcpt)
        ignore_quota = self.opt("protocol") == "lmtp" and self.opt("lmtp_ignore_quota") \
            and cl.has("IGNOREQUOTA")
        mail = cl.mail_command(rp, size=size, body_8bit=body8, auth_param=auth_param,
                               dsn_param=mail_dsn_param(job.message, chunk) if dsn else "",
                               smtputf8=utf8, prdr=prdr)
        return mail, cl.rcpt_commands(rcpts, "IGNOREQUOTA" if ignore_quota else "",
                                      [rcpt_dsn_param(a) for a in chunk] if dsn else None)

    def _envelope_results(self, chunk: list, t: Any) -> list | None:
        """Results from the replies to MAIL and the RCPTs (DATA and BDAT alike): the
        accepted addresses, or None when MAIL failed (every address then has its
        result).  Exim names the commands without a "pipelined" prefix even when they
        were pipelined."""
        if not t.mail.ok():
            res = "fail" if t.mail.kind == "5" else "defer"
            for a in chunk:
                a.result = res
                a.message = self._error_text(t.mail_command, t.mail)
                a.basic_errno = 0 if res == "fail" else EximErrno.MAIL4XX
                a.more_errno = t.mail.code
            return None
        accepted = []
        for a, r, cmd in zip(chunk, t.rcpts, t.rcpt_commands):
            if r.ok():
                accepted.append(a)
                continue
            a.result = "fail" if r.kind == "5" else "defer"
            a.message = self._error_text(cmd, r)
            a.basic_errno = 0 if a.result == "fail" else EximErrno.RCPT4XX
            a.more_errno = r.code
        return accepted

    def _bdat_transaction(self, cl: Any, job: Any, chunk: list, rp: str, size: int | None,
                          body8: bool, header: bytes, pipelining: bool,
                          auth_param: str, *, utf8: bool = False,
                          downconvert: bool = False) -> None:
        """One transaction with BDAT (CHUNKING): the replies decide each address.  The
        envelope carries what a DATA transaction's does (no PRDR: its replies are
        DATA's)."""
        mail, rcpts = self._envelope_commands(cl, job, chunk, rp, size, body8, auth_param,
                                              utf8=utf8, downconvert=downconvert)
        body_only, headers_only = self.opt("body_only"), self.opt("headers_only")
        header_len = 0 if body_only else len(header.replace(b"\n", b"\r\n"))

        sent = [0]

        def write(sink: Any) -> None:
            sent[0] = write_message(sink, header, job.data_path, use_crlf=True,
                                    body_only=body_only, headers_only=headers_only)

        t = mail_rcpt_bdat(cl, mail, rcpts, write, header_len, pipelining)
        accepted = self._envelope_results(chunk, t)
        if accepted is None:
            return
        final = t.final
        if final is None:
            return
        for a in accepted:
            a.chunking_used = True
            if final.ok():
                a.result, a.message, a.basic_errno = "ok", None, 0
                a.smtp_confirmation = final.text
                a.delivered_size = sent[0]
            else:
                a.result = "fail" if final.kind == "5" else "defer"
                a.message = self._error_text(t.stage, final)
                a.basic_errno = 0 if a.result == "fail" else EximErrno.DATA4XX
                a.more_errno = final.code

    def _transaction(self, cl: Any, job: Any, chunk: list, rp: str, size: int | None,
                     body8: bool, header: bytes, pipelining: bool = True,
                     auth_param: str = "", *, utf8: bool = False,
                     downconvert: bool = False, try_prdr: bool = False,
                     transport_filter: TransportFilter | None = None) -> None:
        """One MAIL/RCPT/DATA transaction.  ``utf8`` adds SMTPUTF8 to MAIL;
        ``downconvert`` sends the recipients in A-label form (logged as sent);
        ``try_prdr`` asks a server that offers PRDR for per-recipient replies;
        the message goes through ``transport_filter`` when there is one."""
        prdr = try_prdr and len(chunk) > 1 and cl.has("PRDR")
        mail, rcpt_lines = self._envelope_commands(cl, job, chunk, rp, size, body8,
                                                   auth_param, utf8=utf8,
                                                   downconvert=downconvert, prdr=prdr)
        t = cl.transaction(mail, rcpt_lines, pipelining=pipelining)
        accepted = self._envelope_results(chunk, t)
        if accepted is None:
            if t.data is not None and t.data.code == 354:
                cl.send_data(lambda s: (s.sendall(b".\r\n"), 3)[1])
            return
        if t.data is None:
            return
        if t.data.code != 354:
            res = "fail" if t.data.kind == "5" else "defer"
            for a in accepted:
                a.result = res
                a.message = self._error_text("DATA", t.data)
                a.basic_errno = 0 if res == "fail" else EximErrno.DATA4XX
                a.more_errno = t.data.code
            return
        if not accepted:
            # Pipelined DATA was accepted although every RCPT failed: send an empty
            # message so the server's state is clean, and ignore its reply.
            cl.send_data(lambda s: (s.sendall(b".\r\n"), 3)[1])
            return

        def writer(sock: socket.socket) -> int:
            return write_message(sock, header, job.data_path, use_crlf=True,
                                 dot_stuff=True, end_dot=True,
                                 body_only=self.opt("body_only"),
                                 headers_only=self.opt("headers_only"),
                                 transport_filter=transport_filter)

        final, written = cl.send_data(writer)
        lmtp = self.opt("protocol") == "lmtp"
        per_recipient = lmtp
        if prdr and final.code == 353:
            # PRDR: a reply for each accepted recipient, then one for the message
            per_recipient = True
            final = cl.read_reply("end of data", cl.final_timeout)
        overall = None
        for i, a in enumerate(accepted):
            if per_recipient and i:
                # LMTP and PRDR: one reply after the data for each accepted recipient
                final = cl.read_reply("end of data", cl.final_timeout)
            if prdr and per_recipient and i == len(accepted) - 1:
                overall = cl.read_reply("end of data", cl.final_timeout)
            if final.ok():
                a.result, a.message, a.basic_errno = "ok", None, 0
                a.smtp_confirmation = final.text
                a.delivered_size = written
            else:
                self._data_failed(a, final)
        if overall is not None and not overall.ok():
            # the message as a whole was refused after the per-recipient replies
            for a in accepted:
                if a.result == "ok":
                    self._data_failed(a, overall)

    def _data_failed(self, a: Any, reply: Any) -> None:
        """The server refused ``a`` after the message data."""
        a.result = "fail" if reply.kind == "5" else "defer"
        a.message = self._error_text("end of data", reply)
        a.basic_errno = 0 if a.result == "fail" else EximErrno.DATA4XX
        a.more_errno = reply.code
