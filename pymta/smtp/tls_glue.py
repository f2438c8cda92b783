"""STARTTLS and TLS on connect for :class:`~pymta.smtp.session.SmtpSession` (a mixin).

The TLS work is done by :mod:`pymta.tls`; this module connects it to the dialogue:

- EHLO advertises STARTTLS to hosts in tls_advertise_hosts when the configuration has a
  server certificate (:func:`pymta.tls.serverconf.server_tls`), never under TLS;
- the STARTTLS command gets Exim's replies: ``501 unexpected argument data``, ``503
  STARTTLS command used when not advertised`` (also after a new EHLO under TLS), the
  acl_smtp_starttls verdict, ``454 TLS currently unavailable`` when the certificate
  options cannot be used for this connection, ``220 TLS go ahead``; a STARTTLS under
  TLS before the new EHLO gets ``554 Already in TLS`` and every command but QUIT then
  ``554 Security failure``;
- the handshake itself runs in :meth:`TlsGlue.tls_wrap_socket`, called by the socket
  loop after the 220 (the server has thrown away any plaintext pipelined after the
  command): it is timed out after smtp_receive_timeout, a failure is logged as Exim's
  ``TLS error on connection from ... (SSL_accept): ...``;
- afterwards the session starts again (HELO/EHLO required, message state reset) and the
  ``$tls_in_*`` variables hold the facts of the session.
"""
from __future__ import annotations

import socket
from typing import Any, Callable

from pymta.config.values import main_option as _main
from pymta.events import main_event, server_cert_hook
from pymta.metrics import counters as metrics
from pymta.smtp.limits import receive_timeout
from pymta.smtp.server import Reply, SmtpServer
from pymta.taint import taint
from pymta.tls.certinfo import pem_text
from pymta.tls.channel import HandshakeError, TlsChannel, accept
from pymta.tls.errors import TLSConfigError
from pymta.tls.server import ServerTLS, VerifyMode
from pymta.tls.serverconf import server_tls, tls_on_connect_port
from pymta.tls.session import TLSFacts, session_facts, tls_variables

# Session variables the certificate options may use (passed on for SNI re-expansion).
_OPTION_VARIABLES = ("received_port", "received_ip_address", "interface_address",
                     "interface_port", "sender_host_address", "smtp_active_hostname")


