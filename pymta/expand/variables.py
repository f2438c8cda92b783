"""Variable values: the context's own variables, ACL variables, header variables,
main configuration options and computed values (time of day, pid, ...)."""
from __future__ import annotations

import os
import time
from typing import Any

from .. import rfc2047
from ..config.values import main_option
from ..taint import Tainted
from .errors import ExpandError

PYMTA_VERSION = "4.96"          # what $version_number reports: Exim's, for conformance
COMPILE_NUMBER = "1"

KNOWN_VARIABLES = frozenset('''
arc_domains arc_oldest_pass arc_state arc_state_reason
dnslist_matched dnslist_text dnslist_value dkim_key_length dkim_algo dkim_bodylength dkim_canon_body
srs_recipient prvscheck_address prvscheck_keynum prvscheck_result runrc
acl_narg acl_verify_message address_data address_file address_pipe authenticated_fail_id
authenticated_id authenticated_sender authentication_failed av_failed body_linecount
body_zerocount bounce_recipient bounce_return_size_limit caller_gid caller_uid
callout_address compile_date compile_number config_dir config_file csa_status
dkim_copiedheaders dkim_cur_signer dkim_headernames dkim_selector dkim_signers
dkim_verify_reason dkim_verify_status dnslist_domain domain
event_data event_defer_errno event_name
dkim_domain dkim_identity dkim_canon_headers dkim_created dkim_expires dkim_key_testing
dkim_key_nosubdomains dkim_key_srvtype dkim_key_granularity dkim_key_notes
domain_data exim_gid exim_path exim_uid exim_version headers_added home host
host_address host_data host_lookup_deferred host_lookup_failed host_port initial_cwd
inode interface_address item ldap_dn load_average local_part local_part_data
local_part_prefix local_part_prefix_v local_part_suffix local_part_suffix_v
local_scan_data local_user_gid local_user_uid localhost_number log_inodes log_space
lookup_dnssec_authenticated mailstore_basename malware_name max_received_linelength
message_age message_body message_body_end message_body_size message_exim_id
message_headers message_headers_raw message_id message_linecount message_size
mime_anomaly_level mime_anomaly_text mime_boundary mime_charset mime_content_description
mime_content_disposition mime_content_id mime_content_size mime_content_transfer_encoding
mime_content_type mime_decoded_filename mime_filename mime_is_coverletter mime_is_multipart
mime_is_rfc822 mime_part_count original_domain original_local_part originator_gid originator_uid
parent_domain parent_local_part pid pipe_addresses prdr_requested primary_hostname
proxy_external_address proxy_external_port proxy_local_address proxy_local_port
proxy_session prvscheck_address qualify_domain
qualify_recipient queue_name queue_size rcpt_count rcpt_defer_count rcpt_fail_count
received_count received_for received_ip_address received_protocol received_time
recipient_data recipient_verify_failure recipients recipients_count
regex_match_string reply_address return_path return_size_limit router_name runrc
self_hostname sender_address sender_address_data sender_address_domain
sender_address_local_part sender_data sender_fullhost sender_helo_dnssec
sender_helo_name sender_host_address sender_host_authenticated sender_host_dnssec
sender_host_name sender_host_port sender_ident sender_rate sender_rate_limit
sender_rate_period sender_rcvhost sender_verify_failure sending_ip_address sending_port
smtp_active_hostname smtp_command smtp_command_argument smtp_command_history
smtp_count_at_connection_start spam_action spam_bar spam_report spam_score
spam_score_int spf_header_comment spf_received spf_result spf_result_guessed
spf_smtp_comment spool_directory spool_inodes spool_space thisaddress tls_bits
tls_certificate_verified tls_cipher tls_in_bits tls_in_certificate_verified
tls_in_cipher tls_in_cipher_std tls_in_ocsp tls_in_ourcert tls_in_peercert tls_in_peerdn
tls_in_resumption tls_in_sni tls_in_ver tls_out_bits tls_out_certificate_verified
tls_out_cipher tls_out_cipher_std tls_out_dane tls_out_ocsp tls_out_ourcert
tls_out_peercert tls_out_peerdn tls_out_sni tls_out_tlsa_usage tls_out_ver tls_peerdn
tls_sni tod_bsdinbox tod_epoch tod_epoch_l tod_full tod_log tod_logfile
tod_zone tod_zulu transport_name value verify_mode version_number warn_message_delay
warn_message_recipients
'''.split())

