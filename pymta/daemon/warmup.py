"""Take a receiver's code paths once in the daemon's master, before it forks (issue 12).

Every receiver is a fork of the master and shares its memory until it writes to it.
Code a child runs for the first time is quickened there (CPython 3.11 rewrites the
bytecode in place), and what is built lazily on first use (parsed expansions, compiled
regular expressions, option tables, a module's first-call state) is allocated in the
child: each receiver paid for all of that in pages of its own.  Done once in the master,
it is shared by all of them.  The master therefore:

* holds one SMTP session with itself over a socket pair (EHLO, MAIL, RCPT, DATA, RSET,
  QUIT) through the real session code, and
* parses every expansion string of the configuration (a pure parse into the cached
  trees; nothing is evaluated).

The session must not be seen anywhere.  It runs under a configuration of its own made
of the option defaults whose spool directory (and so its logs) is a temporary directory,
removed afterwards: the message is written and fsynced there as any message is, and
never delivered (nobody is told of it).  None of the operator's ACLs, host lists,
lookups or expansion strings run, so there is no DNS query, hints database, ratelimit
count, callout or command.  It happens before metric counting is set up and before the
daemon's process title is set.  It is skipped under ``-d`` (its debug output would look
like a real connection).  A failure of it only costs the memory it would have saved.
"""
from __future__ import annotations

import gc
import socket
import tempfile
import threading
from collections.abc import Iterator

from pymta.acl.parse import parse_acl_text
from pymta.config.main_options import MainOptions
from pymta.config.model import Config
from pymta.config.values import default_log_file_path
from pymta.debuglog import debug
from pymta.expand.compiled import seq_fn
from pymta.expand.errors import ExpandError
from pymta.expand.parser import compile_expansion
from pymta.log import Logger
from pymta.smtp.session import run_session
from pymta.tls.serverconf import forget_server_tls

#: Name of the warm-up configuration's one ACL (its own ACL table: no clash possible).
WARMUP_ACL = "warmup_rcpt"
#: Only pure conditions: named and plain lists of domains, local parts, senders and IP
#: addresses (no host name lookup, no lookup of any kind).
_WARMUP_ACL_TEXT = ("accept domains = +warmup_domains\n"
                    "  local_parts = postmaster : warmup\n"
                    "  senders = *@warmup.invalid\n"
                    "  hosts = 127.0.0.1 : ::1")
_WARMUP_LISTS = {"domain": {"warmup_domains": "warmup.invalid : *.warmup.invalid"},
                 "host": {}, "address": {}, "localpart": {}}
#: Longest wait for one line of the warm-up dialogue, either side.
_TIMEOUT = 5.0
_PEER = ("127.0.0.1", 1025)
_LOCAL = ("127.0.0.1", 25)

_MESSAGE = (b"From: Warm Up <warmup@warmup.invalid>\r\n"
            b"To: <postmaster@warmup.invalid>\r\n"
            b"Subject: warm-up\r\n"
            b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            b"Message-ID: <warmup@warmup.invalid>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
            b"warm-up\r\n"
            b"..dot-stuffed line\r\n"
            b".\r\n")
_DIALOGUE = (b"EHLO client.warmup.invalid\r\n",
             b"MAIL FROM:<warmup@warmup.invalid> SIZE=300 BODY=7BIT\r\n",
             b"RCPT TO:<postmaster@warmup.invalid>\r\n",
             b"DATA\r\n",
             _MESSAGE,
             b"RSET\r\n",
             b"NOOP\r\n",
             b"QUIT\r\n")


