"""deliver_message: routing + transports + journal + logs + retry hints + completion."""
import os
import time

import pytest

from pymta.config import load_config
from pymta.delivery.deliver import MessageDelivery, deliver_message
from pymta.errnos import EximErrno
from pymta.hints.retry import RetryDB, RetryRecord
from pymta.log import Logger
from pymta.message.receive import Envelope, receive_message
from pymta.spool import files, lock
from tests.support.ports import free_port
from tests.support.sink import SmtpSink

CONF = """
primary_hostname = test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
# work around: receive_message does int() on the (expandable) size limit
message_size_limit = 0

begin routers
aliases:
  driver = redirect
  domains = test.example
  data = ${{if eq{{$local_part}}{{list}}{{a@test.example, b@test.example, x@remote.example, y@remote.example}}{{}}}}
remote:
  driver = manualroute
  domains = remote.example
  route_list = * 127.0.0.1::{port}
  self = send
  transport = remote_smtp
users:
  driver = accept
  domains = test.example
  local_parts = a : b : c
  transport = local_delivery

begin transports
remote_smtp:
  driver = smtp
  allow_localhost
  connect_timeout = 5s
local_delivery:
  driver = appendfile
  file = {spool}/mail/$local_part_data

begin retry
{retry}
"""


@pytest.fixture
def env(tmp_path):
    def make(retry="*  *  F,1h,10m", port=None):
        spool = tmp_path / "spool"
        (spool / "mail").mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        p = tmp_path / "configure"
        p.write_text(CONF.format(spool=spool, port=port, retry=retry))
        c = load_config(str(p))
        return c, Logger(c), str(spool), port
    return make


def submit(config, log, rcpts, sender="sender@test.example", body="Subject: hi\n\nbody\n"):
    e = Envelope(sender=sender, recipients=rcpts, protocol="local", is_local_submission=True,
                 sender_set_by_caller=True)
    return receive_message(config, e, body.encode(), log)


def mainlog(spool):
    with open(os.path.join(spool, "log", "mainlog")) as f:
        return [line[20:].rstrip("\n") for line in f]


def delivery_lines(spool, msgid):
    return [ln[len(msgid) + 1:] for ln in mainlog(spool) if ln.startswith(msgid + " ")
            and not ln.startswith(msgid + " <=")]


def test_local_delivery_completes(env):
    c, log, spool, _ = env()
    mid = submit(c, log, ["a@test.example"])
    out = deliver_message(c, mid, log)
    assert out.status == "completed" and out.delivered == ["a@test.example"]
    assert delivery_lines(spool, mid) == ["=> a <a@test.example> R=users T=local_delivery",
                                          "Completed"]
    assert "body" in open(os.path.join(spool, "mail", "a")).read()
    assert not os.path.exists(files.header_path(spool, mid))
    assert deliver_message(c, mid, log).status == "missing"


def test_top_level_recipients_in_order_failures_in_routing_order(env):
    """Checked against Exim 4.96: recipients are routed last-first, so routing failures
    are logged in reverse, while local deliveries happen in recipient order."""
    c, log, spool, _ = env()
    mid = submit(c, log, ["a@test.example", "n1@nowhere.example", "b@test.example",
                          "n2@nowhere.example"])
    deliver_message(c, mid, log, deliver_bounces=False)
    assert delivery_lines(spool, mid) == [
        "** n2@nowhere.example: Unrouteable address",
        "** n1@nowhere.example: Unrouteable address",
        "=> a <a@test.example> R=users T=local_delivery",
        "=> b <b@test.example> R=users T=local_delivery", "Completed"]


def test_journal_means_already_delivered(env):
    """A -J entry left by a crash: that address is not delivered again."""
    c, log, spool, _ = env()
    mid = submit(c, log, ["a@test.example", "b@test.example"])
    files.append_journal(spool, mid, "a@test.example")
    out = deliver_message(c, mid, log)
    assert out.status == "completed" and out.delivered == ["b@test.example"]
    assert not os.path.exists(os.path.join(spool, "mail", "a"))
    assert delivery_lines(spool, mid) == ["=> b <b@test.example> R=users T=local_delivery",
                                          "Completed"]


