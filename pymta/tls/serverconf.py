"""The server TLS of one configuration: main options read, contexts built once per process.

The daemon's master calls :func:`check_server_tls` before it forks its receivers: the
contexts of options that do not depend on the connection are built there (so a bad
certificate stops the start with a message naming the option, and every receiver shares
the session-ticket keys, see :mod:`.tickets`), and :func:`server_tls` in a receiver
returns the same object.  ``pymta -bV`` runs the same check.
"""
from __future__ import annotations

from typing import Any

from ..config.values import main_option
from ..expand import ExpandContext, ExpandError
from .errors import TLSConfigError
from .expander import ContextExpander
from .server import ServerTLS, ServerTLSOptions

# Per configuration object (a reload makes a new one); inherited by forked processes.
_CACHE: dict[int, tuple[Any, ServerTLS | None]] = {}


def _opt(config: Any, name: str, default: str | None = None) -> str | None:
    value = main_option(config, name, None)
    return default if value is None else str(value)


def server_options(config: Any) -> ServerTLSOptions | None:
    """The main TLS options of ``config``; None when tls_certificate is unset (no TLS)."""
    cert = _opt(config, "tls_certificate")
    if not cert:
        return None
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


def server_tls(config: Any) -> ServerTLS | None:
    """This process's :class:`ServerTLS` for ``config`` (None: TLS not configured)."""
    hit = _CACHE.get(id(config))
    if hit is not None and hit[0] is config:
        return hit[1]
    options = server_options(config)
    tls = None
    if options is not None:
        tls = ServerTLS(options, ContextExpander(ExpandContext(config=config)))
    _CACHE[id(config)] = (config, tls)
    return tls


def _static(text: str | None) -> bool:
    return text is None or "$" not in text


def check_server_tls(config: Any) -> None:
    """Build the contexts of ``config`` now (master, ``-bV``).

    Raises :class:`TLSConfigError` naming the option for an unusable certificate, key,
    cipher list, DH or curve setting.  Options that expand per connection (they mention
    a variable) are only expanded when a client asks for TLS; their contexts are built
    then, and a failure then answers STARTTLS with 454.
    """
    tls = server_tls(config)
    if tls is None:
        return
    o = tls.options
    if not all(_static(t) for t in (o.certificate, o.privatekey, o.ocsp_file)):
        return
    try:
        tls.prepare({})
    except ExpandError as exc:
        raise TLSConfigError(f"tls_certificate: expansion failed: {exc}") from None
