"""The ``pymta``, ``sendmail`` and ``mailq`` commands.

The configuration file is the ``-C`` argument, else ``$PYMTA_CONFIG``, else
``/etc/pymta/pymta.conf``.  Exit status follows Exim: 0 success, 1 failure (bad option,
configuration error, message not accepted), 2 for -bt/-bv when some address failed.
"""
from __future__ import annotations

import io
import os
import pwd
import sys
from typing import Any, Callable

import pymta
from pymta import proctitle
from pymta.adminuser import AdminGroupError, caller_is_admin
from pymta.cli import usage
from pymta.cli.args import CliOptions, UsageError, parse_args
from pymta.cli.arguments_log import log_arguments
from pymta.cli.retrytest import retry_test
from pymta.cli.rewritetest import rewrite_test
from pymta.config.showconfig import config_text
from pymta.config.values import main_opt
from pymta.debuglog import SELECTOR_BITS, debug
from pymta.dns import ResolverTuning
from pymta.dns import configure as configure_dns
from pymta.dns_cname import configure_cname_loops
from pymta.dns_timing import configure_slow_lookup_log
from pymta.dnssec import configure as configure_dnssec
from pymta.expand.context import ExpandContext
from pymta.features import builtin_macros, support_words
from pymta.finduser import configure_max_username_length
from pymta.hints.store import configure as configure_hints
from pymta.log import Logger, log_selected
from pymta.match import match_domain
from pymta.message.queue_policy import LoadQueueing, apply_delivery_mode, queue_only_file_exists
from pymta.originator import UnknownCallerError, caller_originator
from pymta.printing import configure_printing
from pymta.spool.space import INSUFFICIENT, check_fs
from pymta.timezone import apply_timezone

DEFAULT_CONFIG = "/etc/pymta/pymta.conf"

USAGE = usage.PYMTA


def config_path(opts: CliOptions) -> str:
    return opts.config_path or os.environ.get("PYMTA_CONFIG") or DEFAULT_CONFIG


def apply_process_options(config: Any) -> Any:
    """Make the process-wide settings a configuration names: where the hints databases
    are (LMDB, or Redis for the ones a fleet shares) and how the DNS resolver behaves
    (dns_retrans, dns_retry, dns_use_edns0, dns_ipv4_lookup, dns_dnssec_ok,
    dns_trust_aa, slow_lookup_log, dns_cname_loops) and max_username_length; returns
    ``config``."""
    configure_hints(config, lambda: Logger(config))
    configure_dns(ResolverTuning(
        retrans=float(main_opt(config, "dns_retrans") or 0),
        retry=int(main_opt(config, "dns_retry") or 0),
        use_edns0=int(main_opt(config, "dns_use_edns0", -1))), _ipv4_lookup(config))
    configure_dnssec(int(main_opt(config, "dns_dnssec_ok", -1)), _trust_aa(config))
    configure_slow_lookup_log(int(main_opt(config, "slow_lookup_log") or 0),
                              lambda text: Logger(config).main(text))
    configure_cname_loops(int(main_opt(config, "dns_cname_loops", 1)),
                          lambda text: Logger(config).main(text))
    configure_max_username_length(int(main_opt(config, "max_username_length") or 0))
    configure_printing(bool(main_opt(config, "print_topbitchars")))
    return config


def _trust_aa(config: Any) -> Callable[[str], bool] | None:
    """dns_trust_aa as a predicate on zone names (None when unset)."""
    domains = main_opt(config, "dns_trust_aa")
    if not domains:
        return None
    return lambda name: match_domain(name.lower(), str(domains), ExpandContext(config))


def _ipv4_lookup(config: Any) -> Callable[[str], bool] | None:
    """dns_ipv4_lookup as a predicate on host names (None when unset)."""
    domains = main_opt(config, "dns_ipv4_lookup")
    if not domains:
        return None
    return lambda name: match_domain(name.lower(), str(domains), ExpandContext(config))


# The configuration each command line loaded (the +arguments check loads it before the
# action does; one parse per process).
_LOADED: dict[int, tuple[CliOptions, Any]] = {}
# The command line as called (program name first), for log_selector +arguments.
_COMMAND_LINE: list[str] = []


def load(opts: CliOptions) -> Any:
    """Load the configuration; on error print Exim-style and exit 1."""
    hit = _LOADED.get(id(opts))
    if hit is not None and hit[0] is opts:
        return hit[1]
    config = _load(opts)
    _LOADED.clear()
    _LOADED[id(opts)] = (opts, config)
    return config


