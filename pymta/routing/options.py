"""Option tables for routers (generic and per driver).

The types and defaults follow the Exim 4.96 option list.  ``OptionSpec`` comes from
:mod:`pymta.config.options` when that module exists; a compatible stand-in is used until then
so that the routers can be imported and tested on their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:  # the configuration engineer's class, when available
    from pymta.config.options import OptionSpec  # type: ignore
except ImportError:  # pragma: no cover - only while the config package is incomplete
    @dataclass(frozen=True)
    class OptionSpec:  # type: ignore[no-redef]
        """Stand-in for :class:`pymta.config.options.OptionSpec`."""

        name: str
        type: str
        default: Any = None


def _table(spec: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    return {name: OptionSpec(name, typ, default) for name, (typ, default) in spec.items()}


#: Options every router accepts (chapter "Generic options for routers").
GENERIC_ROUTER_OPTIONS = _table({
    "address_data": ("expand", None),
    "address_test": ("bool", True),
    "cannot_route_message": ("expand", None),
    "caseful_local_part": ("bool", False),
    "check_local_user": ("bool", False),
    "condition": ("expand", None),
    "debug_print": ("expand", None),
    "disable_logging": ("bool", False),
    "dnssec_request_domains": ("list", None),
    "dnssec_require_domains": ("list", None),
    "domains": ("list", None),
    "driver": ("string", None),
    "errors_to": ("expand", None),
    "expn": ("bool", True),
    "fail_verify": ("bool", False),
    "fail_verify_recipient": ("bool", False),
    "fail_verify_sender": ("bool", False),
    "fallback_hosts": ("list", None),
    "group": ("expand", None),
    "headers_add": ("list", None),
    "headers_remove": ("list", None),
    "ignore_target_hosts": ("list", None),
    "initgroups": ("bool", False),
    "local_part_prefix": ("list", None),
    "local_part_prefix_optional": ("bool", False),
    "local_part_suffix": ("list", None),
    "local_part_suffix_optional": ("bool", False),
    "local_parts": ("list", None),
    "log_as_local": ("bool", None),
    "more": ("bool", True),
    "pass_on_timeout": ("bool", False),
    "pass_router": ("string", None),
    "redirect_router": ("string", None),
    "require_files": ("list", None),
    "retry_use_local_part": ("bool", None),
    "router_home_directory": ("expand", None),
    "self": ("string", "freeze"),
    "senders": ("list", None),
    "set": ("list", None),
    "translate_ip_address": ("expand", None),
    "transport": ("expand", None),
    "transport_current_directory": ("expand", None),
    "transport_home_directory": ("expand", None),
    "unseen": ("bool", False),
    "user": ("expand", None),
    "verify": ("bool", True),
    "verify_only": ("bool", False),
    "verify_recipient": ("bool", True),
    "verify_sender": ("bool", True),
})

ACCEPT_OPTIONS = dict(GENERIC_ROUTER_OPTIONS)

REDIRECT_OPTIONS = {**GENERIC_ROUTER_OPTIONS, **_table({
    "allow_defer": ("bool", False),
    "allow_fail": ("bool", False),
    "allow_filter": ("bool", False),
    "allow_freeze": ("bool", False),
    "check_ancestor": ("bool", False),
    "check_group": ("bool", False),
    "check_owner": ("bool", False),
    "data": ("expand", None),
    "directory_transport": ("expand", None),
    "file": ("expand", None),
    "file_transport": ("expand", None),
    "filter_prepend_home": ("bool", True),
    "forbid_blackhole": ("bool", False),
    "forbid_exim_filter": ("bool", False),
    "forbid_fail": ("bool", False),
    "forbid_file": ("bool", False),
    "forbid_filter_dlfunc": ("bool", False),
    "forbid_filter_existstest": ("bool", False),
    "forbid_filter_logwrite": ("bool", False),
    "forbid_filter_lookup": ("bool", False),
    "forbid_filter_perl": ("bool", False),
    "forbid_filter_readfile": ("bool", False),
    "forbid_filter_readsocket": ("bool", False),
    "forbid_filter_reply": ("bool", False),
    "forbid_filter_run": ("bool", False),
    "forbid_include": ("bool", False),
    "forbid_pipe": ("bool", False),
    "forbid_sieve_filter": ("bool", False),
    "forbid_smtp_code": ("bool", False),
    "hide_child_in_errmsg": ("bool", False),
    "ignore_eacces": ("bool", False),
    "ignore_enotdir": ("bool", False),
    "include_directory": ("string", None),
    "modemask": ("mode", 0o22),
    "one_time": ("bool", False),
    "owners": ("list", None),
    "owngroups": ("list", None),
    "pipe_transport": ("expand", None),
    "qualify_domain": ("expand", None),
    "qualify_preserve_domain": ("bool", False),
    "repeat_use": ("bool", True),
    "reply_transport": ("expand", None),
    "rewrite": ("bool", True),
    "sieve_subaddress": ("expand", None),
    "sieve_useraddress": ("expand", None),
    "sieve_vacation_directory": ("expand", None),
    "skip_syntax_errors": ("bool", False),
    "syntax_errors_text": ("expand", None),
    "syntax_errors_to": ("string", None),
})}

MANUALROUTE_OPTIONS = {**GENERIC_ROUTER_OPTIONS, **_table({
    "host_all_ignored": ("string", "defer"),
    "host_find_failed": ("string", "freeze"),
    "hosts_randomize": ("bool", False),
    "route_data": ("expand", None),
    "route_list": ("list", None),
    "same_domain_copy_routing": ("bool", False),
})}


def driver_options(name: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """The option table for router ``name``: the config engineer's table when it exists."""
    try:
        from pymta.config.option_tables import driver_options as _tables  # type: ignore
    except ImportError:
        return fallback
    try:
        table = _tables("router", name)
    except Exception:  # unknown to the shared tables: keep ours
        return fallback
    return table or fallback
