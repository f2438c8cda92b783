"""ipliteral router: -bt output as Exim 4.96 prints it for the same configuration, the
self option for this host's own address, and a delivery to an address literal."""
from __future__ import annotations

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
local_interfaces = 127.0.0.1
begin routers
lit:
  driver = ipliteral
  transport = remote_smtp
  self = SELF
begin transports
remote_smtp:
  driver = smtp
  port = SINK_PORT
  allow_localhost
"""

# (address, exit status, output) from exim4 -bt with this configuration (self = freeze)
EXIM_BT = [
    ("u@[192.0.2.7]", 0,
     "u@[192.0.2.7]\n  router = lit, transport = remote_smtp\n  host [192.0.2.7] [192.0.2.7]\n"),
    ("u@[IPv6:2001:db8::1]", 0,
     "u@[IPv6:2001:db8::1]\n  router = lit, transport = remote_smtp\n"
     "  host [ipv6:2001:db8::1] [2001:db8::1]\n"),
    ("u@[127.0.0.1]", 1, "u@[127.0.0.1] cannot be resolved at this time: remote host address "
                         "is the local host\n"),
    ("u@[999.1.1.1]", 2, "u@[999.1.1.1] is undeliverable: Unrouteable address\n"),
    ("u@example.com", 2, "u@example.com is undeliverable: Unrouteable address\n"),
]


def test_bt_matches_exim(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path, macros={"SELF": "freeze", "SINK_PORT": "25"})
    d.prepare()
    for address, status, output in EXIM_BT:
        r = d.run("-bt", address)
        assert (r.returncode, r.stdout) == (status, output), address


def test_delivery_to_an_address_literal(tmp_path):
    with SmtpSink() as sink:
        d = PymtaDaemon(CONFIG, tmp_path, macros={"SELF": "send",
                                                  "SINK_PORT": str(sink.port)})
        d.submit_and_deliver("s@test.example", "u@[127.0.0.1]", b"Subject: lit\n\nhi\n")
        assert sink.wait_for(1)
        (msg,) = sink.received()
        assert msg.recipients == ["u@[127.0.0.1]"]
    assert "=> u@[127.0.0.1] R=lit T=remote_smtp H=[127.0.0.1] [127.0.0.1]" in d.log()