def _load(opts: CliOptions) -> Any:
    from pymta.config import load_config
    from pymta.config.model import ConfigError
    path = config_path(opts)
    try:
        config = with_cli_overrides(load_config(path, opts.macros or None, builtin_macros()),
                                    opts)
        apply_timezone(config)
        apply_process_options(config)
        if opts.queue_name:
            _name_queue(config, opts)
        return config
    except ConfigError as exc:
        where = exc.file or path
        line = f" line {exc.line}" if exc.line is not None else ""
        sys.stderr.write(f"pymta: error in configuration file {where}{line}: {exc.message}\n")
        raise SystemExit(1)
    except FileNotFoundError:
        sys.stderr.write(f"pymta: error in configuration file {path}: file not found\n")
        raise SystemExit(1)
    except OSError as exc:
        sys.stderr.write(f"pymta: error in configuration file {path}: {exc.strerror}\n")
        raise SystemExit(1)


def with_cli_overrides(config: Any, opts: CliOptions) -> Any:
    """Options the command line overrides: -os (smtp_receive_timeout), -or
    (receive_timeout), -od (queue_only, as queue_only_override allows), -odqs
    (queue_smtp_domains)."""
    if opts.smtp_receive_timeout is not None:
        config.main.set("smtp_receive_timeout", opts.smtp_receive_timeout)
    if opts.receive_timeout is not None:
        config.main.set("receive_timeout", opts.receive_timeout)
    # -odqs starts a delivery like -odb (unless -odi/-odf say how), so it overrides
    # queue_only as they do; that delivery then treats every domain as one of
    # queue_smtp_domains (for the daemon's messages too, with -bd)
    apply_delivery_mode(config, opts.delivery_mode or ("b" if opts.queue_smtp else None))
    if opts.queue_smtp:
        config.main.set("queue_smtp_domains", "*")
    return config


def _with_timezone(config: Any) -> Any:
    """A reloaded configuration's timezone takes effect at once (returns ``config``)."""
    apply_timezone(config)
    return config


def _name_queue(config: Any, opts: CliOptions) -> None:
    """-qG<name>: the message ids on the command line are in that named queue."""
    from pymta.spool import files
    from pymta.spool.ids import is_message_id
    spool = _spool(config)
    for arg in opts.args:
        if is_message_id(arg):
            files.set_message_queue(spool, arg, opts.queue_name)


def _logger(config: Any) -> Any:
    from pymta.daemon.util import make_logger
    return make_logger(config)


def _spool(config: Any) -> str:
    from pymta.daemon.util import spool_directory
    return spool_directory(config)


