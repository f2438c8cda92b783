"""What this pymta can do, said the way Exim says it: the ``Support for:`` line of
``-bV`` and the builtin macros a configuration tests with ``.ifdef``.

Exim defines, before reading its configuration, a macro for each facility of its
build (``_HAVE_SPF``, ``_HAVE_TLS`` ...), each driver (``_DRIVER_ROUTER_DNSLOOKUP``),
each log_selector item (``_LOG_SMTP_CONNECTION``), each ACL condition and modifier
(``_ACL_COND_SPF``) and each option (``_OPT_MAIN_SMTPUTF8_ADVERTISE_HOSTS``,
``_OPT_ROUTERS_DOMAINS``, ``_OPT_TRANSPORT_SMTP_HOSTS_REQUIRE_TLS``); all have the
value ``y``.  Configurations such as Debian's use them to leave out what a build
lacks: without them pymta would silently skip, say, the SPF check that Debian's
CHECK_RCPT_SPF guards with ``.ifdef _HAVE_SPF``.  pymta defines them from its own
tables, so an option or driver it refuses has no macro, as in an Exim build without
it.
"""
from __future__ import annotations

import functools
import socket

from OpenSSL import SSL

from pymta import drivers
from pymta.acl import parse as acl_tables
from pymta.acl.scanconfig import SUPPORTED_SCANNERS
from pymta.config import option_tables
from pymta.config.dkim_macros import DKIM_MACROS
from pymta.config.unsupported import (
    UNSUPPORTED_GENERIC,
    UNSUPPORTED_MAIN,
    UNSUPPORTED_PRIVATE,
)
from pymta.log import LOG_SELECTORS_ALWAYS, LOG_SELECTORS_SUPPORTED
from pymta.lookups import QUERY_STYLE, SINGLE_KEY

#: (word on -bV's "Support for:" line, name after _HAVE_), in Exim's order.
FEATURES: tuple[tuple[str, str], ...] = (
    ("crypteq", "CRYPTEQ"),
    ("IPv6", "IPV6"),
    ("OpenSSL", "OPENSSL"),
    ("TLS_resume", "TLS_RESUME"),
    ("Content_Scanning", "CONTENT_SCANNING"),
    ("DANE", "DANE"),
    ("DKIM", "DKIM"),
    ("DMARC", "DMARC"),
    ("DNSSEC", "DNSSEC"),
    ("Event", "EVENT"),
    ("I18N", "I18N"),
    ("OCSP", "OCSP"),
    ("PIPECONNECT", "PIPE_CONNECT"),
    ("PRDR", "PRDR"),
    ("PROXY", "PROXY"),
    ("SOCKS", "SOCKS"),
    ("SPF", "SPF"),
    ("SRS", "SRS"),
    ("Experimental_ARC", "ARC"),
)

#: Further _HAVE_ macros that have no word of their own on the -bV line.
_MORE_HAVE = ("TLS", "TLS_ALPN", "TLS_OCSP", "NATIVE_SRS",
              "TRANSPORT_APPEND_MAILDIR", "TRANSPORT_APPEND_MAILSTORE")

# pymta's lookup types by the Exim lookup module that provides them (_HAVE_LOOKUP_*).
_LOOKUP_MODULE = {"wildlsearch": "LSEARCH", "nwildlsearch": "LSEARCH",
                  "iplsearch": "LSEARCH", "dbmnz": "DBM", "dbmjz": "DBM",
                  "ldapdn": "LDAP", "ldapm": "LDAP", "spf": ""}

_KIND_WORDS = {"router": ("ROUTERS", "ROUTER"), "transport": ("TRANSPORTS", "TRANSPORT"),
               "authenticator": ("AUTHENTICATORS", "AUTHENTICATOR")}


def _features() -> list[tuple[str, str]]:
    return [(word, have) for word, have in FEATURES if have != "IPV6" or socket.has_ipv6]


def support_words() -> list[str]:
    """The words of -bV's ``Support for:`` line."""
    return [word for word, _ in _features()]


def _name(text: str) -> str:
    return text.upper().replace("-", "_")


def _have_macros() -> list[str]:
    names = [have for _, have in _features()] + list(_MORE_HAVE)
    if hasattr(SSL, "TLS1_3_VERSION"):
        names.append("TLS1_3")
    for lookup in sorted(SINGLE_KEY | QUERY_STYLE):
        module = _LOOKUP_MODULE.get(lookup, _name(lookup))
        if module:
            names.append(f"LOOKUP_{module}")
    names += [f"MALWARE_{_name(s)}" for s in SUPPORTED_SCANNERS]
    return sorted(set(names))


def _option_macros() -> list[str]:
    names = [f"_OPT_MAIN_{_name(n)}" for n in option_tables.main_options_table()
             if n not in UNSUPPORTED_MAIN]
    for kind, (generic, private) in _KIND_WORDS.items():
        refused = UNSUPPORTED_GENERIC.get(kind, {})
        names += [f"_OPT_{generic}_{_name(n)}" for n in option_tables.generic_options(kind)
                  if n not in refused]
        for driver in drivers.all_drivers(kind):
            names.append(f"_DRIVER_{private}_{_name(driver)}")
            own = option_tables.driver_options(kind, driver).keys() \
                - option_tables.generic_options(kind).keys()
            refused_here = UNSUPPORTED_PRIVATE.get((kind, driver), {})
            names += [f"_OPT_{private}_{_name(driver)}_{_name(n)}" for n in own
                      if n not in refused_here]
    return names


@functools.cache
def _builtin_macros() -> tuple[tuple[str, str], ...]:
    return tuple(_collect().items())


def builtin_macros() -> dict[str, str]:
    """Every builtin macro this pymta defines, with its value."""
    return dict(_builtin_macros())


def _collect() -> dict[str, str]:
    macros = {f"_HAVE_{name}": "y" for name in _have_macros()}
    macros.update({f"_LOG_{_name(s)}": "y"
                   for s in sorted(LOG_SELECTORS_SUPPORTED | LOG_SELECTORS_ALWAYS | {"all"})})
    macros.update({f"_ACL_COND_{_name(c)}": "y" for c in sorted(acl_tables.ACL_CONDITIONS)})
    macros.update({f"_ACL_MOD_{_name(m)}": "y" for m in sorted(acl_tables.ACL_MODIFIERS)})
    macros.update({name: "y" for name in sorted(_option_macros())})
    macros["_CRYPTO_HASH_SHA3"] = "y"
    macros.update(DKIM_MACROS)
    return macros