# Main options that are also variables.
_CONFIG_VARS = ("primary_hostname", "qualify_domain", "qualify_recipient",
                "spool_directory", "smtp_active_hostname", "exim_path", "config_file",
                "bounce_return_size_limit", "return_size_limit", "warn_message_delay",
                "localhost_number")

_DAYS = "Sun Mon Tue Wed Thu Fri Sat".split()
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def _zone(t: time.struct_time) -> str:
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off) // 60
    return f"{sign}{off // 60:02d}{off % 60:02d}"


def _tod(name: str, now: float) -> str | None:
    """``$tod_*`` for the time ``now`` (local time, as Exim shows it)."""
    t = time.localtime(now)
    if name == "tod_log":
        return time.strftime("%Y-%m-%d %H:%M:%S", t)
    if name == "tod_logfile":
        return time.strftime("%Y%m%d", t)
    if name == "tod_full":
        return (f"{_DAYS[(t.tm_wday + 1) % 7]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} "
                f"{t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {_zone(t)}")
    if name == "tod_bsdinbox":
        return (f"{_DAYS[(t.tm_wday + 1) % 7]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}")
    if name == "tod_epoch":
        return str(int(now))
    if name == "tod_epoch_l":
        return str(int(now * 1_000_000))
    if name == "tod_zone":
        return _zone(t)
    if name == "tod_zulu":
        return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(now))
    return None


def _exim_ids(ctx: Any) -> tuple[str, str]:
    """uid/gid of exim_user / exim_group from the configuration (else our own ids)."""
    main = getattr(getattr(ctx, "config", None), "main", None)
    user = getattr(main, "exim_user", None) if main is not None else None
    group = getattr(main, "exim_group", None) if main is not None else None
    uid, gid = os.geteuid(), os.getegid()
    if user not in (None, ""):
        import pwd
        try:
            pw = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(str(user))
            uid, gid = pw.pw_uid, pw.pw_gid
        except (KeyError, ValueError):
            pass
    if group not in (None, ""):
        import grp
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
        except KeyError:
            pass
    return str(uid), str(gid)


def _config_value(config: Any, name: str) -> str | None:
    if config is None:
        return None
    if name == "config_file":
        return getattr(config, "filename", "") or ""
    if name == "config_dir":
        return os.path.dirname(getattr(config, "filename", "") or "")
    main = getattr(config, "main", None)
    if main is None:
        return None
    try:
        value = getattr(main, name)
    except (AttributeError, KeyError):
        return None
    if value is None:
        return None             # unset: the caller falls back to Exim's default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sender_host_name(ctx: Any) -> str:
    """$sender_host_name, looked up now when the client's name has not been looked up
    yet (as Exim does when the variable is used); empty when there is none or the lookup
    failed or deferred."""
    v = ctx.variables
    ip = v.get("sender_host_address")
    if not ip or v.get("host_lookup_failed") == "1" or v.get("sender_host_name"):
        return v.get("sender_host_name") or ""
    from pymta.hostname import HostLookupDeferred
    from pymta.match import lookup_client_name
    try:
        return lookup_client_name(ctx, str(ip)).name or ""
    except HostLookupDeferred:
        return ""


def _sender_fullhost(ctx: Any) -> str:
    """$sender_fullhost: the client as the log's H= names it, "name (helo) [ip]" (with
    ":port" under log_selector incoming_port); empty for a local message."""
    from pymta.log import log_selected
    from pymta.logevents import host_field
    v = ctx.variables
    ip = v.get("sender_host_address")
    if not ip:
        return ""
    port = v.get("sender_host_port")
    text = host_field(str(ip), v.get("sender_host_name") or "", v.get("sender_helo_name") or "",
                      int(port) if str(port or "").isdigit() else None,
                      ctx.config is not None and log_selected(ctx.config, "incoming_port"))
    return Tainted(text) if any(isinstance(v.get(n), Tainted) for n in
                                ("sender_host_name", "sender_helo_name")) else text