def _write(out: Any) -> None:
    if isinstance(out, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    elif out:
        sys.stdout.write(out)


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


# ---- actions -----------------------------------------------------------------------

def do_version(opts: CliOptions) -> int:
    config = load(opts)
    from pymta.metrics.endpoint import MetricsAddressError, parse_metrics_listen
    from pymta.tls.errors import TLSConfigError
    from pymta.tls.serverconf import check_server_tls
    try:
        check_server_tls(config)
        # what the daemon would refuse at its start (the unit's ExecStartPre is -bV)
        parse_metrics_listen(str(main_opt(config, "metrics_listen") or ""))
    except (TLSConfigError, MetricsAddressError) as exc:
        sys.stderr.write(f"pymta: error in configuration file {config_path(opts)}: {exc}\n")
        return 1
    from pymta.config.show import version_text
    text = version_text(config, support_words())
    _write(text if text.endswith("\n") else text + "\n")
    return 0


def do_bP(opts: CliOptions) -> int:
    """-bP: option values; exit 1 when a name is unknown (as Exim)."""
    config = load(opts)
    if opts.args == ["config"]:
        _write(config_text(config_path(opts), opts.macros or None, _is_admin(config)))
        return 0
    from pymta.config import show
    from pymta.expand.evaluator import environment
    text, ok = show.show_options_result(config, opts.args, _is_admin(config),
                                        no_names=opts.no_names,
                                        environ=environment(config))
    _write(text)
    return 0 if ok else 1


def do_brt(opts: CliOptions) -> int:
    """-brt: which retry rule applies to an address or domain (and error)."""
    text, code = retry_test(load(opts), opts.args, opts.sender)
    (sys.stdout if code == 0 else sys.stderr).write(text)
    return code


def do_brw(opts: CliOptions) -> int:
    """-brw: how an address would be rewritten."""
    config = load(opts)
    text, code = rewrite_test(config, opts.args, Logger(config))
    (sys.stdout if code == 0 else sys.stderr).write(text)
    return code


def _is_admin(config: Any) -> bool:
    """Root, the Exim user and members of the Exim group or admin_groups (pymta.adminuser)."""
    try:
        return caller_is_admin(config)
    except AdminGroupError as exc:
        where = getattr(config, "filename", None) or "the configuration"
        sys.stderr.write(f"pymta: error in configuration file {where}: admin_groups: {exc}\n")
        raise SystemExit(1)


# Actions only an admin user may take, with Exim's wording (its -M/-Mc message is
# capitalised, the others are not): queue listing unless queue_list_requires_admin is
# false, prodding deliveries (-M, -q, -R, -S, -MG) unless prod_requires_admin is false,
# and -Mg always.
_QUEUE_LIST = frozenset({"bp", "bpc", "bpu", "bpa", "bpi"})
_PROD = frozenset({"q", "MG"})
#: The testing flags commandline_checks_require_admin keeps to admin users (-be and
#: -bem, -bf/-bF, -bh/-bhc, -brt, -brw, -bt, -bv, -bvs), as exim4 4.96 does.
_CHECKS = frozenset({"be", "bf", "bh", "brt", "brw", "bt", "bv", "bvs"})


def _admin_refusal(opts: CliOptions) -> str | None:
    """Exim's complaint when a non-admin caller asks for an admin action, else None."""
    action = opts.action
    if action in _QUEUE_LIST:
        option, text = "queue_list_requires_admin", "pymta: permission denied\n"
    elif action in _PROD:
        option, text = "prod_requires_admin", "pymta: permission denied\n"
    elif action == "M":
        option, text = "prod_requires_admin", "pymta: Permission denied\n"
    elif action == "Mg":
        option, text = "", "pymta: permission denied\n"
    elif action in _CHECKS:
        option = "commandline_checks_require_admin"
        text = "pymta: those command-line flags are set to require admin\n"
    else:
        return None
    config = load(opts)
    if option and not main_opt(config, option):
        return None
    return None if _is_admin(config) else text


def _queued_message_context(config: Any, msgid: str) -> Any:
    """-Mset: the variables of a queued message, as its delivery would see them."""
    from pymta.delivery.deliver import MessageDelivery
    from pymta.spool import files
    spool = _spool(config)
    msg = files.read_header(spool, msgid)
    ctx = MessageDelivery(config, msg, None, spool).base_context()
    pending = [r.address for r in msg.pending_recipients()]
    ctx.variables["recipients"] = ", ".join(pending)
    ctx.variables["recipients_count"] = str(len(msg.recipients))
    return ctx


def do_be(opts: CliOptions) -> int:
    config = load(opts)
    from pymta.expand.be import run_be
    message_ctx = None
    if opts.mset_id:
        try:
            message_ctx = _queued_message_context(config, opts.mset_id)
        except (OSError, ValueError):
            sys.stdout.write(f"Failed to load message {opts.mset_id}\n")
            return 1
    try:
        host_vars = _be_host_variables(opts, config)
    except ValueError as exc:
        sys.stderr.write(f"pymta: {exc}\n")
        return 1
    # Like exim -be: a "> " prompt before each result read from standard input,
    # none for expressions given as arguments.
    return int(run_be(config, opts.args, stdin=sys.stdin, stdout=sys.stdout,
                      message_file=opts.bem_file, prompt=not opts.args,
                      message_variables=message_ctx, variables=host_vars) or 0)


def _be_host_variables(opts: CliOptions, config: Any) -> dict[str, str]:
    """-be with -oMa, -oMs, -oMt, -oMi, -oMaa, -oMai, -oMas, -oMr: the variables they
    set, as in Exim (for a trusted caller only, as everywhere)."""
    from pymta.caller import caller_is_trusted
    from pymta.smtp.local import parse_host_argument
    om = opts.host_overrides
    if not (om or opts.received_protocol or opts.sender_host_address) \
            or not caller_is_trusted(config, os.getuid()):
        return {}
    out: dict[str, str] = {}
    if opts.sender_host_address:
        addr, port = parse_host_argument(opts.sender_host_address)
        out.update(sender_host_address=addr, host_address=addr,
                   sender_host_port=str(port or ""))
    if "-oMi" in om:
        addr, port = parse_host_argument(om["-oMi"])
        out.update(interface_address=addr, received_ip_address=addr,
                   interface_port=str(port or ""), received_port=str(port or ""))
    for option, name in (("-oMs", "sender_host_name"), ("-oMt", "sender_ident"),
                         ("-oMaa", "sender_host_authenticated"),
                         ("-oMai", "authenticated_id"), ("-oMas", "authenticated_sender")):
        if option in om:
            out[name] = om[option]
    if opts.received_protocol:
        out["received_protocol"] = opts.received_protocol
    return out


def _login_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def do_filter_test(opts: CliOptions) -> int:
    """-bf / -bF: test a filter file against a message on standard input."""
    config = load(opts)
    from pymta.cli.filtertest import main_bf
    return main_bf(opts, config)


def do_bt(opts: CliOptions, verify: bool | str) -> int:
    """-bt / -bv / -bvs: route (or verify, as a recipient or as a sender) each address;
    exit code is the worst result.  $sender_address is -f's address, else the caller
    at the qualify domain (empty when verifying senders, as in Exim)."""
    config = load(opts)
    from pymta.expand.context import ExpandContext
    from pymta.routing.bt import test_address
    from pymta.routing.support import qualify_domain
    if not opts.args:
        sys.stderr.write("pymta: no addresses given\n")
        return 1
    if verify == "sender":
        sender = ""
    elif opts.sender is not None:
        sender = opts.sender
    else:
        sender = f"{_login_name()}@{qualify_domain(config)}"
    worst = 0
    # -bt shows log lines on standard error, as Exim does in address-test mode
    log = Logger(config) if verify else StderrLog("address_rewrite")
    notes = Logger(config) if verify else StderrLog()
    delivered: set[tuple[str, str]] = set()      # -bt marks a repeated delivery
    for addr in opts.args:
        ctx = ExpandContext(config, {"sender_address": sender})
        text, code = test_address(config, addr, ctx, verify=verify, log=log, notes=notes,
                                  delivered=delivered)
        _write(text)
        worst = max(worst, int(code))
    return worst


class StderrLog:
    """Where -bt's log lines go: standard error, in Exim's "LOG:" form, with the name
    of the log_selector item that asked for them (rewrites: "address_rewrite")."""

    def __init__(self, selector: str = "") -> None:
        self.prefix = f"LOG: {selector} MAIN" if selector else "LOG: MAIN"

    def main(self, text: str, msgid: str | None = None) -> None:
        sys.stderr.write(f"{self.prefix}\n  {text}\n")

    def panic(self, text: str, msgid: str | None = None) -> None:
        sys.stderr.write(f"LOG: MAIN PANIC\n  {text}\n")


def do_bp(opts: CliOptions) -> int:
    config = load(opts)
    from pymta.spool import queue
    spool = _spool(config)
    if opts.action == "bpc":
        _write(f"{queue.count_queue(spool, opts.queue_name)}\n")
        return 0
    if opts.action == "bpi":         # message ids only (Exim 4.97's -bpi)
        _write("".join(f"{i}\n" for i in queue.existing_ids(spool, opts.args or None,
                                                             opts.queue_name)))
        return 0
    text = queue.format_bp(spool, opts.args or None, queue=opts.queue_name,
                           generated=opts.action == "bpa")
    if opts.action == "bpu":
        text = "".join(line for line in text.splitlines(True)
                       if not line.startswith("        D "))
    _write(text)
    return 0


def do_view(opts: CliOptions) -> int:
    config = load(opts)
    from pymta.spool import queue
    spool = _spool(config)
    view = {"Mvh": queue.view_header, "Mvb": queue.view_body, "Mvl": queue.view_log}[opts.action]
    rc = 0
    for msgid in opts.args:
        try:
            _write(view(spool, msgid))
        except FileNotFoundError:
            sys.stderr.write(f"pymta: failed to open {msgid}: No such file or directory\n")
            rc = 1
    return rc


def do_remove(opts: CliOptions) -> int:
    config = load(opts)
    from pymta.spool import queue
    text = queue.remove_messages(_spool(config), opts.args, _logger(config), _user())
    _write(text)
    return 0


def do_freeze(opts: CliOptions) -> int:
    """-Mf / -Mt: set or clear the frozen state in -H under the message lock."""
    import time
    config = load(opts)
    from pymta.spool import files
    from pymta.spool.lock import lock_message
    spool, log, user = _spool(config), _logger(config), _user()
    freeze = opts.action == "Mf"
    rc = 0
    for msgid in opts.args:
        lock = lock_message(spool, msgid)
        if lock is None:
            sys.stderr.write(f"pymta: message {msgid} is locked or does not exist\n")
            rc = 1
            continue
        try:
            msg = files.read_header(spool, msgid)
            if freeze and msg.frozen_at is None:
                msg.frozen_at = int(time.time())
                msg.flags.discard("manual_thaw")
                files.rewrite_header(spool, msg)
                log.main(f"frozen by {user}", msgid)
                _write(f"Message {msgid} is now frozen\n")
            elif not freeze and msg.frozen_at is not None:
                msg.frozen_at = None
                msg.flags.add("manual_thaw")
                files.rewrite_header(spool, msg)
                log.main(f"unfrozen by {user}", msgid)
                _write(f"Message {msgid} is no longer frozen\n")
            else:
                _write(f"Message {msgid} is {'already' if freeze else 'not'} frozen\n")
        finally:
            lock.release()
    return rc


def do_edit(opts: CliOptions) -> int:
    """-Mar / -Mmd / -Mes <id> <address>...; -Mmad <id>...: edit queued messages."""
    config = load(opts)
    from pymta.spool import edit
    spool, log, user = _spool(config), _logger(config), _user()
    if opts.action == "Mmad":
        rc = 0
        for msgid in opts.args:
            text, status = edit.mark_delivered(spool, msgid, None, user, log)
            _write(text + "\n")          # Exim prints an empty line after each
            rc = rc or status
        return rc
    msgid, addresses = opts.args[0], opts.args[1:]
    if not addresses or (opts.action == "Mes" and len(addresses) != 1):
        sys.stderr.write(f"pymta: -{opts.action} needs a message id and "
                         f"{'one address' if opts.action == 'Mes' else 'addresses'}\n")
        return 1
    if opts.action == "Mar":
        text, rc = edit.add_recipients(spool, msgid, addresses, user, log)
    elif opts.action == "Mmd":
        text, rc = edit.mark_delivered(spool, msgid, addresses, user, log)
    else:
        text, rc = edit.edit_sender(spool, msgid, addresses[0], user, log)
    _write(text)                        # Exim prints its complaints on stdout too
    return rc


def do_give_up(opts: CliOptions) -> int:
    """-Mg id...: fail every undelivered recipient untried and bounce them (Exim's
    "cancelled by <user>")."""
    config = load(opts)
    from pymta.delivery import deliver_message
    log, user = _logger(config), _user()
    rc = 0
    for msgid in opts.args:
        outcome = deliver_message(config, msgid, log, forced=True, manual=True,
                                  give_up=True, user=user)
        if getattr(outcome, "status", "") in ("locked", "missing", "corrupt", "unreadable"):
            sys.stderr.write(f"pymta: message {msgid} is {outcome.status}\n")
            rc = 1
    return rc


def do_deliver_ids(opts: CliOptions) -> int:
    """-M id...: forced delivery of each message, in this process."""
    config = load(opts)
    from pymta.delivery import deliver_message
    log = _logger(config)
    rc = 0
    for msgid in opts.args:
        proctitle.delivering(msgid)
        try:
            outcome = deliver_message(config, msgid, log, forced=True, manual=True)
        except Exception as exc:
            sys.stderr.write(f"pymta: delivery of {msgid} failed: {exc}\n")
            rc = 1
            continue
        status = getattr(outcome, "status", "")
        if status == "locked":
            sys.stderr.write(f"Spool file for {msgid} is locked "
                             "(another process is handling this message)\n")
            rc = 1
        elif status == "missing":
            sys.stderr.write(f"pymta: message {msgid} is not on the queue\n")
            rc = 1
        elif status == "corrupt":
            sys.stderr.write(f"pymta: spool file {msgid}-H is corrupt; the message was "
                             "moved aside (see the paniclog)\n")
            rc = 1
        elif status == "unreadable":
            sys.stderr.write(f"pymta: spool file {msgid}-H cannot be read by pymta; the "
                             "message was left where it is (see the paniclog)\n")
            rc = 1
    return rc


def do_queue_run(opts: CliOptions) -> int:
    config = load(opts)
    if opts.recipient_select or opts.sender_select:
        from pymta.daemon.queue_select import run_selected
        run_selected(config, _logger(config), opts.recipient_select, opts.sender_select,
                     queue_flags=opts.queue_flags)
        return 0
    from pymta.daemon.queuerunner import run_queue
    run_queue(config, _logger(config), force=opts.queue_flags == "f",
              force_frozen=opts.queue_flags == "ff", queue=opts.queue_name,
              two_phase=opts.two_phase, initial_only=opts.initial_only,
              local_only=opts.local_only)
    return 0


def do_move_queue(opts: CliOptions) -> int:
    """-MG <queue> <id>...: move messages to another named queue ("" = the default)."""
    config = load(opts)
    from pymta.spool.edit import move_to_queue
    if not opts.args:
        sys.stderr.write("pymta: -MG needs a queue name\n")
        return 1
    target, ids = opts.args[0], opts.args[1:]
    log = _logger(config)
    spool = _spool(config)
    rc = 0
    for msgid in ids:
        text = move_to_queue(spool, msgid, opts.queue_name, target, log)
        if text:
            sys.stdout.write(text + "\n")
            rc = 1
    return rc


def do_daemon(opts: CliOptions) -> int:
    if opts.recipient_select or opts.sender_select:
        sys.stderr.write("pymta: -R/-S are not supported with -bd or -q<time>\n")
        return 1
    config = load(opts)
    from pymta.config import load_config
    from pymta.daemon.master import DaemonOptions, start_daemon
    from pymta.daemon.util import main_opt
    dopts = DaemonOptions(
        listen=opts.action in ("bd", "bdf", "bw"),
        foreground=opts.action in ("bdf", "bw") or opts.debug,
        inetd_wait=opts.action == "bw", inetd_wait_timeout=opts.inetd_wait_timeout,
        queue_interval=opts.queue_interval, queue_flags=opts.queue_flags, oX=opts.oX,
        queue_name=opts.queue_name,
        pid_file=opts.pid_file, config_path=config_path(opts), macros=dict(opts.macros),
        queue_only=bool(main_opt(config, "queue_only")),     # -od applied by load()
        tls_on_connect=opts.tls_on_connect, debug_children=not opts.debug_daemon_only)
    debug.force_pid()        # several processes write to one standard error
    return start_daemon(config, dopts, load_config=lambda path, macros: apply_process_options(
        _with_timezone(with_cli_overrides(load_config(path, macros, builtin_macros()),
                                          opts))))


def do_submit(opts: CliOptions) -> int:
    """-bm / -t / sendmail: spool a message from stdin, then deliver per -od."""
    config = load(opts)
    from pymta.cli.submit import submit
    log = _logger(config)
    if not check_fs(config, log):
        # as Exim: checked at start-up, before the message is read
        sys.stderr.write(f"pymta: {INSUFFICIENT}\n")
        return 1
    msgid, error = submit(config, opts, sys.stdin.buffer, log)
    if msgid is None:
        sys.stderr.write(f"pymta: {error}\n")
        return 1
    if opts.verbose:
        sys.stderr.write(f"Message {msgid} accepted\n")
    mode = _delivery_mode(opts, config)
    if opts.dont_deliver or mode == "q" or _queued_by_policy(config, LoadQueueing(
            config), log, msgid):
        return 0
    from pymta.delivery import deliver_message
    if mode in ("i", "f"):
        _deliver_quietly(deliver_message, config, msgid, log)
        return 0
    _deliver_in_background(deliver_message, config, msgid, log)
    return 0


def do_bi(opts: CliOptions) -> int:
    """-bi (sendmail's "rebuild the aliases"): run bi_command, with -oA's value as its
    one argument, under the caller's own ids; nothing when bi_command is unset."""
    command = main_opt(load(opts), "bi_command")
    if not command:
        return 0
    argv = [str(command)] + ([opts.alias_file] if opts.alias_file else [])
    sys.stdout.flush()
    try:
        os.setgid(os.getgid())       # the real ids: nothing of a privileged start is kept
        os.setuid(os.getuid())
        os.execv(argv[0], argv)      # no shell and no PATH search, as Exim
    except OSError as exc:
        sys.stderr.write(f"pymta: exec '{argv[0]}' failed: {exc.strerror}\n")
    return 1


def do_log_line(opts: CliOptions) -> int:
    """-z text: write the text to the main log (an operator's note)."""
    config = load(opts)
    if not _is_admin(config):
        sys.stderr.write("pymta: permission denied\n")
        return 1
    _logger(config).main(opts.log_line or "")
    return 0


def do_bh(opts: CliOptions) -> int:
    """-bh IP[.port]: a fake SMTP session on stdin/stdout; nothing is spooled."""
    config = load(opts)
    from pymta.smtp.local import host_check_main
    proctitle.host_check(opts.host_check or "")
    return host_check_main(config, opts.host_check or "", options=opts.host_overrides,
                           callouts=opts.host_check_callouts)


def do_bs(opts: CliOptions) -> int:
    """-bs: SMTP from a local caller on stdin/stdout; messages are delivered per -od."""
    config = load(opts)
    from pymta.caller import caller_is_trusted
    from pymta.daemon.receiver import etrn_queue_run
    from pymta.smtp.etrn import set_queue_runner
    from pymta.smtp.local import HostOverrides, LocalCaller, run_stdio_session
    log = _logger(config)
    set_queue_runner(etrn_queue_run)        # ETRN #x: the same queue run as the daemon's
    notify = _delivery_per_od(opts, config, log)

    caller = LocalCaller.current(config)
    proctitle.local_smtp(_user())
    overrides = None
    if caller_is_trusted(config, os.getuid()):    # others' -oM options are ignored (Exim)
        try:
            overrides = HostOverrides.from_options(opts.host_overrides,
                                                   opts.sender_host_address)
        except ValueError as exc:
            sys.stderr.write(f"pymta: {exc}\n")
            return 1
    from pymta.delivery.callout_hold import deliver_held
    from pymta.delivery.cutthrough import open_cutthrough
    run_stdio_session(config, log, sys.stdin.buffer, sys.stdout.buffer,
                      local_caller=caller, notify=notify, overrides=overrides,
                      cutthrough_opener=open_cutthrough, hold_deliverer=deliver_held)
    return 0


def do_bsmtp(opts: CliOptions) -> int:
    """-bS: batched SMTP on stdin; each accepted message is delivered per -od."""
    config = load(opts)
    from pymta.cli.bsmtp import run_batch
    log = _logger(config)
    return run_batch(config, opts, sys.stdin.buffer, sys.stdout, sys.stderr, log,
                     _delivery_per_od(opts, config, log, policy=True))


def _delivery_per_od(opts: CliOptions, config: Any, log: Any,
                     policy: bool = False) -> Callable[[str], None]:
    """What -bs and -bS do with each accepted message: deliver it as -od says (in the
    foreground, in the background, or not at all: queue_only, -odq, -N).  With
    ``policy`` (-bS) queue_only_file and queue_only_load are checked here; an SMTP
    session (-bs) checks them itself before it calls this."""
    from pymta.delivery import deliver_message
    mode = _delivery_mode(opts, config)
    load = LoadQueueing(config)         # latched for the whole -bs / -bS input

    def after_accept(msgid: str) -> None:
        if opts.dont_deliver or mode == "q" or (
                policy and _queued_by_policy(config, load, log, msgid)):
            return
        if mode in ("i", "f"):
            _deliver_quietly(deliver_message, config, msgid, log)
        else:
            _deliver_in_background(deliver_message, config, msgid, log)
    return after_accept


def _delivery_mode(opts: CliOptions, config: Any) -> str:
    """-od's mode, or "q" when queue_only is in effect (load() has let -od override it
    as far as queue_only_override allows)."""
    from pymta.daemon.util import main_opt
    if main_opt(config, "queue_only"):
        return "q"
    mode = opts.delivery_mode or "b"
    return "b" if mode == "q" else mode


def _queued_by_policy(config: Any, load: LoadQueueing, log: Any, msgid: str) -> bool:
    """queue_only_file (which -od does not override: Exim 4.96 looks at the file after
    the command line) and queue_only_load, checked for each message received."""
    if queue_only_file_exists(config):
        return True
    why = load.reason()
    if why is not None and log_selected(config, "delay_delivery"):
        log.main(f"no immediate delivery: {why}", msgid.rpartition("/")[2])
    return why is not None


def _deliver_quietly(deliver: Callable[..., Any], config: Any, msgid: str, log: Any) -> None:
    """The delivery started for a message just received (so queue_domains applies)."""
    queue, _, msgid = msgid.rpartition("/")     # "queue/id" in a named queue
    try:
        deliver(config, msgid, log, queue=queue, at_reception=True)
    except Exception:
        import traceback
        try:
            log.panic(f"{msgid} delivery crashed: "
                      + traceback.format_exc().replace("\n", "\n  "))
        except Exception:
            # The message is spooled (a queue run retries it): a log that cannot be
            # written must not turn the submission into a failure exit.
            sys.stderr.write(f"pymta: {msgid} delivery crashed and the log failed\n")


def _deliver_in_background(deliver: Callable[..., Any], config: Any, msgid: str,
                           log: Any) -> None:
    """-odb: a detached grandchild delivers; the caller returns at once."""
    from pymta.daemon.util import fork_detached
    if not fork_detached():
        return
    try:
        _deliver_quietly(deliver, config, msgid, log)
    finally:
        os._exit(0)


#: Actions that write the spool or the logs.  Run by root, they act with exim_user's
#: effective ids, so that what they create belongs to exim_user (as with Exim).
_AS_EXIM_USER = {"bm", "bs", "bS", "M", "Mrm", "Mf", "Mt", "Mg", "Mar", "Mmd", "Mmad", "Mes", "q",
                 "MG"}


def _as_exim_user(handler: Callable[[CliOptions], int], opts: CliOptions) -> int:
    """Run ``handler`` for root as exim_user (root as before when exim_user is unset)."""
    from pymta.daemon.preload import preload_for
    from pymta.daemon.util import PrivilegeError, exim_effective, exim_ids, prepare_spool
    config = load(opts)
    try:
        ids = exim_ids(config)
        if ids is not None:
            prepare_spool(config, ids)
    except (PrivilegeError, OSError) as exc:
        sys.stderr.write(f"pymta: {exc}\n")
        return 1
    preload_for(ids)        # exim_user may not be able to read the Python library
    with exim_effective(ids):
        return handler(opts)


_DISPATCH: dict[str, Callable[[CliOptions], int]] = {
    "bV": do_version, "bP": do_bP, "be": do_be, "bf": do_filter_test,
    "bt": lambda o: do_bt(o, False), "bv": lambda o: do_bt(o, True),
    "bvs": lambda o: do_bt(o, "sender"),
    "bp": do_bp, "bpc": do_bp, "bpu": do_bp, "bpa": do_bp, "bpi": do_bp,
    "Mvh": do_view, "Mvb": do_view, "Mvl": do_view, "Mrm": do_remove,
    "Mf": do_freeze, "Mt": do_freeze, "M": do_deliver_ids, "Mg": do_give_up,
    "Mar": do_edit, "Mmd": do_edit, "Mmad": do_edit, "Mes": do_edit, "MG": do_move_queue,
    "q": lambda o: do_daemon(o) if o.queue_interval else do_queue_run(o),
    "bd": do_daemon, "bdf": do_daemon, "bw": do_daemon, "bm": do_submit, "bh": do_bh,
    "bs": do_bs, "bS": do_bsmtp,
    "z": do_log_line,
    "bi": do_bi,
    "brt": do_brt,
    "brw": do_brw,
}


def _byte_clean_stdio() -> None:
    """Text that came as 8-bit bytes which are not UTF-8 (an address from an SMTP
    command, a header) holds them as surrogate escapes: write them back as the same
    bytes, as Exim would, rather than as Python's backslash escapes or an error."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")


def run(argv: list[str], *, sendmail: bool = False) -> int:
    _byte_clean_stdio()
    _COMMAND_LINE[:] = [sys.argv[0] if sys.argv else "pymta"] + list(argv)
    try:
        opts = parse_args(argv, sendmail=sendmail)
    except UsageError as exc:
        sys.stderr.write(f"{exc.line()}\n")
        return 1
    if opts.action == "help" and sendmail:
        _write(usage.SENDMAIL)
        return 0
    # -v (which -d implies) alone writes only the drivers' debug_print texts
    bits = (opts.debug_selector if opts.debug else 0) | \
        (SELECTOR_BITS["v"] if opts.verbose else 0)
    if not bits:
        return _run_action(opts)
    debug.start_stderr(bits)
    try:
        return _run_action(opts)
    finally:
        debug.reset()


def _run_action(opts: CliOptions) -> int:
    """What the parsed command line asks for."""
    if opts.debug:
        # Exim ignores these silently; its debug output shows the whole command line.
        for opt in opts.ignored:
            sys.stderr.write(f"pymta: option {opt} ignored (no effect)\n")
    if opts.action == "version":
        _write(f"pymta version {pymta.__version__} (Exim {pymta.EXIM_COMPAT_VERSION} compatible)\n")
        return 0
    if opts.action == "help":
        _write(USAGE)
        return 0
    handler = _DISPATCH.get(opts.action)
    if handler is None:
        sys.stderr.write(f"pymta: -{opts.action} is not supported\n")
        return 1
    if opts.action in ("M", "Mrm", "Mvh", "Mvb", "Mvl", "Mf", "Mt", "Mg", "Mar", "Mmd",
                       "Mmad", "Mes") and not opts.args:
        sys.stderr.write("pymta: no message ids given after -M option\n")
        return 1
    log_arguments(opts.action, _COMMAND_LINE, lambda: load(opts))
    try:
        caller_originator(load(opts))     # Exim gives up on a caller it cannot name
    except UnknownCallerError as exc:
        sys.stderr.write(f"pymta: {exc}\n")
        return 1
    refusal = _admin_refusal(opts)
    if refusal is not None:
        sys.stderr.write(refusal)
        return 1
    if (os.geteuid() == 0 and opts.action in _AS_EXIM_USER
            and not (opts.action == "q" and opts.queue_interval)):
        return _as_exim_user(handler, opts)
    return handler(opts)


def main(argv: list[str] | None = None) -> int:
    """``pymta`` with Exim's flags; returns (and, as a console script, exits with) a status."""
    if argv is None:
        # Like Exim, behave according to the name we were called by.
        name = os.path.basename(sys.argv[0])
        argv = sys.argv[1:]
        if name == "mailq":
            return mailq_main(argv)
        elif name == "runq":
            argv = ["-q"] + argv
        elif name == "sendmail":
            return sendmail_main(argv)
    try:
        return run(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        return 1
    except BrokenPipeError:
        return 1


def sendmail_main(argv: list[str] | None = None) -> int:
    """``sendmail``: the same flags; without an action it submits a message (-bm)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv, sendmail=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def mailq_main(argv: list[str] | None = None) -> int:
    """``mailq``: ``pymta -bp``."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("--help", "-help") for a in argv):
        _write(usage.MAILQ)
        return 0
    return main(["-bp"] + list(argv))


if __name__ == "__main__":
    sys.exit(main())
