"""Exim's events (issue 12): the main and transport event_action options.

The real daemon delivers to the test sink (or to a closed port) while an event ACL
writes every event it sees to the main log.  The expected sequences -- event names in
order, $event_data, $event_defer_errno, $local_part and $router_name -- were recorded
from Exim 4.96 in the same scenarios (tests/data/events/record_exim.py writes
tests/data/events/exim_4.96.json).

One configured difference: the smtp transport here has ``connection_max_messages = 1``.
pymta's long-lived delivery workers keep a connection open for the next message, so
without it tcp:close comes when the idle connection is closed later, whereas Exim's
delivery process closes it before it logs the deliveries.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_daemon_e2e import send
from tests.support.sink import SmtpSink

EXPECTED_FILE = Path(__file__).parents[1] / "data" / "events" / "exim_4.96.json"

EVENT_LINE = ("EV name=$event_name data=[$event_data] errno=[$event_defer_errno] "
              "lp=[$local_part] rn=[$router_name]")

_EVENT_RX = re.compile(r" EV name=(\S+) data=\[(.*)\] errno=\[(-?\d*)\] "
                       r"lp=\[([^\]]*)\] rn=\[([^\]]*)\]$")


def parse_events(log: str, msgid: str) -> list[list[str]]:
    """[name, data, errno, local_part, router_name] of each event line about
    ``msgid`` in a main log, in order."""
    events = []
    for line in log.splitlines():
        if f" {msgid} EV name=" not in line:
            continue
        m = _EVENT_RX.search(line)
        assert m is not None, line
        events.append(list(m.groups()))
    return events


def _sink(**kw: Any) -> Callable[[int], SmtpSink]:
    return lambda port: SmtpSink(port=port, **kw)


#: name -> sender, recipients, the sink (None: nothing listens) and text appended to
#: the smtp transport's event_action
SCENARIOS: dict[str, dict[str, Any]] = {
    "smtp_accept": {"sender": "sender@remote.example", "recipients": ["good@remote.example"],
                    "sink": _sink()},
    "smtp_rcpt": {"sender": "sender@remote.example",
                  "recipients": ["good@remote.example", "bad@remote.example",
                                 "later@remote.example"],
                  "sink": _sink(rcpt_replies={"bad@remote.example": (550, "no such user"),
                                              "later@remote.example": (451, "try later")})},
    "host_closed": {"sender": "sender@remote.example", "recipients": ["good@remote.example"],
                    "sink": None},
    "data_4xx": {"sender": "sender@remote.example", "recipients": ["good@remote.example"],
                 "sink": _sink(mode="data", code=451, text="data later")},
    "data_5xx": {"sender": "sender@remote.example", "recipients": ["good@remote.example"],
                 "sink": _sink(mode="data", code=550, text="data refused")},
    "banner_4xx": {"sender": "sender@remote.example", "recipients": ["good@remote.example"],
                   "sink": _sink(banner=(421, "busy now"))},
    "tcp_connect_refused": {"sender": "sender@remote.example",
                            "recipients": ["good@remote.example"], "sink": _sink(),
                            "transport_extra": "${if eq{$event_name}{tcp:connect}{no}}"},
    "smtp_connect_refused": {"sender": "sender@remote.example",
                             "recipients": ["good@remote.example"], "sink": _sink(),
                             "transport_extra": "${if eq{$event_name}{smtp:connect}"
                                                "{not this one}}"},
    "local": {"sender": "sender@remote.example", "recipients": ["alice@test.example"],
              "sink": None},
    "fail_internal": {"sender": "sender@remote.example",
                      "recipients": ["someone@nowhere.example"], "sink": None},
}

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist local_domains = test.example
acl_smtp_rcpt = acl_check_rcpt
event_action = ${acl{ev}}

begin acl

ev:
  warn logwrite = EVENT_LINE
  accept

acl_check_rcpt:
  accept

begin routers

nowhere:
  driver = redirect
  domains = nowhere.example
  allow_fail
  data = :fail: no such place

remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_smtp

local_users:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;DIR/users
  transport = local_maildir

begin transports

remote_smtp:
  driver = smtp
  allow_localhost
  connection_max_messages = 1
  event_action = ${acl{ev}}TRANSPORT_EXTRA

local_maildir:
  driver = appendfile
  directory = DIR/maildir/${local_part_data}
  maildir_format
  create_directory
  event_action = ${acl{ev}}

begin retry

*  *  F,1h,1s
""".replace("EVENT_LINE", EVENT_LINE)


def _comparable(events: list[list[str]]) -> list[list[str]]:
    """What must agree with Exim: everything, except the values Exim leaves over from
    an earlier event -- $event_defer_errno of tcp:close, and the address variables of
    the message-level msg:complete."""
    out = []
    for name, data, errno, lp, rn in events:
        if name == "tcp:close":
            errno = "*"
        if name == "msg:complete":
            lp = rn = "*"
        out.append([name, data, errno, lp, rn])
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_events_in_exim_order(name, pymta_daemon, sink_port):
    scenario = SCENARIOS[name]
    expected = json.loads(EXPECTED_FILE.read_text())[name]
    config = CONFIG.replace("TRANSPORT_EXTRA", scenario.get("transport_extra", ""))
    sink = scenario["sink"](sink_port) if scenario["sink"] else None
    if sink is not None:
        sink.start()
    try:
        d = pymta_daemon(config=config)
        code, text = send(d, scenario["sender"], scenario["recipients"],
                          b"Subject: events\r\n\r\nbody\r\n")
        assert code == 250, text
        msgid = re.search(r"id=(\S+)", text).group(1)
        assert wait_for(lambda: len(parse_events(d.log(), msgid)) >= len(expected), 20), \
            (parse_events(d.log(), msgid), d.diagnostics())
        time.sleep(0.5)                 # nothing more may follow
        got = parse_events(d.log(), msgid)
    finally:
        if sink is not None:
            sink.stop()
    assert _comparable(got) == _comparable(expected)