def test_locked_and_frozen(env):
    c, log, spool, _ = env()
    mid = submit(c, log, ["a@test.example"])
    held = lock.lock_message(spool, mid)
    try:
        # a lock held by another open file description (same process is enough for fcntl
        # only across processes, so check from a child)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if deliver_message(c, mid, log).status == "locked" else 1)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        held.release()
    msg = files.read_header(spool, mid)
    msg.frozen_at = int(time.time())
    files.rewrite_header(spool, msg)
    assert deliver_message(c, mid, log).status == "frozen"
    assert os.path.exists(files.header_path(spool, mid))
    out = deliver_message(c, mid, log, manual=True)
    assert out.status == "completed"
    assert "Unfrozen by forced delivery" in delivery_lines(spool, mid)


def test_refused_defers_then_retry_time_then_delivers(env):
    c, log, spool, port = env()
    mid = submit(c, log, ["x@remote.example", "a@test.example"])
    out = deliver_message(c, mid, log)
    assert out.status == "deferred" and out.delivered == ["a@test.example"]
    lines = delivery_lines(spool, mid)
    # Exim 4.96 (checked with exim4 against a closed port): the smtp transport's
    # per-host line, then the address line with the strerror text and no H=
    assert lines == ["=> a <a@test.example> R=users T=local_delivery",
                     "H=127.0.0.1 [127.0.0.1] Connection refused",
                     "== x@remote.example R=remote T=remote_smtp defer (111): "
                     "Connection refused"]
    rec = RetryDB(spool).get(f"T:127.0.0.1:127.0.0.1:{port}")
    assert rec is not None and rec.next_try - rec.last_try == 600
    msg = files.read_header(spool, mid)
    assert msg.nonrecipients == {"a@test.example"}
    assert not os.path.exists(files.journal_path(spool, mid))

    with SmtpSink(port=port) as sink:
        # a queue run before the retry time: nothing is tried
        out = deliver_message(c, mid, log)
        assert out.status == "deferred" and not sink.messages
        assert delivery_lines(spool, mid)[-1] == (
            "== x@remote.example R=remote T=remote_smtp defer (-54): "
            "retry time not reached for any host for 'remote.example'")
        # -qf: forced, delivered now that the host listens
        out = deliver_message(c, mid, log, forced=True)
        assert out.status == "completed"
        assert len(sink.messages) == 1
    lines = delivery_lines(spool, mid)
    assert lines[-2].startswith("=> x@remote.example R=remote T=remote_smtp "
                                "H=127.0.0.1 [127.0.0.1] C=\"250")
    assert RetryDB(spool).get(f"T:127.0.0.1:127.0.0.1:{port}") is None


def test_redirected_batch_uses_arrow_for_second_address(env):
    c, log, spool, port = env()
    with SmtpSink(port=port) as sink:
        mid = submit(c, log, ["list@test.example"])
        out = deliver_message(c, mid, log)
    assert out.status == "completed"
    lines = delivery_lines(spool, mid)
    # Exim's order and format (checked with Exim 4.96): local deliveries show the local
    # part and the original recipient; the second address of one SMTP delivery gets "->"
    assert lines[:2] == ["=> a <list@test.example> R=users T=local_delivery",
                         "=> b <list@test.example> R=users T=local_delivery"]
    assert lines[2].startswith("=> x@remote.example <list@test.example> R=remote")
    assert lines[3].startswith("-> y@remote.example <list@test.example> R=remote")
    assert sorted(sink.messages[0].recipients) == ["x@remote.example", "y@remote.example"]


