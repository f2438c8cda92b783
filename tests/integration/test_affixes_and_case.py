"""Local-part affixes and case on the way out, as Exim 4.96 handles them (compared with
Debian's exim4 on the same configuration):

- RCPT TO names the address as it came, case kept, less the affixes the router took off
  it (with them under rcpt_include_affixes; they were sent twice then);
- the =>, -> and == lines name the address as Exim's log does: the local part without
  its affixes and lower-cased, at the lower-cased domain, then the original recipient in
  <> when that is not the same address;
- $local_part_suffix is tainted (a piece of the client's address), and a delivery
  deferred because a file name is tainted is a configuration error: it is not bounced by
  a retry timeout, even with no retry rules at all.
"""
from __future__ import annotations

import re

import pytest

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = accept_all

begin acl

accept_all:
  accept

begin routers

alias:
  driver = redirect
  local_parts = ^alias
  data = Target-x@relay.example

out:
  driver = manualroute
  domains = relay.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = out
  local_part_suffix = -*
  local_part_suffix_optional

batch:
  driver = accept
  domains = batch.example
  local_part_suffix = -*
  local_part_suffix_optional
  transport = bsmtp

local:
  driver = accept
  domains = +local_domains
  local_part_suffix = -*
  local_part_suffix_optional
  transport = box

begin transports

out:
  driver = smtp
  allow_localhost
  hosts_avoid_tls = *
INCLUDE_AFFIXES

box:
  driver = appendfile
  file = DIR/mail/BOX_NAME

bsmtp:
  driver = appendfile
  file = DIR/mail/bsmtp
  use_bsmtp
INCLUDE_AFFIXES
"""
# (no retry section: Exim then treats a temporary error as permanent)


def _run(tmp_path, recipients, include_affixes=False, box_name="box"):
    sink = SmtpSink().start()
    (tmp_path / "mail").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mail").chmod(0o777)
    config = CONFIG.replace("INCLUDE_AFFIXES", "  rcpt_include_affixes" if include_affixes
                            else "").replace("BOX_NAME", box_name)
    d = PymtaDaemon(config, tmp_path, macros={"SINK_PORT": str(sink.port)})
    try:
        d.start()
        with d.client() as c:
            c.ehlo("client.example")
            assert c.cmd("MAIL FROM:<Sender@src.example>")[0] == 250
            for r in recipients:
                assert c.cmd(f"RCPT TO:<{r}>")[0] == 250
            assert c.data(b"Subject: t\r\n\r\nhello\r\n")[0] == 250
        d.wait_for_log(r" (Completed|==)", 20)
        lines = [re.sub(r"^\S+ \S+ \S+ ", "", ln) for ln in d.log().splitlines()]
        rcpts = [c for c in sink.commands if c.upper().startswith("RCPT")]
        return d, lines, rcpts
    finally:
        sink.stop()
        d.stop()


def _delivery_lines(lines):
    return sorted(re.sub(r" (H|C|K|QT|DT)=.*", "", ln) for ln in lines
                  if ln[:3] in ("=> ", "-> ", "== ", "** "))


def test_rcpt_and_log_names_as_exim(tmp_path):
    _, lines, rcpts = _run(tmp_path, ["John-ext@relay.example", "OK@Relay.Example",
                                      "Alias-y@relay.example", "Bob-home@test.example"])
    assert sorted(rcpts) == ["RCPT TO:<John@relay.example>", "RCPT TO:<OK@Relay.Example>",
                             "RCPT TO:<Target@relay.example>"]
    names = _delivery_lines(lines)
    assert "=> bob <Bob-home@test.example> R=local T=box" in names
    smtp = sorted(n.split(" ", 1)[1] for n in names if "T=out" in n)
    assert smtp == ["john@relay.example <John-ext@relay.example> R=out T=out",
                    "ok@relay.example <OK@Relay.Example> R=out T=out",
                    "target@relay.example <Alias-y@relay.example> R=out T=out"]


def test_rcpt_include_affixes_sends_them_once(tmp_path):
    _, lines, rcpts = _run(tmp_path, ["John-ext@relay.example"], include_affixes=True)
    assert rcpts == ["RCPT TO:<John-ext@relay.example>"]
    assert _delivery_lines(lines) == [
        "=> john-ext@relay.example <John-ext@relay.example> R=out T=out"]


@pytest.mark.parametrize("include,rcpt,logged", [
    (False, "RCPT TO:<John@Batch.Example>", "=> john <John-ext@Batch.Example>"),
    (True, "RCPT TO:<John-ext@Batch.Example>", "=> john-ext <John-ext@Batch.Example>"),
])
def test_batch_smtp_envelope(tmp_path, include, rcpt, logged):
    """use_bsmtp writes the RCPT as the smtp transport sends it (exim4 the same)."""
    _, lines, _ = _run(tmp_path, ["John-ext@Batch.Example"], include_affixes=include)
    batch = (tmp_path / "mail" / "bsmtp").read_text()
    assert [ln for ln in batch.splitlines() if ln.startswith("RCPT")] == [rcpt]
    assert _delivery_lines(lines) == [f"{logged} R=batch T=bsmtp"]


@pytest.mark.parametrize("box_name", ["$local_part_suffix", "x${local_part_suffix}"])
def test_tainted_file_name_defers_without_bounce(tmp_path, box_name):
    d, lines, _ = _run(tmp_path, ["Bob-home@test.example"], box_name=box_name)
    deferred = [ln for ln in lines if ln.startswith("== ")]
    assert deferred and "Tainted" in deferred[0] and "not permitted" in deferred[0]
    assert deferred[0].startswith("== bob@test.example <Bob-home@test.example> R=local T=box")
    assert not [ln for ln in lines if ln.startswith("** ")]     # no retry timeout
    assert len(d.queue()) == 1 and not list((tmp_path / "mail").iterdir())
