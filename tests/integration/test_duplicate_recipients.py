"""Duplicate recipients (the same address but for the case of its domain) delivered
locally, as exim4 4.96 -odi delivered them: the first recipient is the one delivered
and logged, in the recipients' order, and Envelope-to: names the dropped duplicate
before it:
    => u <u@test.example> R=r T=t
    => v <v@test.example> R=r T=t
    Envelope-to: u@TEST.example,
     u@test.example
"""
from __future__ import annotations

import re

from tests.support.daemon import PymtaDaemon

CONFIG = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
r:
  driver = accept
  local_parts = u : v
  transport = t
begin transports
t:
  driver = appendfile
  file = DIR/mbox
  envelope_to_add
"""


def test_the_first_of_duplicates_is_delivered_and_envelope_to_names_all(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    d.prepare()
    (d.spool / "log").mkdir(parents=True, exist_ok=True)
    r = d.run("-odi", "-f", "s@test.example", "u@test.example", "v@test.example",
              "u@TEST.example", input=b"Subject: t\n\nbody\n")
    assert r.returncode == 0, r.stderr
    lines = [re.sub(r"^\S+ \S+ \w{6}-\w{6}-\w{2} ", "", ln) for ln in d.log().splitlines()]
    assert [ln for ln in lines if ln.startswith("=>")] == [
        "=> u <u@test.example> R=r T=t", "=> v <v@test.example> R=r T=t"], lines
    envelope_tos = re.findall(r"^Envelope-to: .*\n(?: .*\n)*", (tmp_path / "mbox").read_text(),
                              re.M)
    assert envelope_tos == ["Envelope-to: u@TEST.example,\n u@test.example\n",
                            "Envelope-to: v@test.example\n"]