def test_no_retry_rule_means_temporary_is_permanent(env):
    c, log, spool, port = env(retry="")
    mid = submit(c, log, ["x@remote.example"])
    out = deliver_message(c, mid, log, deliver_bounces=False)
    assert out.status == "completed" and out.failed == ["x@remote.example"]
    lines = delivery_lines(spool, mid)
    # as Exim 4.96 logs it (checked with exim4 and a config without retry rules)
    assert lines[:3] == ["H=127.0.0.1 [127.0.0.1] Connection refused",
                         "== x@remote.example R=remote T=remote_smtp defer (111): "
                         "Connection refused",
                         "** x@remote.example: retry timeout exceeded"]
    assert len(out.bounce_ids) == 1
    bounce = files.read_header(spool, out.bounce_ids[0])
    assert bounce.sender == "" and [r.address for r in bounce.recipients] == ["sender@test.example"]
    assert any(ln.startswith(f"{out.bounce_ids[0]} <= <> R={mid} ") for ln in mainlog(spool))


def test_retry_timeout_fails_the_address(env):
    c, log, spool, port = env()
    key = f"T:127.0.0.1:127.0.0.1:{port}"
    now = int(time.time())
    # failing for two hours already (the rule's cutoff is one hour), due now
    RetryDB(spool).put(key, RetryRecord(now - 7200, now - 600, now - 1))
    mid = submit(c, log, ["x@remote.example"])
    out = deliver_message(c, mid, log, deliver_bounces=False)
    assert out.failed == ["x@remote.example"]
    assert delivery_lines(spool, mid)[1:3] == [
        "== x@remote.example R=remote T=remote_smtp defer (111): Connection refused",
        "** x@remote.example: retry timeout exceeded"]


def test_unrouteable_and_bounce_of_bounce_freezes(env):
    c, log, spool, _ = env()
    mid = submit(c, log, ["nobody@nowhere.example"], sender="")
    out = deliver_message(c, mid, log)
    assert out.status == "frozen" and out.bounce_ids == []
    assert delivery_lines(spool, mid) == ["** nobody@nowhere.example: Unrouteable address",
                                          "Frozen (delivery error message)"]
    assert files.read_header(spool, mid).frozen_at is not None


def test_bounce_is_sent_and_delivered(env):
    c, log, spool, _ = env()
    mid = submit(c, log, ["nobody@nowhere.example", "sender@test.example"],
                 sender="c@test.example")
    out = deliver_message(c, mid, log)
    assert out.status == "completed" and len(out.bounce_ids) == 1
    bid = out.bounce_ids[0]
    assert delivery_lines(spool, bid)[-2] == "=> c <c@test.example> R=users T=local_delivery"
    text = open(os.path.join(spool, "mail", "c")).read()
    # routed last-first, and Exim names the latest failure first (exim4 4.96)
    assert "X-Failed-Recipients: nobody@nowhere.example,\n  sender@test.example\n" in text


def test_message_delivery_core_with_journal(env):
    """MessageDelivery can be run on an in-memory SpoolMessage (used by the daemon)."""
    c, log, spool, _ = env()
    mid = submit(c, log, ["a@test.example", "b@test.example", "c@test.example"])
    msg = files.read_header(spool, mid)
    out = MessageDelivery(c, msg, log, spool, journal=["a@test.example", "c@test.example"]).run()
    assert out.delivered == ["b@test.example"] and out.status == "completed"


def test_rcpt_4xx_delays_only_that_recipient(env):
    c, log, spool, port = env()
    with SmtpSink(port=port, rcpt_replies={"x@remote.example": (451, "try later")}) as sink:
        mid = submit(c, log, ["x@remote.example", "y@remote.example"])
        out = deliver_message(c, mid, log)
        assert out.delivered == ["y@remote.example"] and out.deferred == ["x@remote.example"]
        db = RetryDB(spool)
        assert db.get("R:x@remote.example:<sender@test.example>") is not None
        assert db.get(f"T:127.0.0.1:127.0.0.1:{port}") is None      # the host is fine
        # another message to the same host is not held up...
        mid2 = submit(c, log, ["y@remote.example"])
        assert deliver_message(c, mid2, log).status == "completed"
        # ...but x waits for its own retry time
        out = deliver_message(c, mid, log)
        assert out.deferred == ["x@remote.example"]
        # as Exim 4.96 logs it (checked with exim4 -q after a RCPT 451)
        assert delivery_lines(spool, mid)[-1] == (
            "== x@remote.example routing defer (-52): retry time not reached")
        assert len(sink.messages) == 2


