"""pymta-stats on a main log that a real daemon wrote: messages delivered locally (one
with two recipients), one deferred by a closed port, a relay attempt refused.  The
numbers are checked against the traffic and against Debian's eximstats reading the
same log."""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_admin_hints import tool
from tests.support.smtp import SmtpTestClient


@pytest.fixture
def mainlog(pymta_daemon, tmp_path):
    d = pymta_daemon()          # BASE_CONFIG; nothing listens on SINK_PORT
    with SmtpTestClient(d.port) as c:
        c.send_message("a@client.example", "alice@test.example",
                       b"Subject: one\r\n\r\nfirst\r\n")
        c.send_message("b@client.example", ["alice@test.example", "bob@test.example"],
                       b"Subject: two\r\n\r\nsecond, a little longer\r\n")
        c.send_message("a@client.example", "x@remote.example",
                       b"Subject: three\r\n\r\nthird\r\n")
        assert c.cmd("MAIL FROM:<a@client.example>")[0] == 250
        assert c.cmd("RCPT TO:<y@elsewhere.example>")[0] == 550
        c.quit()
    d.wait_for_log(r" == x@remote\.example ")
    d.wait_for_log(r" => (alice|bob) <", count=3)
    d.wait_for_log(r" rejected RCPT ")
    path = tmp_path / "mainlog"
    path.write_text(d.log())
    return path


def test_stats_counts_the_traffic(mainlog, tmp_path):
    text = mainlog.read_text()
    sizes = [int(s) for s in re.findall(r" <= \S+ .* S=(\d+)", text)]
    assert len(sizes) == 3
    proc = tool("pymta-stats", "--json", str(mainlog))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["received"] == {"messages": 3, "bytes": sum(sizes), "hosts": 1,
                                  "delayed": 1, "failed": 0}
    # three local deliveries: the first message's, and one per recipient of the second
    assert report["delivered"] == {"messages": 3, "addresses": 3,
                                   "bytes": sizes[0] + 2 * sizes[1], "hosts": 1}
    assert report["transports"] == {"local_maildir": {"messages": 3,
                                                      "bytes": sizes[0] + 2 * sizes[1]}}
    assert report["destination_domains_by_count"] == [
        {"name": "test.example", "messages": 3, "bytes": sizes[0] + 2 * sizes[1]}]
    assert report["sending_hosts_by_volume"] == [
        {"name": "(client.test)", "messages": 3, "bytes": sum(sizes)}]
    assert report["rejections"] == [{"count": 1,
                                     "reason": "Rejected RCPT: relay not permitted"}]
    assert report["rejected_ips"] == [{"count": 1, "ip": "[127.0.0.1]"}]

    # the same from a compressed log, and the text report says the same
    packed = tmp_path / "mainlog.1.gz"
    packed.write_bytes(gzip.compress(mainlog.read_bytes()))
    assert json.loads(tool("pymta-stats", "--json", str(packed)).stdout) == report
    lines = tool("pymta-stats", str(packed)).stdout.splitlines()
    assert re.search(rf"^  Received +{sum(sizes)} +3 +1 +1 33\.3% +0  0\.0%$",
                     "\n".join(lines), re.M), lines
    assert any(re.fullmatch(r"  Delivered +\d+ +3 +3 +1", ln) for ln in lines), lines


SAMPLE = Path(__file__).resolve().parent.parent / "data" / "admin" / "mainlog-sample"


def _eximstats_totals(text: str) -> dict[str, tuple[int, ...]]:
    """The numbers of eximstats's grand total rows."""
    rows = {}
    for name in ("Received", "Delivered", "Rejects"):
        m = re.search(rf"^  {name} +([\d %.]+)$", text, re.M)
        assert m, text
        rows[name] = tuple(int(float(x)) for x in m.group(1).replace("%", "").split())
    return rows


@pytest.mark.parametrize("which", ["daemon", "sample"])
def test_eximstats_reads_the_same_log(mainlog, which):
    eximstats = shutil.which("eximstats", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if eximstats is None:
        pytest.skip("eximstats (Debian package exim4-base) is not installed")
    log = mainlog if which == "daemon" else SAMPLE
    theirs = subprocess.run([eximstats, "-h0", str(log)], capture_output=True, text=True,
                            timeout=60).stdout
    ours = json.loads(tool("pymta-stats", "--json", str(log)).stdout)
    rows = _eximstats_totals(theirs)
    rec, dlv = ours["received"], ours["delivered"]
    # Received: volume, messages, hosts, delayed, delayed %, failed, failed %
    assert rows["Received"][:3] == (rec["bytes"], rec["messages"], rec["hosts"])
    assert (rows["Received"][3], rows["Received"][5]) == (rec["delayed"], rec["failed"])
    assert rows["Delivered"] == (dlv["bytes"], dlv["messages"], dlv["addresses"],
                                 dlv["hosts"])
    for name, t in ours["transports"].items():
        assert re.search(rf"^  {name} +{t['bytes']} +{t['messages']}$", theirs, re.M), theirs
