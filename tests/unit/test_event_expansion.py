"""pymta.events: how an event action is expanded (the variables it sees, what its
result means, how a failure is reported).  The events themselves are raised by the real
daemon in tests/integration/test_events.py, test_events_tls.py and test_events_dane.py."""
from __future__ import annotations

from pymta.address import Address, Host
from pymta.config.reader import load_config
from pymta.events import main_event, raise_event, rcpt_defer_errno, transport_event
from pymta.expand.context import ExpandContext

CONFIG = """\
primary_hostname = mx.test.example
event_action = {main}
begin acl
ev:
  warn logwrite = seen $event_name [$acl_arg1]
  accept
begin transports
t:
  driver = smtp
  event_action = {transport}
"""


class Log:
    """Collects what would go to the main and panic logs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str | None]] = []

    def main(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(("main", text, msgid))

    def panic(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(("panic", text, msgid))


def _config(tmp_path, main="", transport=""):
    path = tmp_path / "configure"
    path.write_text(CONFIG.format(main=main, transport=transport))
    return load_config(str(path))


def test_variables_of_an_event(tmp_path):
    cfg = _config(tmp_path)
    ctx = ExpandContext(cfg, {"domain": "d.example"})
    out = raise_event("$event_name|$event_data|$event_defer_errno|$domain", "msg:host:defer",
                      ctx, data="Connection refused", errno=111)
    assert out == "msg:host:defer|Connection refused|111|d.example"
    # the caller's context is not changed
    assert "event_name" not in ctx.variables


def test_unset_action_and_forced_failure_give_nothing(tmp_path):
    cfg = _config(tmp_path)
    ctx = ExpandContext(cfg)
    assert raise_event(None, "tcp:connect", ctx) == ""
    assert raise_event("${if eq{$event_name}{x}{yes}fail}", "tcp:connect", ctx) == ""


def test_expansion_failure_goes_to_main_and_panic_logs(tmp_path):
    cfg = _config(tmp_path)
    log = Log()
    out = raise_event("${nosuchop:x}", "msg:complete", ExpandContext(cfg), log=log,
                      msgid="1abcde-000000-00")
    assert out == ""
    text = 'failed to expand event_action msg:complete in main: unknown expansion ' \
           'operator "nosuchop"'
    # Logger.panic writes the main log too
    assert log.lines == [("panic", text, "1abcde-000000-00")]


def test_acl_logwrite_in_an_action_reaches_the_log(tmp_path):
    cfg = _config(tmp_path)
    log = Log()
    ctx = ExpandContext(cfg, {"message_exim_id": "1abcde-000000-00"})
    raise_event("${acl{ev}{arg}}", "msg:complete", ctx, log=log)
    assert log.lines == [("main", "seen msg:complete [arg]", "1abcde-000000-00")]


def test_an_event_inside_an_event_action_is_not_raised(tmp_path):
    cfg = _config(tmp_path, main="${if eq{$event_name}{outer}{${acl{ev}}}}")
    seen: list[str] = []

    class Inner(Log):
        def main(self, text: str, msgid: str | None = None) -> None:
            seen.append(text)
            # a nested event from within the action is ignored
            assert main_event(cfg, "inner", ExpandContext(cfg), log=self) == ""

    main_event(cfg, "outer", ExpandContext(cfg), log=Inner())
    assert seen == ["seen outer []"]


def test_main_event_sets_the_address_variables(tmp_path):
    cfg = _config(tmp_path, main="$event_name $local_part@$domain $router_name")
    a = Address("x@nowhere.example", "x", "nowhere.example", router="nowhere")
    assert main_event(cfg, "msg:fail:internal", ExpandContext(cfg), addr=a) == \
        "msg:fail:internal x@nowhere.example nowhere"
    assert main_event(_config(tmp_path), "msg:complete", ExpandContext(cfg)) == ""


def test_transport_event_sets_host_and_transport_variables(tmp_path):
    cfg = _config(tmp_path, transport="$transport_name $host $host_address $host_port")
    tpt = cfg.transports["t"].obj
    host = Host("mx.remote.example", "192.0.2.7", 2525)
    assert transport_event(tpt, "tcp:connect", ExpandContext(cfg), host=host) == \
        "t mx.remote.example 192.0.2.7 2525"
    assert transport_event(cfg.transports["t"].obj, "x", None) == ""


def test_rcpt_defer_errno_is_exims_encoding():
    # 451 from a host found by address, 452 from an MX host (as exim4 reports them)
    assert rcpt_defer_errno(451, Host("h", "192.0.2.1")) == 13121
    assert rcpt_defer_errno(452, Host("h", "192.0.2.1")) == 13377
    assert rcpt_defer_errno(451, Host("h", "192.0.2.1", mx=10)) == (51 << 8) | ord("M")
