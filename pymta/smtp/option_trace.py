"""The +lists debug lines (and -bh comments) for the main options' host lists, in the
order and at the moments Exim 4.96 writes them: "host in OPTION? no (option unset)",
"... yes (matched "*")", "... no (end of list)".

pymta reads these options when it builds a session, in its own order; this module only
says what Exim says, at the points where Exim checks them: when the connection is set
up (before and after the host-name lookup) and at each EHLO.  :func:`checked_host_option`
is a real check that says so the same way (ignore_fromline_hosts, as a message's data
arrives).
"""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_option
from pymta.debuglog import debug
from pymta.match import match_host

#: Checked before the client's host name is looked up.
BEFORE_LOOKUP = ("hosts_connection_nolog", "host_lookup")
#: Checked when the session is set up, after the lookup.
AFTER_LOOKUP = ("host_reject_connection", "sender_unqualified_hosts",
                "recipient_unqualified_hosts", "helo_verify_hosts", "helo_try_verify_hosts",
                "helo_accept_junk_hosts", "hosts_proxy")
#: Checked once the connect ACL has accepted the connection.
AFTER_CONNECT = ("pipelining_connect_advertise_hosts",)
#: Checked for every EHLO, building the reply's extensions (auth_advertise_hosts only
#: when there are authenticators).
AT_EHLO = ("dsn_advertise_hosts", "pipelining_advertise_hosts", "auth_advertise_hosts",
           "chunking_advertise_hosts", "tls_advertise_hosts", "smtputf8_advertise_hosts")


def trace_host_options(session: Any, names: tuple[str, ...]) -> None:
    """Write Exim's line for each option of ``names`` that applies (nothing unless the
    +lists debug selector is on)."""
    if not debug.lists or not session.peer_ip:
        return
    config = session.config
    for name in names:
        if name == "auth_advertise_hosts" and not getattr(config, "authenticators", None):
            continue
        if name == "smtputf8_advertise_hosts" and \
                not main_option(config, "accept_8bitmime", True):
            continue
        value = main_option(config, name, None)
        if value is None:
            debug.printf(f"host in {name}? no (option unset)")
            continue
        try:
            match_host(session.peer_ip, session.ctx.variables.get("sender_host_name") or None,
                       str(value), session.ctx.child(), data_var="", option=name)
        except Exception as exc:  # noqa: BLE001 - a trace never changes the session
            debug.printf(f"host in {name}? error: {exc}")


def checked_host_option(session: Any, name: str) -> bool:
    """Does the client match the host list in the main option ``name``?  Written as
    Exim's +lists line says it; a deferred match counts as no (and is logged)."""
    value = main_option(session.config, name, None)
    if value is None:
        if debug.lists and session.peer_ip:
            debug.printf(f"host in {name}? no (option unset)")
        return False
    try:
        return bool(match_host(session.peer_ip,
                               session.ctx.variables.get("sender_host_name") or None,
                               str(value), session.ctx.child(), data_var="", option=name))
    except Exception as exc:  # noqa: BLE001 - a failed lookup is a "no", as in host_in
        session.log.main(f"{session.host_ident()} {name}: host list check failed: {exc}")
        return False
