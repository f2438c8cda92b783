"""Debian's real log readers on the logs of a daemon that carried real traffic: eximstats
counts the deliveries, deferrals and rejections, fail2ban-regex with the exim and
exim-spam filters matches the relay, unknown-user and authentication failures."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.dns import DnsServer
from tests.support.ports import free_port

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = check_rcpt
acl_smtp_connect = check_connect
# no AUTH on the second port: a client that tries it there is logged
auth_advertise_hosts = ${if eq{$received_port}{PORT2}{}{*}}
log_selector = +smtp_protocol_error
# early input is a synchronisation error only where PIPECONNECT is not offered
pipelining_connect_advertise_hosts =

begin acl
check_connect:
  # on the second port the banner waits, so early input is seen for certain
  accept  delay = ${if eq{$received_port}{PORT2}{1s}{0s}}

check_rcpt:
  accept  authenticated = *
  deny    local_parts = listed
          dnslists = dnsbl.example
          message = $sender_host_address is listed at $dnslist_domain
  deny    domains = ! +local_domains : ! remote.example
          message = relay not permitted
  require verify = sender
  require verify = recipient
  accept

begin retry
*   *   F,1h,10m

begin routers
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1::DEAD_PORT
  self = send
  transport = remote_smtp
local_users:
  driver = accept
  domains = +local_domains
  local_parts = alice : bob
  transport = local_file

begin transports
remote_smtp:
  driver = smtp
  allow_localhost
local_file:
  driver = appendfile
  file = DIR/mail/$local_part_data
  user = USER

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{alice}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
"""

PLAIN_WRONG = "AGFsaWNlAHdyb25n"          # \0alice\0wrong


def _traffic(d: PymtaDaemon) -> None:
    """Two delivered messages, one deferred, two relay denials, one unknown user, one
    client on a block list, one forged sender, two AUTH failures, one AUTH where it was
    not offered, one client that does not wait for the banner."""
    for rcpt in ("alice@test.example", "bob@test.example", "carol@remote.example"):
        with d.client() as c:
            c.banner()
            c.ehlo("client.example")
            code, _ = c.send_message("sender@remote.example", [rcpt],
                                     b"Subject: hi\r\n\r\nhello\r\n")
            assert code == 250
            c.quit()
    with d.client() as c:
        c.banner()
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<spammer@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<victim@relay.example>")[0] == 550
        assert c.cmd("RCPT TO:<victim2@relay.example>")[0] == 550
        assert c.cmd("RCPT TO:<nobody@test.example>")[0] == 550
        assert c.cmd("RCPT TO:<listed@test.example>")[0] == 550
        c.quit()
    with d.client() as c:
        c.banner()
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<forger@nowhere.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 550
        c.quit()
    with d.client(port=d.ports[1]) as c:
        c.banner()
        c.ehlo("client.example")
        assert c.cmd("AUTH PLAIN " + PLAIN_WRONG)[0] == 503
        c.quit()
    for _ in range(2):
        with d.client() as c:
            c.banner()
            c.ehlo("client.example")
            assert c.cmd("AUTH PLAIN " + PLAIN_WRONG)[0] == 535
            c.quit()
    with d.client(port=d.ports[1]) as c:
        c.send_raw(b"EHLO impatient.example\r\n")
        assert c.read_reply()[0] == 554


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("parsers")
    (tmp / "mail").mkdir()
    (tmp / "mail").chmod(0o777)        # deliveries run as nobody
    zones = {"dnsbl.example": "1.0.0.127 IN A 127.0.0.2\n"}
    with DnsServer(zones) as dns_server, PymtaDaemon(
            CONFIG, tmp, ports=2, macros={"DEAD_PORT": str(free_port()), "USER": "nobody"},
            env={"PYMTA_DNS_SERVER": f"127.0.0.1:{dns_server.port}"}) as d:
        _traffic(d)
        d.wait_for_log(r" => alice <alice@test\.example> ")
        d.wait_for_log(r" => bob <bob@test\.example> ")
        d.wait_for_log(r" == carol@remote\.example ")
        d.wait_for_log(r"authenticator failed", count=2)
        d.wait_for_log(r"SMTP protocol synchronization error")
    return d.spool / "log"


def _fail2ban(log: Path, filt: str) -> tuple[int, str]:
    out = subprocess.run(["fail2ban-regex", str(log), f"/etc/fail2ban/filter.d/{filt}.conf"],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", out.stdout)
    assert m, out.stdout + out.stderr
    return int(m.group(1)), out.stdout


def _eximstats(log: Path) -> str:
    if shutil.which("eximstats") is None:
        pytest.skip("eximstats is not installed (Debian package exim4-base)")
    out = subprocess.run(["eximstats", str(log)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _row(report: str, label: str) -> list[str]:
    m = re.search(rf"^  {label} +(.*)$", report, re.M)
    assert m, report
    return m.group(1).split()


def test_eximstats_counts_the_traffic(logs):
    report = _eximstats(logs / "mainlog")
    # volume, messages, hosts, delayed (count, %), failed (count, %)
    assert _row(report, "Received")[1:] == ["3", "1", "1", "33.3%", "0", "0.0%"]
    assert _row(report, "Delivered")[1:] == ["2", "2", "1"]
    # the five RCPT rejections, the impatient client and the host error line of the
    # deferral ("H=127.0.0.1 [127.0.0.1] Connection refused", which eximstats takes
    # for a rejection in Exim's logs too)
    assert _row(report, "Rejects") == ["7", "1"]
    reasons = report.split("Top 50 mail rejection reasons by message count")[1]
    assert re.search(r"^ +2 +Rejected RCPT: relay not permitted$", reasons, re.M), reasons
    assert re.search(r"^ +1 +Rejected RCPT: Unrouteable address$", reasons, re.M), reasons
    assert re.search(r"^ +1 +Rejected RCPT: Sender verify failed$", reasons, re.M), reasons
    assert re.search(r"^ +1 +Listed at dnsbl\.example$", reasons, re.M), reasons
    assert re.search(r"^ +1 +SMTP protocol synchronization error$", reasons, re.M), reasons
    assert re.search(r"^  local_file +\d+ +2$", report, re.M), report


def test_fail2ban_exim_filter_matches_the_attacks(logs):
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban-regex is not installed (Debian package fail2ban)")
    # two AUTH failures, four RCPT rejections (two relay, one unknown user, one forged
    # sender) and the sender verification line, the synchronization error, the AUTH
    # where it was not offered; deliveries and the block-list rejection are not its
    # business.  All but the last went to the rejectlog too, as in Exim.
    for log, count in (("mainlog", 9), ("rejectlog", 8)):
        matched, out = _fail2ban(logs / log, "exim")
        assert matched == count, out


def test_fail2ban_exim_spam_filter_matches_the_block_list_rejection(logs):
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban-regex is not installed (Debian package fail2ban)")
    matched, out = _fail2ban(logs / "mainlog", "exim-spam")
    assert matched == 1, out
