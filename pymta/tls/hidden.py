"""OpenSSL functions that cryptography's bindings do not offer to Python.

pyOpenSSL and cryptography expose only part of OpenSSL; a few calls pymta needs
(``SSL_CTX_ctrl`` to set session-ticket keys, ``SSL_ctrl`` to read the server's
Diffie-Hellman key) are missing, and the OpenSSL inside cryptography's wheel does not
export its symbols.  The wheel's shared object does keep its symbol table, so the
functions can still be found:

* where cryptography is linked against a shared libssl (a distribution's build), the
  dynamic loader finds them through the binding module's dependencies;
* otherwise the module's ELF symbol table gives a function's offset, and the load
  address comes from functions the binding *does* export to Python: cffi's wrappers
  ``_cffi_d_<name>`` of two of them must land exactly where the symbol table says, or
  nothing is called.

:func:`hidden_function` returns the function as a cffi function pointer of the given
C type, callable with the binding's own objects (``SSL_CTX *``, ``SSL *``).
"""
from __future__ import annotations

import ctypes
import functools
import struct
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.bindings.openssl.binding import Binding

# Functions the binding exports whose cffi wrappers locate the module in memory.
_ANCHORS = ("SSL_CTX_new", "SSL_CTX_set_options")


class HiddenFunctionUnavailable(Exception):
    """The function cannot be found in this installation's OpenSSL."""


def _elf_symbols(path: str, wanted: Iterable[str]) -> dict[str, int]:
    """Values (offsets) of the defined symbols ``wanted`` in the ELF file's symbol
    table (SHT_SYMTAB); a name missing from the result is not defined there."""
    names = {n.encode() for n in wanted}
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise HiddenFunctionUnavailable(f"{path}: not a 64-bit little-endian ELF file")
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


def _from_symbol_table(module_path: str, name: str) -> int:
    wanted = [name] + [f"_cffi_d_{a}" for a in _ANCHORS]
    symbols = _elf_symbols(module_path, wanted)
    missing = [w for w in wanted if w not in symbols]
    if missing:
        raise HiddenFunctionUnavailable(
            f"{module_path} has no symbol table entry for {', '.join(missing)}")
    bases = {_address(getattr(Binding.lib, a)) - symbols[f"_cffi_d_{a}"] for a in _ANCHORS}
    if len(bases) != 1:
        raise HiddenFunctionUnavailable(
            f"{module_path}: its functions are not where its symbol table puts them")
    return bases.pop() + symbols[name]


@functools.cache
def hidden_function(name: str, ctype: str) -> Any:
    """OpenSSL's function ``name`` as a cffi pointer of type ``ctype``;
    HiddenFunctionUnavailable when it cannot be found."""
    rust = __import__("cryptography.hazmat.bindings._rust", fromlist=["_rust"])
    module_path = str(rust.__file__)
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(module_path), name),
                              ctypes.c_void_p).value or 0
    except (AttributeError, OSError):
        address = _from_symbol_table(module_path, name)
    return Binding.ffi.cast(ctype, address)
