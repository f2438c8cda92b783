"""The server TLS of one configuration: main options read, contexts built once per process.

The daemon's master calls :func:`check_server_tls` before it forks its receivers: the
contexts of options that do not depend on the connection are built there (so a bad
certificate stops the start with a message naming the option, and every receiver shares
the session-ticket keys, see :mod:`.tickets`), and :func:`server_tls` in a receiver
returns the same object.  ``pymta -bV`` runs the same check.
"""
from __future__ import annotations

import socket
from typing import Any

from ..config.model import ConfigError
from ..config.values import main_option
from ..expand import ExpandContext, ExpandError
from ..expand.lists import nonempty_items
from ..hints.store import settings_from
from ..osutil import tcp_port
from .errors import TLSConfigError
from .expander import ContextExpander
from .selfsigned import ensure_selfsigned
from .server import ServerTLS, ServerTLSOptions
from .ticketkeys import ticket_keys_settable

# Per configuration object (a reload makes a new one); inherited by forked processes.
_CACHE: dict[int, tuple[Any, ServerTLS]] = {}


def _opt(config: Any, name: str, default: str | None = None) -> str | None:
    value = main_option(config, name, None)
    return default if value is None else str(value)


def server_options(config: Any) -> ServerTLSOptions:
    """The main TLS options of ``config``.  Without tls_certificate, the self-signed
    certificate in the spool directory (made now if needed; TLSConfigError when it
    cannot be), as Exim 4.96 offers TLS with a self-signed certificate."""
    cert = _opt(config, "tls_certificate")
    if not cert:
        spool = _opt(config, "spool_directory") or "/var/spool/pymta"
        host = _opt(config, "primary_hostname") or socket.getfqdn()
        cert = ensure_selfsigned(spool, host)
    return ServerTLSOptions(
        certificate=cert,
        privatekey=_opt(config, "tls_privatekey"),
        require_ciphers=_opt(config, "tls_require_ciphers"),
        openssl_options=_opt(config, "openssl_options"),
        dhparam=_opt(config, "tls_dhparam"),
        dh_max_bits=int(main_option(config, "tls_dh_max_bits", 2236) or 0),
        eccurve=_opt(config, "tls_eccurve", "auto"),
        verify_certificates=_opt(config, "tls_verify_certificates", "system"),
        crl=_opt(config, "tls_crl"),
        alpn=_opt(config, "tls_alpn", "smtp : esmtp"),
        ocsp_file=_opt(config, "tls_ocsp_file"))


_ALL_PORTS_ON_CONNECT = False


def force_tls_on_connect() -> None:
    """``-tls-on-connect``: every port of this daemon behaves as if in tls_on_connect_ports
    (set in the master before it forks its receivers)."""
    global _ALL_PORTS_ON_CONNECT
    _ALL_PORTS_ON_CONNECT = True


def tls_on_connect_port(config: Any, port: int) -> bool:
    """Does TLS start before the banner on ``port``?"""
    return _ALL_PORTS_ON_CONNECT or port in on_connect_ports(config)


def on_connect_ports(config: Any) -> set[int]:
    """tls_on_connect_ports: where TLS starts before the banner (465, "submissions")."""
    return {tcp_port(p) for p in nonempty_items(_opt(config, "tls_on_connect_ports") or "")}


def server_tls(config: Any) -> ServerTLS:
    """This process's :class:`ServerTLS` for ``config`` (TLSConfigError: none can be had)."""
    hit = _CACHE.get(id(config))
    if hit is not None and hit[0] is config:
        return hit[1]
    tls = ServerTLS(server_options(config), ContextExpander(ExpandContext(config=config)))
    _CACHE[id(config)] = (config, tls)
    return tls


def forget_server_tls(config: Any) -> None:
    """Drop the cached :class:`ServerTLS` of ``config``, a configuration no longer used
    (the daemon's warm-up session)."""
    _CACHE.pop(id(config), None)


def _static(text: str | None) -> bool:
    return text is None or "$" not in text


def _check_shared_ticket_keys(config: Any) -> None:
    """A fleet sharing ``tls`` hints with resumption on shares its ticket keys, which
    needs an OpenSSL that takes keys from outside (see :mod:`.ticketkeys`)."""
    if not _opt(config, "tls_resumption_hosts"):
        return
    try:
        settings = settings_from(getattr(config, "main", None))
    except ConfigError:
        return                       # reported where the hints options are checked
    if settings is None or "tls" not in settings.databases:
        return
    why = ticket_keys_settable()
    if why is not None:
        raise TLSConfigError("hints_redis_databases: tls: the servers' session-ticket "
                             f"keys cannot be shared with this OpenSSL: {why}")


def check_server_tls(config: Any, *, daemon: bool = False) -> str | None:
    """Build the contexts of ``config`` now (master, ``-bV``).

    Without tls_certificate only the daemon (``daemon=True``), which owns the spool,
    makes the self-signed certificate; ``-bV`` checks nothing more then.  When that
    certificate cannot be made (a full or read-only spool) the daemon still runs,
    without STARTTLS: the reason is returned for the log.

    Raises :class:`TLSConfigError` naming the option for an unusable certificate, key,
    cipher list, DH or curve setting.  Options that expand per connection (they mention
    a variable) are only expanded when a client asks for TLS; their contexts are built
    then, and a failure then answers STARTTLS with 454.
    """
    try:
        on_connect_ports(config)
    except ValueError as exc:
        raise TLSConfigError(f"tls_on_connect_ports: {exc}") from None
    _check_shared_ticket_keys(config)
    if not _opt(config, "tls_certificate"):
        if not daemon:
            return None
        try:
            server_tls(config)
        except TLSConfigError as exc:
            return f"STARTTLS not offered: {exc}"
        return None
    tls = server_tls(config)
    o = tls.options
    if not all(_static(t) for t in (o.certificate, o.privatekey, o.ocsp_file)):
        return None
    try:
        tls.prepare({})
    except ExpandError as exc:
        raise TLSConfigError(f"tls_certificate: expansion failed: {exc}") from None
    return None