# The log lines Exim 4.96 writes when an event action refuses a connection (exim4).
REFUSAL_LINES = {
    "tcp_connect_refused": [
        r"H=127\.0\.0\.1 \[127\.0\.0\.1\] Event requests alternate response$",
        r"== good@remote\.example R=remote T=remote_smtp defer \(-58\)$"],
    "smtp_connect_refused": [
        r"H=127\.0\.0\.1 \[127\.0\.0\.1\]: deferred by smtp:connect event expansion: "
        r"not this one$",
        r"== good@remote\.example R=remote T=remote_smtp defer \(-27\): deferred by "
        r"smtp:connect event expansion: not this one$"],
}


@pytest.mark.parametrize("name", sorted(REFUSAL_LINES))
def test_refusing_event_results_are_logged_as_exim_does(name, pymta_daemon, sink_port):
    scenario = SCENARIOS[name]
    with scenario["sink"](sink_port) as sink:
        d = pymta_daemon(config=CONFIG.replace("TRANSPORT_EXTRA",
                                               scenario["transport_extra"]))
        code, text = send(d, scenario["sender"], scenario["recipients"],
                          b"Subject: events\r\n\r\nbody\r\n")
        assert code == 250, text
        msgid = re.search(r"id=(\S+)", text).group(1)
        for pattern in REFUSAL_LINES[name]:
            d.wait_for_log(rf"{msgid} {pattern}", 20)
        commands = list(sink.commands)
    # tcp:connect: nothing reached the sink; smtp:connect: QUIT right after the banner
    if name == "tcp_connect_refused":
        assert commands == [] and sink.connections == 0
    else:
        assert commands == ["QUIT"]


def test_cutthrough_delivery_events(pymta_daemon, sink_port):
    """As exim4 with control = cutthrough_delivery: the connection events come while
    the RCPT ACL runs (no message id yet), msg:delivery after the ">>" line, then the
    arrival and "Completed" with neither msg:complete nor tcp:close."""
    config = CONFIG.replace("acl_check_rcpt:\n  accept\n",
                            "acl_check_rcpt:\n  accept control = cutthrough_delivery\n")
    assert "cutthrough_delivery" in config
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=config.replace("TRANSPORT_EXTRA", ""))
        code, text = send(d, "sender@remote.example", ["good@remote.example"],
                          b"Subject: events\r\n\r\nbody\r\n")
        assert code == 250, text
        assert len(sink.messages) == 1
        msgid = re.search(r"id=(\S+)", text).group(1)
        d.wait_for_log(rf"{msgid} Completed$")
        time.sleep(0.5)
        lines = [ln.split(" ", 2)[2] for ln in d.log().splitlines()
                 if " EV name=" in ln or f"{msgid} " in ln]
    assert [re.sub(r"^(\S+ )?(EV name=\S+|>>|<=|Completed).*", r"\1\2", ln)
            for ln in lines] == [
        "EV name=tcp:connect", "EV name=smtp:connect", "EV name=smtp:ehlo",
        f"{msgid} >>", f"{msgid} EV name=msg:delivery", f"{msgid} <=",
        f"{msgid} Completed"]
    delivery = [ln for ln in lines if "EV name=msg:delivery" in ln][0]
    assert "data=[250 OK id=sink] errno=[0] lp=[good] rn=[remote]" in delivery


CALLOUT_REFUSALS = {
    "": None,
    "${if eq{$event_name}{tcp:connect}{nope}}": "Unknown error -58",
    "${if eq{$event_name}{smtp:connect}{nope}}":
        "deferred by smtp:connect event expansion: nope",
}


@pytest.mark.parametrize("extra", sorted(CALLOUT_REFUSALS))
def test_callout_connection_events(extra, pymta_daemon, sink_port):
    """As exim4: a recipient verification callout raises the transport's connection
    events (tcp:connect, smtp:connect, smtp:ehlo, tcp:close); a refusal by tcp:connect
    or smtp:connect makes the callout incomplete (451), with Exim's texts."""
    config = "queue_only\n" + CONFIG.replace(
        "acl_check_rcpt:\n  accept\n",
        "acl_check_rcpt:\n  accept verify = recipient/callout=10s\n")
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=config.replace("TRANSPORT_EXTRA", extra))
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<sender@remote.example>")[0] == 250
            reply = c.cmd("RCPT TO:<good@remote.example>")
            c.cmd("QUIT")
        why = CALLOUT_REFUSALS[extra]
        if why is None:
            assert reply[0] == 250, reply
            d.wait_for_log(r" EV name=tcp:close ")
        else:
            assert reply == (451, "Could not complete recipient verify callout"), reply
            d.wait_for_log(r"temporarily rejected RCPT <good@remote\.example>: Could not "
                           r"complete recipient verify callout: 127\.0\.0\.1 "
                           rf"\[127\.0\.0\.1\] : {re.escape(why)}$")
        time.sleep(0.3)
        names = re.findall(r" EV name=(\S+) ", d.log())
        commands = list(sink.commands)
    expected = {None: ["tcp:connect", "smtp:connect", "smtp:ehlo", "tcp:close"],
                "Unknown error -58": ["tcp:connect"],
                "deferred by smtp:connect event expansion: nope":
                    ["tcp:connect", "smtp:connect", "tcp:close"]}[why]
    assert names == expected
    if why is not None:
        assert commands == ([] if "-58" in why else ["QUIT"])