def warmup_config(config: Config, spool: str) -> Config:
    """The configuration the warm-up session runs under: option defaults (of the same
    option table as ``config``) with ``spool`` as spool directory and logs in it, no
    STARTTLS, and an RCPT ACL of pure conditions that accepts."""
    main = MainOptions(config.main.specs)
    main.set("spool_directory", spool)
    main.set("primary_hostname", "warmup.invalid")    # not the default's getfqdn() lookup
    main.set("log_file_path", default_log_file_path(spool))
    main.set("tls_advertise_hosts", "")           # STARTTLS not offered
    main.set("rfc1413_hosts", "")                 # never an ident query
    main.set("helo_lookup_domains", "")           # never the client's name from DNS
    main.set("smtp_receive_timeout", int(_TIMEOUT))
    main.set("acl_smtp_rcpt", WARMUP_ACL)
    return Config(filename="warm-up", main=main,
                  named_lists={kind: dict(lists) for kind, lists in _WARMUP_LISTS.items()},
                  acls={WARMUP_ACL: parse_acl_text(_WARMUP_ACL_TEXT, file="warm-up")})


def _client(sock: socket.socket, codes: list[bytes]) -> None:
    """The client side of the warm-up dialogue: each command after the previous reply,
    whose code goes to ``codes``."""
    sock.settimeout(_TIMEOUT)
    f = sock.makefile("rb")
    try:
        def reply() -> bool:
            while True:
                line = f.readline()
                if not line:
                    return False
                if line[3:4] != b"-":
                    codes.append(line[:3])
                    return True
        if not reply():
            return
        for data in _DIALOGUE:
            sock.sendall(data)
            if not reply():
                return
    except OSError:
        pass
    finally:
        f.close()
        sock.close()


def warm_session(config: Config) -> list[bytes]:
    """One SMTP session of the master with itself under :func:`warmup_config`, in a
    temporary spool removed afterwards; the reply codes the client saw, one per reply."""
    with tempfile.TemporaryDirectory(prefix="pymta-warmup-") as spool:
        return _session(warmup_config(config, spool))


def _session(warm: Config) -> list[bytes]:
    log = Logger(warm)
    codes: list[bytes] = []
    server_end, client_end = socket.socketpair()
    client = threading.Thread(target=_client, args=(client_end, codes), name="warm-up",
                              daemon=True)
    client.start()
    try:
        server_end.settimeout(_TIMEOUT)
        run_session(server_end, warm, _LOCAL[1], log, peer=_PEER, local=_LOCAL)
    finally:
        server_end.close()
        client.join(_TIMEOUT)
        log.close()
        forget_server_tls(warm)      # the session built its TLS (unused): not kept
    return codes


def expansion_strings(config: Config) -> Iterator[str]:
    """The configuration's texts that expansion may see: main options, ACL items and
    driver options holding a ``$`` or a backslash."""
    main = config.main
    for name in main.specs:
        if main.is_set(name):
            yield from _expandable(main.get(name))
    for statements in config.acls.values():
        for statement in statements:
            for item in statement.items:
                yield from _expandable(item.value)
    drivers = [*config.routers, *config.transports.values(), *config.authenticators.values()]
    for driver in drivers:
        for setting in driver.settings:
            yield from _expandable(setting.value)


def _expandable(value: object) -> Iterator[str]:
    if isinstance(value, str) and ("$" in value or "\\" in value):
        yield value


def compile_expansions(config: Config) -> None:
    """Parse every expansion string of ``config`` into the shared tree cache, and make
    each tree's closures, without evaluating anything.  Never raises."""
    try:
        texts = list(expansion_strings(config))
    except AttributeError:
        return          # not a whole Config (the master also runs with stand-ins)
    for text in texts:
        try:
            tree = compile_expansion(text)
            if tree.fn is None:
                tree.fn = seq_fn(tree)
        except (ExpandError, RecursionError):
            pass        # reported where the string is used, as before


def warm_up(config: Config) -> None:
    """Everything above, then a collection so the session's garbage is gone before the
    first fork (the master freezes what is left, see Master._fork)."""
    if debug.any:
        return
    try:
        warm_session(config)
    except Exception:
        pass            # only memory is at stake
    compile_expansions(config)
    gc.collect()