def test_frozen_bounce_is_discarded_after_ignore_bounce_errors_after(env, tmp_path):
    c, log, spool, _ = env()
    c.main.ignore_bounce_errors_after = 0
    mid = submit(c, log, ["nobody@nowhere.example"], sender="")
    assert deliver_message(c, mid, log).status == "frozen"
    out = deliver_message(c, mid, log)
    assert out.status == "completed"
    assert delivery_lines(spool, mid)[-3:] == [
        "** nobody@nowhere.example: Unrouteable address",
        "nobody@nowhere.example: error ignored", "Completed"]


def test_one_time_turns_deferred_children_into_recipients(env, tmp_path):
    c, log, spool, port = env()
    c.routers[0].options["one_time"] = True
    c.routers[0].explicit.add("one_time")
    mid = submit(c, log, ["list@test.example"])
    out = deliver_message(c, mid, log)
    assert out.status == "deferred"
    msg = files.read_header(spool, mid)
    assert [(r.address, r.pno) for r in msg.recipients] == [
        ("list@test.example", -1), ("x@remote.example", 0), ("y@remote.example", 0)]
    assert {"list@test.example", "a@test.example", "b@test.example"} <= msg.nonrecipients
    # the alias is not expanded again: the remote addresses are now ordinary recipients
    with SmtpSink(port=port) as sink:
        out = deliver_message(c, mid, log, forced=True)
    assert out.status == "completed" and sorted(out.delivered) == ["x@remote.example",
                                                                  "y@remote.example"]
    assert delivery_lines(spool, mid)[-3].startswith("=> x@remote.example R=remote")
    assert len(sink.messages) == 1


def test_transport_context_local_part_without_affixes(env):
    from pymta.address import Address
    from pymta.expand.context import ExpandContext
    from pymta.spool.model import SpoolMessage
    c, log, spool, _ = env()
    d = MessageDelivery(c, SpoolMessage("1xUt4E-0003uq-1Y", "root", 0, 0, "s@x", 0), log, spool)
    a = Address("Own-Bob-X@Test.example", prefix="own-", suffix="-x", router="users",
                local_part_data="bob", home="/home/bob")
    v = d._job_context(a, ExpandContext(c)).variables
    assert (v["local_part"], v["domain"], v["local_part_data"], v["home"]) == (
        "bob", "test.example", "bob", "/home/bob")


def test_defer_detail_follows_exim_order():
    """Exim 4.96's deferral text: strerror (errno > 0), then H=, then the message."""
    from pymta.address import Address, Host
    from pymta.delivery.deliver import defer_detail
    h = Host("127.0.0.1", "127.0.0.1", 25)
    a = Address("t@other.example", basic_errno=110, host_used=h,
                message="SMTP timeout after RCPT TO:<t@other.example>")
    assert defer_detail(a) == (": Connection timed out H=127.0.0.1 [127.0.0.1]: "
                               "SMTP timeout after RCPT TO:<t@other.example>")
    a = Address("x@r.example", basic_errno=111, host_used=h, message="Connection refused")
    assert defer_detail(a) == ": Connection refused"
    a = Address("x@r.example", basic_errno=EximErrno.RCPT4XX, host_used=h,
                message="SMTP error from remote mail server after RCPT TO:<x@r.example>: "
                        "451 later")
    assert defer_detail(a) == (" H=127.0.0.1 [127.0.0.1]: SMTP error from remote mail server"
                               " after RCPT TO:<x@r.example>: 451 later")
    assert defer_detail(Address("x@r.example", basic_errno=-1, message="m")) == ": m"


def test_smtp_failure_line_names_the_host(env):
    c, log, spool, port = env()
    with SmtpSink(port=port, rcpt_replies={"x@remote.example": (550, "no such user")}):
        mid = submit(c, log, ["x@remote.example"])
        out = deliver_message(c, mid, log, deliver_bounces=False)
    assert out.failed == ["x@remote.example"]
    assert delivery_lines(spool, mid)[0] == (
        "** x@remote.example R=remote T=remote_smtp H=127.0.0.1 [127.0.0.1]: SMTP error "
        "from remote mail server after RCPT TO:<x@remote.example>: 550 no such user")