def lookup_variable(name: str, ctx: Any) -> str | None:
    """Return the value of ``$name`` or None when the variable does not exist."""
    v = ctx.variables.get(name)
    if v is not None and (v or name != "sender_host_name"):
        return v
    if name == "sender_host_name":
        return _sender_host_name(ctx)
    if name.startswith("acl_"):
        if name in ctx.acl_vars:
            return ctx.acl_vars[name]
        if name.startswith(("acl_c", "acl_m")):
            if name[5:6].isalpha():
                return None     # acl_cx is no ACL variable name: unknown, as in Exim
            # unset ACL variables are empty, or unknown with strict_acl_vars
            return None if _strict_acl_vars(ctx) else ""
        if name.startswith("acl_arg"):
            return ""
    if name.startswith("r_"):
        return ""               # router variables ("set" option) not set here are empty
    if name.isdigit():
        idx = int(name)
        return ctx.numbered[idx] if idx < len(ctx.numbered) else ""
    if name.endswith(":"):
        return header_value(name, ctx)
    if name in ("message_headers", "message_headers_raw") and ctx.headers:
        text = "".join(ctx.headers)
        text = text[:-1] if text.endswith("\n") else text
        return Tainted(text if name.endswith("_raw") else _decode_2047(text, ctx))
    if name.startswith("tod_"):
        v = _tod(name, ctx.clock.time())
        if v is not None:
            return v
    if name == "pid":
        return str(os.getpid())
    if name in ("version_number", "exim_version"):
        return PYMTA_VERSION
    if name == "compile_number":
        return COMPILE_NUMBER
    if name in ("caller_uid", "originator_uid"):
        return str(os.getuid())
    if name in ("caller_gid", "originator_gid"):
        return str(os.getgid())
    if name in ("exim_uid", "exim_gid"):
        return _exim_ids(ctx)[0 if name == "exim_uid" else 1]
    if name == "initial_cwd":
        return os.getcwd()
    if name in _CONFIG_VARS or name in ("config_dir", "config_file"):
        v = _config_value(ctx.config, name)
        if v is not None:
            return v
    if name == "exim_path":
        return "/usr/sbin/pymta"
    if name == "qualify_recipient":
        return lookup_variable("qualify_domain", ctx)
    if name == "qualify_domain":
        return lookup_variable("primary_hostname", ctx)
    if name == "primary_hostname":
        import socket
        return socket.getfqdn()
    if name.startswith(("sender_rate_", "regex", "auth")) and name[-1:].isdigit():
        return ""
    if name in _SPACE_VARS:
        return _space(name, ctx)
    if name == "load_average":
        try:
            return str(int(os.getloadavg()[0] * 1000))
        except OSError:
            return "-1"
    if name == "smtp_active_hostname":
        return lookup_variable("primary_hostname", ctx)
    if name in _ZERO_VARS:
        return "0"
    if name in _MINUS_ONE_VARS:
        return "-1"
    if name == "prdr_requested":
        return "no"
    if name in _OTHER_DEFAULTS:
        return _OTHER_DEFAULTS[name]
    if name in ("sender_address_domain", "sender_address_local_part"):
        sender = ctx.variables.get("sender_address")
        if sender:
            local, at, domain = str.__str__(sender).rpartition("@")
            part = (domain if at else "") if name.endswith("domain") else \
                (local if at else sender)
            return Tainted(part) if isinstance(sender, Tainted) else part
    if name == "compile_date":
        return _compile_date()
    if name == "sender_fullhost":
        return _sender_fullhost(ctx)
    if name in KNOWN_VARIABLES:
        return ""
    return None


# Numeric variables that read as 0 (or -1) when nothing has set them, as in Exim -be.
_ZERO_VARS = frozenset("""acl_narg body_linecount body_zerocount inode localhost_number
    max_received_linelength message_age message_body_size message_linecount message_size
    mime_content_size mime_is_coverletter mime_is_multipart mime_is_rfc822 rcpt_count
    rcpt_defer_count rcpt_fail_count
    received_count received_time recipients_count runrc tls_in_bits tls_out_bits
    host_port sender_host_port authentication_failed av_failed dkim_key_length
    host_lookup_deferred host_lookup_failed mime_anomaly_level proxy_local_port
    proxy_external_port
    dkim_created dkim_key_testing dkim_key_nosubdomains
    smtp_count_at_connection_start tls_bits tls_certificate_verified
    tls_in_certificate_verified tls_in_ocsp tls_in_resumption tls_out_certificate_verified
    tls_out_ocsp tls_out_tlsa_usage tls_out_resumption""".split())
_MINUS_ONE_VARS = frozenset(
    "received_port interface_port sending_port mime_part_count".split())
# Unset values exim4 -be prints that are neither empty nor 0/-1 (checked with 4.96).
_OTHER_DEFAULTS = {"sender_helo_dnssec": "no", "sender_host_dnssec": "no",
                   "spf_result_guessed": "no", "proxy_session": "no", "tls_out_dane": "no",
                   "dkim_bodylength": "9999999999999", "local_user_gid": "4294967295",
                   "local_user_uid": "4294967295",
                   "dkim_expires": "9999999999999",
                   "dkim_key_srvtype": "*", "dkim_key_granularity": "*"}
