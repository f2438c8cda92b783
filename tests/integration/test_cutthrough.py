"""control = cutthrough_delivery (issue 10), behaviour as recorded from exim4 4.96 with
the same configuration in front of the same kind of sink:

* accepted by the destination: ">>" lines before the arrival line, then "Completed",
  nothing queued, the client gets 250;
* the first recipient refused at RCPT by the destination: "550 Administrative
  prohibition" to the client and "rejected RCPT <x>" in the log; the next recipient
  then takes the normal way;
* the data refused (5xx): the client gets the destination's reply, nothing is kept,
  "... rejected after DATA: R=.. T=.. H=.. C=..." is logged, and no bounce is made;
* the data deferred (4xx): "tmp-reject from cutthrough after DATA" is logged; by default
  the message is queued and the client gets 250 (defer=spool), with defer=pass the
  client gets the 4xx and nothing is kept.
"""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, wait_for
from tests.support.sink import SmtpSink

MESSAGE = b"Subject: cutthrough\r\n\r\nhello\r\n"

ACL = """\
  accept  domains = pass.example
          control = cutthrough_delivery/defer=pass
  accept  domains = remote.example
          control = cutthrough_delivery
"""


def _config() -> str:
    config = BASE_CONFIG.replace("acl_check_rcpt:\n", "acl_check_rcpt:\n" + ACL)
    config = config.replace("  domains = remote.example\n",
                            "  domains = remote.example : pass.example\n")
    # no immediate normal delivery: what is queued stays visible
    return "queue_only\n" + config


def _session(d, rcpts: list[str]) -> tuple[list[tuple[int, str]], tuple[int, str]]:
    with d.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@outside.example>")[0] == 250
        replies = [c.cmd(f"RCPT TO:<{r}>") for r in rcpts]
        if not any(code == 250 for code, _ in replies):
            return replies, (0, "")
        return replies, c.data(MESSAGE)


def test_accepted_by_the_destination(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=_config())
        replies, final = _session(d, ["good@remote.example", "good2@remote.example"])
        assert [c for c, _ in replies] == [250, 250]
        assert final[0] == 250, final
        # delivered before the client got its 250
        assert len(sink.messages) == 1
        assert sorted(sink.messages[0].recipients) == ["good2@remote.example",
                                                        "good@remote.example"]
        msgid = final[1].split("id=")[1]
        log = d.log()
        lines = [ln.split(" ", 3)[3] for ln in log.splitlines() if msgid in ln]
        assert lines[0].startswith(">> good2@remote.example R=remote T=remote_smtp "
                                   "H=127.0.0.1 [127.0.0.1] C=\"250 ")
        assert lines[1].startswith(">> good@remote.example R=remote T=remote_smtp ")
        assert lines[2].startswith("<= a@outside.example ")
        assert lines[3] == "Completed"
        assert not d.queue()


def test_refused_at_rcpt_by_the_destination(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port,
                  rcpt_replies={"bad@remote.example": (550, "no such user here")}) as sink:
        d = pymta_daemon(config=_config())
        replies, final = _session(d, ["bad@remote.example", "good@remote.example"])
        assert replies == [(550, "Administrative prohibition"), (250, "Accepted")]
        assert final[0] == 250
        d.wait_for_log(r"H=\(client\.test\) \[127\.0\.0\.1\] F=<a@outside\.example> "
                       r"rejected RCPT <bad@remote\.example>$", 5)
        # the second recipient was not cut through: the message is queued as usual
        assert len(d.queue()) == 1 and not sink.messages


def test_data_refused_by_the_destination(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, mode="data", code=550, text="content rejected"):
        d = pymta_daemon(config=_config())
        _replies, final = _session(d, ["good@remote.example"])
        assert final == (550, "content rejected")
        line = d.wait_for_log(r"rejected after DATA", 5)[0]
        assert re.search(r"\S+ H=\(client\.test\) \[127\.0\.0\.1\] good@remote\.example "
                         r"F=<a@outside\.example> rejected after DATA: R=remote "
                         r"T=remote_smtp H=127\.0\.0\.1 \[127\.0\.0\.1\] "
                         r"C=\"550 content rejected\"$", line), line
        assert not d.queue()
        assert "<=" not in d.log()          # nothing arrived; no bounce either


def test_data_deferred_is_queued_by_default(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, mode="data", code=451, text="try again later"):
        d = pymta_daemon(config=_config())
        _replies, final = _session(d, ["good@remote.example"])
        assert final[0] == 250
        d.wait_for_log(r"good@remote\.example F=<a@outside\.example> tmp-reject from "
                       r"cutthrough after DATA: R=remote T=remote_smtp .*"
                       r"C=\"451 try again later\"", 5)
        d.wait_for_log(r"<= a@outside\.example ", 5)
        assert wait_for(lambda: len(d.queue()) == 1, 5)


def test_data_deferred_with_defer_pass(pymta_daemon, sink_port):
    with SmtpSink(port=sink_port, mode="data", code=451, text="try again later"):
        d = pymta_daemon(config=_config())
        _replies, final = _session(d, ["good@pass.example"])
        assert final == (451, "try again later")
        d.wait_for_log(r"tmp-reject from cutthrough after DATA", 5)
        assert not d.queue()
        assert "<=" not in d.log()


def test_smtputf8_and_dsn_messages_take_the_normal_way(pymta_daemon, sink_port):
    """The cutthrough connection's MAIL/RCPT carry no SMTPUTF8 or DSN parameters, so
    such messages are queued and delivered the normal way (which passes them on)."""
    with SmtpSink(port=sink_port) as sink:
        d = pymta_daemon(config=_config())
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<jöe@outside.example> SMTPUTF8")[0] == 250
            assert c.cmd("RCPT TO:<good@remote.example>")[0] == 250
            assert c.data(MESSAGE)[0] == 250
        assert not sink.messages and len(d.queue()) == 1
        assert ">>" not in d.log()