class TlsGlue:
    """Mixin: the STARTTLS command and the TLS state of one SMTP connection."""

    config: Any
    log: Any
    ctx: Any
    server: SmtpServer | None
    local_caller: Any
    host_ident: Callable[..., str]             # PeerFacts
    _run: Callable[..., Any]                   # AclChecks
    _reply: Callable[..., Reply]               # AclChecks
    _log_reject: Callable[..., None]           # AclChecks
    _reset_message: Callable[[], None]         # SmtpSession

    tls_facts: TLSFacts | None = None
    _tls_by_starttls = False
    _server_tls: ServerTLS | None = None
    _host_in: Callable[[str, str | None], bool]

    # ------------------------------------------------------------------ set-up
    def install_tls(self, server: SmtpServer, host_in: Callable[[str, str | None], bool]) -> None:
        """Offer STARTTLS on ``server`` when the configuration has a certificate.

        ``host_in(option, default)`` matches the client against a host-list option."""
        self.ctx.variables.update(tls_variables(None, "in"))
        if self.local_caller is not None:
            return                     # -bs: standard input cannot carry TLS
        if not str(_main(self.config, "tls_advertise_hosts", "*") or "").strip():
            # offered to nobody: no certificate is needed, and STARTTLS gets Exim's 503
            server.extra_commands["STARTTLS"] = self._starttls
            return
        try:
            self._server_tls = server_tls(self.config)
        except TLSConfigError as exc:
            # The daemon's master checked this before starting; -bh may lack the spool.
            self.log.main(f"TLS unavailable: {exc}")
            return
        self._host_in = host_in
        server.extra_commands["STARTTLS"] = self._starttls
        if host_in("tls_advertise_hosts", "*"):
            server.extensions.append("STARTTLS")

    def _option_variables(self) -> dict[str, str]:
        v = self.ctx.variables
        return {k: str(v[k]) for k in _OPTION_VARIABLES if k in v}

    # ------------------------------------------------------------------ STARTTLS
    def _starttls(self, server: SmtpServer, arg: str) -> None:
        if arg:
            server.synprot_error(501, "unexpected argument data")
            return
        if server.tls_active and self._tls_by_starttls and server.helo_name is None:
            # STARTTLS again before the EHLO that must follow the handshake: Exim still
            # counts it as advertised, refuses it, and refuses everything but QUIT after.
            self.log.main(f"TLS error on connection from {self.host_ident(with_h=False)} "
                          "(STARTTLS received after TLS started): ")
            server.send_reply(Reply(554, "Already in TLS"))
            server.refuse_until_quit("Security failure")
            return
        if server.tls_active or not (server.esmtp and server.helo_name is not None
                                     and "STARTTLS" in server.extensions):
            server.synprot_error(503, "STARTTLS command used when not advertised")
            return
        if _main(self.config, "acl_smtp_starttls"):
            res = self._run("acl_smtp_starttls", "starttls")
            if res.verdict != "accept":
                self._log_reject("STARTTLS", res, with_sender=False)
                server.send_reply(self._reply(res, "starttls"))
                return
        # An implied RSET: nothing said before the handshake survives it.
        self._reset_message()
        server.reset_transaction()
        assert self._server_tls is not None
        try:
            self._server_tls.context_for(self._option_variables())
        except Exception as exc:     # TLSConfigError, or an expansion that failed
            self.log.main(f"TLS error on connection from {self.host_ident(with_h=False)} "
                          f"({exc})")
            server.send_reply(Reply(454, "TLS currently unavailable"))
            return
        server.send_reply(Reply(220, "TLS go ahead"))
        server.start_tls()
        self._tls_by_starttls = True

    # ------------------------------------------------------------------ TLS on connect
    def tls_on_connect(self, port: int) -> bool:
        """Is ``port`` (the one the client connected to) in tls_on_connect_ports?"""
        return self._server_tls is not None and tls_on_connect_port(self.config, port)

    def start_tls_on_connect(self, server: SmtpServer, start: Callable[[], bool]) -> bool:
        """Handshake before the banner (the "submissions" port 465); ``start()`` runs it
        on the connection.  False when it failed (logged): the connection is over."""
        if not start():
            server.closed = True
            return False
        server.tls_started()
        return True

    # ------------------------------------------------------------------ the handshake
    def _verify_mode(self) -> VerifyMode:
        if self._host_in("tls_verify_hosts", None):
            return VerifyMode.REQUIRED
        if self._host_in("tls_try_verify_hosts", None):
            return VerifyMode.TRY
        return VerifyMode.NONE

    def tls_wrap_socket(self, sock: socket.socket) -> TlsChannel:
        """The socket loop's TlsWrap: handshake on ``sock``; raise OSError on failure."""
        assert self._server_tls is not None
        timeout = receive_timeout(self.config, self.ctx, self.log) or 300.0
        try:
            conn = self._server_tls.connection(
                sock, self._option_variables(), self._verify_mode(),
                resumption=self._host_in("tls_resumption_hosts", None),
                on_cert=server_cert_hook(self.config, self.ctx, self.log))
            channel = accept(conn, sock, timeout)
        except (HandshakeError, TLSConfigError) as exc:
            main_event(self.config, "tls:fail:connect", self.ctx,
                       data=f"(SSL_accept): {exc}", log=self.log)
            self.log.main(f"TLS error on connection from {self.host_ident(with_h=False)} "
                          f"(SSL_accept): {exc}")
            raise OSError(str(exc)) from None
        facts = session_facts(conn)
        if not facts.alpn and self._host_in("hosts_require_alpn", None):
            # Exim: the handshake is done, but without an agreed application protocol
            # the session is given up (pymta closes it without the TLS alert Exim sends).
            self.log.main(f"TLS error on connection from {self.host_ident(with_h=False)} "
                          "(handshake): ALPN required but not negotiated")
            raise OSError("ALPN required but not negotiated")
        self.tls_started(facts)
        return channel

    def tls_started(self, facts: TLSFacts) -> None:
        """TLS is up: record its facts; the client must say HELO/EHLO again."""
        self.tls_facts = facts
        metrics.tls_session("inbound", facts.version)
        v = self.ctx.variables
        v.update(tls_variables(facts, "in"))
        v["tls_in_sni"] = taint(facts.sni)
        v["tls_in_peerdn"] = taint(facts.peerdn)
        if facts.peer_cert is not None:
            v["tls_in_peercert"] = taint(pem_text(facts.peer_cert))
        if facts.our_cert is not None:
            v["tls_in_ourcert"] = pem_text(facts.our_cert)
        v["sender_helo_name"] = ""
        remembered = self.server is not None and self.server.tls_remember_esmtp and \
            self.server.esmtp and self._tls_by_starttls
        v["received_protocol"] = "esmtps" if remembered else "smtps"
        if self.server is not None and "STARTTLS" in self.server.extensions:
            self.server.extensions.remove("STARTTLS")
        if not self._tls_by_starttls:
            self._reset_message()    # STARTTLS reset it just before the handshake