_SPACE_VARS = frozenset("spool_space spool_inodes log_space log_inodes".split())


def _compile_date() -> str:
    """When this pymta was installed (its package's mtime), in Exim's format."""
    try:
        t = os.stat(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).st_mtime
    except OSError:
        t = 0
    return time.strftime("%d-%b-%Y %H:%M:%S", time.localtime(t))


def _space(name: str, ctx: Any) -> str:
    """Free space (KiB) or inodes on the spool or log file system."""
    spool = lookup_variable("spool_directory", ctx) or "/"
    where = spool
    if name.startswith("log_"):
        # the first log_file_path item that is not "syslog", as in Exim; -1 when the
        # logs go to syslog only; an empty item is the spool's log directory
        main = getattr(getattr(ctx, "config", None), "main", None)
        lfp = str(getattr(main, "log_file_path", "") or "") if main is not None else ""
        items = [it.strip() for it in (lfp or ":").split(":")]
        files = [it for it in items if it != "syslog"]
        if not files:
            return "-1"
        where = os.path.dirname(files[0]) if files[0] else os.path.join(spool, "log")
    while where and not os.path.exists(where):
        where = os.path.dirname(where)
    try:
        st = os.statvfs(where or "/")
    except OSError:
        return "-1"
    if name.endswith("inodes"):
        return str(st.f_favail)
    return str(st.f_bavail * st.f_frsize // 1024)


def get_variable(name: str, ctx: Any, braced: bool = False) -> str:
    """Like :func:`lookup_variable` but raise Exim's error for an unknown name
    (``braced``: it was written ``${name}``, which Exim words differently)."""
    v = lookup_variable(name, ctx)
    if v is None:
        raise ExpandError(unknown_variable(name, ctx, braced))
    return v


def unknown_variable(name: str, ctx: Any, braced: bool = False) -> str:
    """Exim's text for an unknown variable, ``$name`` or ``${name}``."""
    if braced:
        return f"unknown variable in \"${{{name}}}\"{unknown_note(name, ctx)}"
    return f"unknown variable name \"{name}\"{unknown_note(name, ctx)}"


def _strict_acl_vars(ctx: Any) -> bool:
    return bool(main_option(getattr(ctx, "config", None), "strict_acl_vars", False))


def unknown_note(name: str, ctx: Any) -> str:
    """What Exim adds to "unknown variable" errors for a name starting ``acl_``: why it
    is not an ACL variable, or that it is one left unset under strict_acl_vars."""
    if not name.startswith("acl_"):
        return ""
    if name[4:5] not in ("c", "m"):
        return " (user-defined ACL variables must start acl_c or acl_m)"
    if name[5:6].isalpha():
        return " (6th character of a user-defined ACL variable must be a digit or underscore)"
    if _strict_acl_vars(ctx):
        return " (strict_acl_vars is set)"
    return ""


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender",
                              "resent-from", "resent-to", "resent-cc", "resent-bcc",
                              "resent-reply-to", "resent-sender"})


def _decode_2047(text: str, ctx: Any) -> str:
    """``$h_``: encoded-words decoded to text; the header as it is when one of their
    charsets cannot be converted (as Exim leaves it)."""
    return rfc2047.decode_or_keep(text, rfc2047.check_length_of(ctx.config))


def _decode_2047_raw(text: str, ctx: Any) -> str:
    """``$bh_``: encoded-words decoded to their bytes, without charset translation."""
    from .bytesutil import from_bytes
    return rfc2047.decode(text, rfc2047.check_length_of(ctx.config), from_bytes=from_bytes)


def header_value(name: str, ctx: Any) -> str | None:
    """``$h_name:`` and friends (h, bh, rh, lh forms) from ``ctx.headers``; "" if absent."""
    from ..taint import Tainted
    prefix, _, hname = name.partition("_")
    hname = hname.rstrip(":").lower()
    if not ctx.headers:
        return ""
    raws = []
    for line in ctx.headers:
        hn, sep, val = line.partition(":")
        if sep and hn.strip().lower() == hname:
            raws.append(val)
    if not raws:
        return ""
    if prefix in ("rh", "rheader"):
        out = "".join(raws)
    elif prefix in ("lh", "lheader"):
        out = ":".join(r[:-1] if r.endswith("\n") else r for r in raws)
    else:
        decode = _decode_2047_raw if prefix in ("bh", "bheader") else _decode_2047
        vals = [v.strip() for v in raws]
        vals = [decode(v, ctx) for v in vals if v]
        out = (",\n" if hname in _ADDRESS_HEADERS else "\n").join(vals)
    return Tainted(out)
