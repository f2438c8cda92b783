"""Import, while still root, every module a process may need after it becomes exim_user.

When the Python installation (or pymta itself) is not readable by exim_user, say an
interpreter under /root, an import after the switch fails.  Modules already imported
need no file access, so a root process that will switch imports beforehand: every pymta
module, every module pymta's source names (many imports are inside functions), the
modules other libraries import lazily (dnspython's record types, email's generator,
codecs), and nothing more.  Where exim_user can read them this is skipped.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys

import pymta
from pymta.daemon.util import EximIds, exim_effective

#: Lazily imported by the standard library or by dependencies, not named in pymta.
LAZY_MODULES = (
    "email.generator", "email.feedparser", "email.parser", "email.policy",
    "email.headerregistry", "email._header_value_parser", "email.contentmanager",
    "email.mime.text", "email.mime.multipart", "email.mime.base", "email.iterators",
    "encodings.idna", "encodings.punycode", "encodings.ascii", "encodings.latin_1",
    "encodings.utf_8", "encodings.utf_16", "stringprep", "unicodedata",
    "encodings.raw_unicode_escape",     # email.header.decode_header (RFC 2047 words)
    "traceback", "linecache", "tokenize", "ssl", "hmac", "hashlib", "secrets",
    "ipaddress", "uuid", "random", "calendar", "locale", "selectors", "grp", "pwd",
)
#: Packages imported whole: they load submodules on first use (dns.rdtypes.IN.MX ...).
LAZY_PACKAGES = ("dns",)
#: pymta's command-line tools with entry points of their own (pymta-dumpdb, pymta-qgrep
#: ...): no process that switches to exim_user runs them, and they bring click (1 MB of
#: the daemon master's heap, shared by every child).
NOT_PRELOADED = ("pymta.admin", "pymta.cli.what", "pymta.cli.qgrep", "pymta.cli.qsumm")

_IMPORT_RE = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_][\w.]*)[ \t]+import[ \t]+([^#\n(]*)"
                        r"|import[ \t]+([^#\n]+))", re.M)


def readable_by(ids: EximIds) -> bool:
    """True when exim_user can read the Python library and pymta's package."""
    places = [os.path.dirname(os.__file__), os.path.dirname(pymta.__file__)]
    with exim_effective(ids):
        return all(os.access(p, os.R_OK | os.X_OK, effective_ids=True) for p in places)


def _try_import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:       # optional dependencies, names that are not modules
        pass


def _wanted(name: str) -> bool:
    return not any(name == n or name.startswith(n + ".") for n in NOT_PRELOADED)


def _walk(package: str) -> None:
    try:
        pkg = importlib.import_module(package)
    except Exception:
        return
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), package + ".",
                                      onerror=lambda name: None):
        if _wanted(info.name):
            _try_import(info.name)


def _named_in_source(path: str) -> set[str]:
    """Module names in the import statements of a source file (at any depth)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return set()
    names: set[str] = set()
    for m in _IMPORT_RE.finditer(text):
        if m.group(1):
            names.add(m.group(1))
            for item in m.group(2).split(","):
                word = item.strip().split(" ")[0]
                if word.isidentifier():
                    names.add(f"{m.group(1)}.{word}")     # may be a submodule
        else:
            for item in m.group(3).split(","):
                word = item.strip().split(" ")[0]
                if word:
                    names.add(word)
    return names


def preload_all() -> None:
    """Import everything pymta may import later (see the module docstring)."""
    _walk("pymta")
    names: set[str] = set(LAZY_MODULES)
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if name.startswith("pymta") and path:
            names |= _named_in_source(path)
    for name in sorted(names):
        if name not in sys.modules:
            _try_import(name)
    for package in LAZY_PACKAGES:
        _walk(package)


def preload_for(ids: EximIds | None) -> None:
    """Before switching to ``ids``: import everything unless exim_user can read it."""
    if ids is not None and not readable_by(ids):
        preload_all()
