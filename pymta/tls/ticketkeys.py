"""Setting a server context's session-ticket keys (``SSL_CTX_set_tlsext_ticket_keys``).

A fleet of nodes behind one MX resumes each other's TLS sessions only if they all
encrypt tickets with the same keys.  OpenSSL sets them with ``SSL_CTX_ctrl(ctx,
SSL_CTRL_SET_TLSEXT_TICKET_KEYS, 80, keys)``, but neither pyOpenSSL nor cryptography's
bindings offer that call, and the OpenSSL inside cryptography's wheel does not export
its symbols.  The wheel's shared object does keep its symbol table, though, so the
function can still be found:

* where cryptography is linked against a shared libssl (a distribution's build), the
  dynamic loader finds ``SSL_CTX_ctrl`` through the binding module's dependencies;
* otherwise the module's ELF symbol table gives the function's offset, and the load
  address comes from a function the binding *does* export to Python: cffi's wrapper
  ``_cffi_d_<name>`` of two such functions must land exactly where the symbol table
  says, or nothing is called.

After setting, the keys are read back (``SSL_CTRL_GET_TLSEXT_TICKET_KEYS``) and must be
the ones given.  :func:`ticket_keys_settable` says whether this works in this
installation; when it does not, a configuration that asks for shared keys is refused.
"""
from __future__ import annotations

import ctypes
import functools
import struct
from collections.abc import Callable, Iterable

from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

#: key name (16 bytes), HMAC secret (32), AES key (32): OpenSSL 1.1 and 3.x.
TICKET_KEYS_LENGTH = 80

_SSL_CTRL_GET_TLSEXT_TICKET_KEYS = 58
_SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59
# Functions the binding exports whose cffi wrappers locate the module in memory.
_ANCHORS = ("SSL_CTX_new", "SSL_CTX_set_options")
_CTRL_TYPE = "long (*)(SSL_CTX *, int, long, void *)"

_Ctrl = Callable[[object, int, int, object], int]


class TicketKeysUnavailable(Exception):
    """This installation's OpenSSL cannot be given session-ticket keys."""


def _elf_symbols(path: str, wanted: Iterable[str]) -> dict[str, int]:
    """Values (offsets) of the defined symbols ``wanted`` in the ELF file's symbol
    table (SHT_SYMTAB); a name missing from the result is not defined there."""
    names = {n.encode() for n in wanted}
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise TicketKeysUnavailable(f"{path}: not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    found: dict[str, int] = {}
    for sh_type, offset, size, link, entsize in (
            (s[1], s[4], s[5], s[6], s[9]) for s in sections):
        if sh_type != 2 or not entsize:          # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, entsize):
            st_name, _info, _other, shndx, value, _size = struct.unpack_from(
                "<IBBHQQ", data, pos)
            if not shndx:                          # undefined here
                continue
            end = data.index(b"\0", strtab + st_name)
            name = data[strtab + st_name:end]
            if name in names:
                found[name.decode()] = value
    return found


def _address(function: object) -> int:
    ffi = Binding.ffi
    return int(ffi.cast("uintptr_t", ffi.cast("void *", function)))


def _from_symbol_table(module_path: str) -> int:
    wanted = ["SSL_CTX_ctrl"] + [f"_cffi_d_{a}" for a in _ANCHORS]
    symbols = _elf_symbols(module_path, wanted)
    missing = [w for w in wanted if w not in symbols]
    if missing:
        raise TicketKeysUnavailable(
            f"{module_path} has no symbol table entry for {', '.join(missing)}")
    bases = {_address(getattr(Binding.lib, a)) - symbols[f"_cffi_d_{a}"] for a in _ANCHORS}
    if len(bases) != 1:
        raise TicketKeysUnavailable(
            f"{module_path}: its functions are not where its symbol table puts them")
    return bases.pop() + symbols["SSL_CTX_ctrl"]


@functools.cache
def _ctrl() -> _Ctrl:
    rust = __import__("cryptography.hazmat.bindings._rust", fromlist=["_rust"])
    module_path = str(rust.__file__)
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(module_path), "SSL_CTX_ctrl"),
                              ctypes.c_void_p).value or 0
    except (AttributeError, OSError):
        address = _from_symbol_table(module_path)
    ctrl: _Ctrl = Binding.ffi.cast(_CTRL_TYPE, address)
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