def test_tainted_path_deferral_goes_to_paniclog(env):
    c, log, spool, _ = env()
    c.transports["local_delivery"].options["file"] = spool + "/mail/$local_part"
    mid = submit(c, log, ["a@test.example"])
    out = deliver_message(c, mid, log)
    assert out.deferred == ["a@test.example"]
    want = (f"== a@test.example R=users T=local_delivery defer (-1): Tainted "
            f"'{spool}/mail/a' (file or directory name for local_delivery transport) "
            "not permitted")
    assert delivery_lines(spool, mid) == [want]
    with open(os.path.join(spool, "log", "paniclog")) as f:
        assert [ln[20:].rstrip("\n") for ln in f] == [f"{mid} {want}"]


def test_local_retry_time_not_reached(env):
    """Checked with exim4 -q: a local delivery waiting for its retry time."""
    c, log, spool, _ = env()
    c.transports["local_delivery"].options["file"] = spool + "/nodir/sub/$local_part_data"
    c.transports["local_delivery"].options["create_directory"] = False
    mid = submit(c, log, ["a@test.example"])
    assert deliver_message(c, mid, log).deferred == ["a@test.example"]
    assert RetryDB(spool).get("T:a@test.example") is not None
    out = deliver_message(c, mid, log)
    assert out.deferred == ["a@test.example"]
    assert delivery_lines(spool, mid)[-1] == (
        "== a@test.example R=users T=local_delivery defer (-53): Retry time not yet reached")


def test_second_message_on_kept_connection_is_starred(env):
    """Exim's log marks a delivery down a connection kept from an earlier message with
    "*" after the IP address."""
    c, log, spool, port = env()
    with SmtpSink(port=port) as sink:
        mid1 = submit(c, log, ["x@remote.example"])
        mid2 = submit(c, log, ["x@remote.example"])
        deliver_message(c, mid1, log)
        deliver_message(c, mid2, log)
        c.transports["remote_smtp"].obj.close_connections()
    assert len(sink.messages) == 2
    assert delivery_lines(spool, mid1)[0].startswith(
        "=> x@remote.example R=remote T=remote_smtp H=127.0.0.1 [127.0.0.1] C=")
    assert delivery_lines(spool, mid2)[0].startswith(
        "=> x@remote.example R=remote T=remote_smtp H=127.0.0.1 [127.0.0.1]* C=")


class _FailingJournal(files.Journal):
    """A -J whose line writes fail as on a broken disk (the reservation succeeded)."""

    def append(self, unique):
        raise OSError(28, "No space left on device")


def test_journal_write_failure_stops_delivery_and_records_in_header(env):
    """When -J cannot be written after a delivery, the outcome is kept in memory, no
    further transport runs, and the delivered address is recorded in -H instead (so it
    is never delivered again)."""
    c, log, spool, _ = env()
    mid = submit(c, log, ["a@test.example", "b@test.example", "c@test.example"])
    held = lock.lock_message(spool, mid)
    run = MessageDelivery(c, files.read_header(spool, mid), log, spool)
    run.journal_file = _FailingJournal(spool, mid)
    try:
        out = run.run()
    finally:
        run.close()
        held.release()
    assert out.delivered == ["a@test.example"] and out.status == "deferred"
    assert not os.path.exists(os.path.join(spool, "mail", "b"))
    assert "a@test.example" in files.read_header(spool, mid).nonrecipients
    panic = open(os.path.join(spool, "log", "paniclog")).read()
    assert "failed to write -J journal: No space left on device" in panic
    assert "recorded in -H: a@test.example" in panic
    assert any("b@test.example" in ln and "delivery not attempted" in ln
               for ln in delivery_lines(spool, mid))
    out = deliver_message(c, mid, log)           # a later run: b and c only
    assert out.status == "completed" and sorted(out.delivered) == ["b@test.example",
                                                                   "c@test.example"]
    assert open(os.path.join(spool, "mail", "a")).read().count("Subject: hi") == 1
