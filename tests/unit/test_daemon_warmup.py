"""The master's warm-up before forking receivers (pymta.daemon.warmup): a real SMTP
session through the session code over a socket pair, under a configuration of its own
with a temporary spool, that leaves nothing behind."""
from __future__ import annotations

import gc
import os
import tempfile
from types import SimpleNamespace

from pymta.config import load_config
from pymta.config.model import Config
from pymta.daemon.warmup import compile_expansions, expansion_strings, warm_session, warm_up
from pymta.expand.parser import compile_expansion
from tests.support.dns import DnsServer

# Every hook that could be seen outside the process: if the warm-up ran the operator's
# ACLs they would refuse the connection, log, or keep ratelimit counts in the spool.
CONFIG = """\
primary_hostname = mx.warmtest.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
acl_smtp_connect = acl_connect
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data
host_lookup = *
message_size_limit = ${{if eq{{1}}{{1}}{{10M}}{{20M}}}}

begin acl

acl_connect:
  warn    logwrite = CONNECT from $sender_host_address
  warn    ratelimit = 0 / 1h / strict / per_conn
  deny    message = no connections here

acl_rcpt:
  deny    condition = ${{if eq{{$local_part}}{{warmtest-unique-rcpt}}{{yes}}{{no}}}}

acl_data:
  deny    message = no data here
"""


def load(tmp_path):
    spool = tmp_path / "spool"
    path = tmp_path / "pymta.conf"
    path.write_text(CONFIG.format(spool=spool))
    return load_config(str(path)), spool


def test_warm_session_runs_a_whole_transaction_past_the_operators_acls(tmp_path):
    config, spool = load(tmp_path)
    codes = warm_session(config)
    # banner, EHLO, MAIL, RCPT, DATA, end of data, RSET, NOOP, QUIT: the connect ACL that
    # denies everything was not used, nor the DATA ACL
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"250", b"250", b"221"]


def test_warm_session_leaves_nothing_behind(tmp_path, monkeypatch):
    config, spool = load(tmp_path)
    spool.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))   # where its spool is made
    before = sorted(os.walk(tmp_path))
    assert warm_session(config)[5] == b"250"      # the message was spooled ...
    # ... in a temporary spool that is gone; nothing in the configured spool: no log
    # file, no message, no hints database (the ratelimit of the connect ACL)
    assert sorted(os.walk(tmp_path)) == before


def test_compile_expansions_parses_the_configurations_strings(tmp_path):
    config, _ = load(tmp_path)
    texts = set(expansion_strings(config))
    rcpt = "${if eq{$local_part}{warmtest-unique-rcpt}{yes}{no}}"
    assert rcpt in texts
    assert "CONNECT from $sender_host_address" in texts
    assert "${if eq{1}{1}{10M}{20M}}" in texts       # a main option
    compile_expansions(config)
    # the cached tree comes back with its closures made: nothing is left for a child
    hits = compile_expansion.cache_info().hits
    assert compile_expansion(rcpt).fn is not None
    assert compile_expansion.cache_info().hits == hits + 1


def test_compile_expansions_ignores_a_broken_string(tmp_path):
    config, _ = load(tmp_path)
    config.acls["acl_rcpt"][0].items[0].value = "${if eq{broken"
    compile_expansions(config)       # the error is reported where the string is used


def test_compile_expansions_of_a_partial_configuration_does_nothing():
    compile_expansions(SimpleNamespace(main=SimpleNamespace()))     # no error


def test_warm_up_keeps_nothing_of_its_configuration(tmp_path):
    config, _ = load(tmp_path)
    warm_up(config)
    # its TLS was built for the session and cached by configuration: dropped again, so
    # the master does not carry the warm-up's configuration into every child
    assert not [o for o in gc.get_objects()
                if isinstance(o, Config) and o.filename == "warm-up"]


def test_warm_session_asks_no_dns_query(tmp_path, monkeypatch):
    config, _ = load(tmp_path)
    with DnsServer({}) as dns_server:          # records every query it receives
        monkeypatch.setenv("PYMTA_DNS_SERVER", f"127.0.0.1:{dns_server.port}")
        assert warm_session(config)[-1] == b"221"
        # not even for the HELO name or the client's address (helo_lookup_domains,
        # host_lookup)
        assert dns_server.queries == []
