"""What pymta does not implement yet: naming it in the configuration is an error.

Exim refuses a configuration that names a driver it was built without; pymta does the same
for every Exim feature it does not act on, so nothing in a configuration is silently
ignored.  This module is the one place that says what is *known to Exim but not supported*:

* main options and driver options pymta never reads (:data:`UNSUPPORTED_MAIN`,
  :data:`UNSUPPORTED_GENERIC`, :data:`UNSUPPORTED_PRIVATE`).  Some of them are accepted
  when set to the one value that describes what pymta does anyway (for example
  ``prdr_enable = false``: pymta never offers PRDR); that value is given in the table;
* options that are truly no-ops in pymta's design, accepted with any value; each has the
  reason in :data:`IGNORED_MAIN`, :data:`IGNORED_GENERIC` and :data:`IGNORED_PRIVATE`;
* Exim drivers that are not built in: every driver of the option tables that has no
  registered class (:mod:`pymta.drivers`).

ACL conditions, modifiers and controls are in :mod:`pymta.acl.parse`; log_selector items in
:mod:`pymta.log`.  A name Exim does not know either keeps Exim's "unknown" error.
When a feature is implemented, remove its names from these tables.
"""
from __future__ import annotations

from typing import Any

from pymta.config.model import ConfigError
from pymta.config.ratelimit import check_ratelimit_option
from pymta.localips import parse_extra_local
from pymta.syslogger import MAX_PROCESSNAME, check_facility

NOT_SUPPORTED = "is not supported in this version of pymta"

#: Marks an option that no setting makes acceptable.
REJECT = object()


def _reject(names: str) -> dict[str, Any]:
    return {n: REJECT for n in names.split()}


# ---------------------------------------------------------------------------------------
# Main section
# ---------------------------------------------------------------------------------------
UNSUPPORTED_MAIN: dict[str, Any] = {
    # Features pymta does not have: accepted only when they say "off".
    "deliver_drop_privilege": False,
    "ldap_version": (-1, 3),                 # ldap3 speaks LDAP version 3 only
    "move_frozen_messages": False,
    "mua_wrapper": False,
    "perl_at_start": False, "perl_taintmode": False,
    "queue_fast_ramp": False,
    "smtp_backlog_monitor": 0,
    "spool_wireformat": False,
    **_reject("""
        gnutls_allow_auto_pkcs11 gnutls_compat_mode
        ibase_servers keep_malformed
        local_scan_path
        local_scan_timeout
        oracle_servers perl_startup
        process_log_path
        tcp_wrappers_daemon_name
    """),
}

#: Main options accepted with any value although pymta never reads them.
IGNORED_MAIN: dict[str, str] = {
    "debug_store": "a memory-debugging aid of Exim's C store allocator",
    "drop_cr": "obsolete; it has no effect in Exim 4 either",
    "finduser_retries": "a workaround for flaky NIS password lookups in Exim's C code; "
                        "pymta asks the system once",
    "lookup_open_max": "bounds Exim's cache of open lookup files; pymta keeps none open",
    "notifier_socket": "Exim's daemon notification socket; pymta's daemon has its own "
                       "private channel",
    "smtp_connect_backlog": "the listen() backlog: a kernel queue length that changes no "
                            "SMTP behaviour",
}


# ---------------------------------------------------------------------------------------
# Drivers: generic options (per kind) and private options (per driver)
# ---------------------------------------------------------------------------------------
UNSUPPORTED_GENERIC: dict[str, dict[str, Any]] = {
    "router": {},
    "transport": {},
    "authenticator": {},
}

_DEBUG_PRINT = "pymta's debug output does not trace authenticators yet"
IGNORED_GENERIC: dict[str, dict[str, str]] = {
    "router": {},
    "transport": {},
    "authenticator": {"debug_print": _DEBUG_PRINT, "server_debug_print": _DEBUG_PRINT},
}

_NO_TLS_PROXY = ("pymta never hands a TLS session to another process, so there is no "
                 "proxying to avoid")
_NO_CALLOUT_TLS = "applies to callouts, which never start TLS in pymta"

UNSUPPORTED_PRIVATE: dict[tuple[str, str], dict[str, Any]] = {
    # pymta's gsasl driver offers SCRAM-SHA-1/-256 only: no channel binding (-PLUS), and
    # no realm (SCRAM has none; Exim passes it to GSSAPI/DIGEST-MD5 through GNU SASL).
    ("authenticator", "gsasl"): {
        "server_channelbinding": False, "client_channelbinding": False,
        **_reject("server_realm"),
    },
    # queuefile copies the spool files as they are: there is no message to filter
    ("transport", "queuefile"): _reject("transport_filter"),
    ("transport", "appendfile"): {
        "mbx_format": False, "use_mbx_lock": False,
        **_reject("file_format"),
    },
    ("transport", "smtp"): {
        "gethostbyname": False,
        "hosts_try_fastopen": "",
    },
}

_SASL_HOST = ("names the Kerberos service principal for GNU SASL's GSSAPI mechanisms; "
              "the SCRAM mechanisms pymta's gsasl driver offers do not use it")
IGNORED_PRIVATE: dict[tuple[str, str], dict[str, str]] = {
    ("authenticator", "gsasl"): {"server_hostname": _SASL_HOST, "server_service": _SASL_HOST},
    ("transport", "smtp"): {
        "hosts_noproxy_tls": _NO_TLS_PROXY, "hosts_verify_avoid_tls": _NO_CALLOUT_TLS,
    },
}


