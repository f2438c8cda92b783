"""Setting a server context's session-ticket keys (``SSL_CTX_set_tlsext_ticket_keys``).

A fleet of nodes behind one MX resumes each other's TLS sessions only if they all
encrypt tickets with the same keys.  OpenSSL sets them with ``SSL_CTX_ctrl(ctx,
SSL_CTRL_SET_TLSEXT_TICKET_KEYS, 80, keys)``, which neither pyOpenSSL nor
cryptography's bindings offer; :mod:`.hidden` finds it.

After setting, the keys are read back (``SSL_CTRL_GET_TLSEXT_TICKET_KEYS``) and must be
the ones given.  :func:`ticket_keys_settable` says whether this works in this
installation; when it does not, a configuration that asks for shared keys is refused.
"""
from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

from .hidden import HiddenFunctionUnavailable, hidden_function

#: key name (16 bytes), HMAC secret (32), AES key (32): OpenSSL 1.1 and 3.x.
TICKET_KEYS_LENGTH = 80

_SSL_CTRL_GET_TLSEXT_TICKET_KEYS = 58
_SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59
_CTRL_TYPE = "long (*)(SSL_CTX *, int, long, void *)"

_Ctrl = Callable[[object, int, int, object], int]


class TicketKeysUnavailable(Exception):
    """This installation's OpenSSL cannot be given session-ticket keys."""


def _ctrl() -> _Ctrl:
    try:
        ctrl: _Ctrl = hidden_function("SSL_CTX_ctrl", _CTRL_TYPE)
    except HiddenFunctionUnavailable as exc:
        raise TicketKeysUnavailable(str(exc)) from None
    return ctrl


def set_ticket_keys(ctx: SSL.Context, keys: bytes) -> None:
    """Make ``ctx`` encrypt and decrypt session tickets with ``keys`` (80 bytes);
    TicketKeysUnavailable when that cannot be done here."""
    if len(keys) != TICKET_KEYS_LENGTH:
        raise ValueError(f"session-ticket keys are {TICKET_KEYS_LENGTH} bytes, "
                         f"not {len(keys)}")
    ctrl = _ctrl()
    handle = ctx._context                       # pyOpenSSL's SSL_CTX pointer
    ffi = Binding.ffi
    if ctrl(handle, _SSL_CTRL_SET_TLSEXT_TICKET_KEYS, len(keys),
            ffi.from_buffer(keys)) != 1:
        raise TicketKeysUnavailable("OpenSSL refused the session-ticket keys")
    if get_ticket_keys(ctx) != keys:
        raise TicketKeysUnavailable("OpenSSL did not keep the session-ticket keys")


def get_ticket_keys(ctx: SSL.Context) -> bytes:
    """The session-ticket keys ``ctx`` uses now."""
    out = Binding.ffi.new("unsigned char[]", TICKET_KEYS_LENGTH)
    if _ctrl()(ctx._context, _SSL_CTRL_GET_TLSEXT_TICKET_KEYS, TICKET_KEYS_LENGTH,
               out) != 1:
        raise TicketKeysUnavailable("OpenSSL would not tell its session-ticket keys")
    return bytes(Binding.ffi.buffer(out))


def ticket_keys_settable() -> str | None:
    """None when session-ticket keys can be set in this installation, else why not."""
    try:
        set_ticket_keys(SSL.Context(SSL.TLS_SERVER_METHOD), bytes(range(80)))
    except (TicketKeysUnavailable, OSError) as exc:
        return str(exc)
    return None