# ---------------------------------------------------------------------------------------
# Checks used by the configuration reader
# ---------------------------------------------------------------------------------------
def _same(value: Any, accepted: Any) -> bool:
    """Does a typed option value equal the value pymta behaves as?"""
    if isinstance(accepted, str):
        return str(value if value is not None else "").strip() == accepted
    return value == accepted


def _show(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return f'"{value}"'


def _check(table: dict[str, Any], name: str, value: Any, what: str, file: str | None,
           line: int | None) -> None:
    if name not in table:
        return
    accepted = table[name]
    if accepted is REJECT:
        raise ConfigError(f'{what} "{name}" {NOT_SUPPORTED}', file, line)
    choices = accepted if isinstance(accepted, tuple) else (accepted,)
    if not any(_same(value, a) for a in choices):
        shown = " or ".join(_show(a) for a in choices)
        raise ConfigError(f'{what} "{name}" {NOT_SUPPORTED} (only {shown} '
                          "is accepted: that is what pymta does)", file, line)


#: av_scanner types of Exim 4.96 that pymta has no client for (sophie is long gone;
#: the others speak closed protocols there is nothing to test against).
UNSUPPORTED_AV_SCANNERS = frozenset(
    "avast aveserver drweb f-protd f-prot6d fsecure kavdaemon mksd sophie".split())


def check_scanner_option(name: str, value: Any, file: str | None, line: int | None) -> None:
    """An av_scanner type or a spamd_address variant pymta cannot use is refused when
    it is written literally (an expanded value is checked when the condition runs)."""
    text = str(value or "")
    if text.startswith("$"):
        return
    if name == "av_scanner" and text:
        kind = text.lstrip("<").split(":", 1)[0].strip().lower()
        if kind in UNSUPPORTED_AV_SCANNERS:
            raise ConfigError(f'av_scanner type "{kind}" {NOT_SUPPORTED}', file, line)
    elif name == "spamd_address" and "variant=rspamd" in text.lower():
        raise ConfigError(f'"variant=rspamd" in spamd_address {NOT_SUPPORTED}', file, line)


def check_main_option(name: str, value: Any, file: str | None, line: int | None) -> None:
    """Raise ConfigError when the main option ``name`` is known but not supported."""
    _check(UNSUPPORTED_MAIN, name, value, "main option", file, line)
    check_ratelimit_option(name, value, file, line)
    check_scanner_option(name, value, file, line)
    if name == "log_file_path":
        check_log_file_path(value, file, line)
    elif name == "queue_only_file":
        check_queue_only_file(value, file, line)
    elif name == "extra_local_interfaces":
        try:
            parse_extra_local(value)
        except ValueError as exc:
            raise ConfigError(str(exc), file, line) from None
    elif name in ("syslog_facility", "syslog_processname"):
        check_syslog_option(name, value, file, line)
    elif name == "log_selector":
        from pymta.log import check_log_selector
        check_log_selector(str(value or ""), file, line)
    elif name == "host_lookup_order":
        from pymta.hostname import parse_lookup_order
        try:
            parse_lookup_order(str(value or ""))
        except ValueError as exc:
            raise ConfigError(str(exc), file, line) from None


def check_log_file_path(value: Any, file: str | None, line: int | None) -> None:
    """log_file_path is a colon-separated list of at most two items (``syslog``, a path
    with %s, or empty): pymta refuses more rather than use the first as Exim does."""
    text = str(value or "")
    if "$" in text:
        return                    # checked when it is expanded
    items = text.split(":")
    if len(items) > 2:
        raise ConfigError(f'log_file_path "{text}" has more than two items (at most a path '
                          'and "syslog")', file, line)


def check_queue_only_file(value: Any, file: str | None, line: int | None) -> None:
    """queue_only_file: each item an absolute path, optionally after "smtp"."""
    text = str(value or "")
    for path in (p.strip() for p in text.split(":")):
        path = path.removeprefix("smtp")
        if path and not path.startswith("/"):
            raise ConfigError(f'queue_only_file item "{path}" is not an absolute path',
                              file, line)


def check_syslog_option(name: str, value: Any, file: str | None, line: int | None) -> None:
    """syslog_facility must name a facility; syslog_processname is at most 32 long."""
    text = str(value or "")
    if name == "syslog_facility":
        problem = check_facility(text) if value is not None else None
        if problem:
            raise ConfigError(problem, file, line)
    elif len(text) > MAX_PROCESSNAME:
        raise ConfigError(f'syslog_processname "{text}" is longer than {MAX_PROCESSNAME} '
                          "characters", file, line)


def check_driver_option(kind: str, driver: str, owner: str, name: str, value: Any,
                        file: str | None, line: int | None) -> None:
    """Raise ConfigError when a driver option is known but not supported.

    ``owner`` names the instance for the message ("transport remote_smtp").
    """
    what = f"{owner}: option"
    _check(UNSUPPORTED_GENERIC.get(kind, {}), name, value, what, file, line)
    _check(UNSUPPORTED_PRIVATE.get((kind, driver), {}), name, value, what, file, line)


def unsupported_driver_error(kind: str, inst_name: str, driver: str, file: str,
                             line: int) -> ConfigError:
    """The error for an Exim driver that is not built into pymta."""
    return ConfigError(f'{kind} {inst_name}: {kind} driver "{driver}" {NOT_SUPPORTED}',
                       file, line)
