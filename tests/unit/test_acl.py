"""The ACL engine: verbs, conditions, modifiers, defaults and SMTP replies."""
from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest

from pymta.acl import acl_smtp_reply, parse_acl_text, run_acl, split_code
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from tests.support.recording_log import RecordingLog

BASE = """\
primary_hostname = test.example
domainlist local_domains = a.example : b.example
begin acl
{acls}
begin routers
r:
  driver = accept
  domains = +local_domains
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


def config(tmp_path, acls: str):
    path = tmp_path / "configure"
    path.write_text(BASE.format(acls=textwrap.dedent(acls)))
    return load_config(str(path))


def ctx_for(cfg, **variables):
    v = {"sender_host_address": "192.0.2.1", "sender_host_name": "", "sender_address": "",
         "local_part": "", "domain": "", "authenticated_id": ""}
    v.update(variables)
    return ExpandContext(config=cfg, variables=v)


def session():
    return SimpleNamespace(log=RecordingLog(), log_prefix="H=(helo) [192.0.2.1]", sleeps=[],
                           sleep=None)


def run(cfg, acl, where="rcpt", sess=None, **variables):
    ctx = ctx_for(cfg, **variables)
    return run_acl(cfg, acl, where, ctx, sess), ctx


RCPT_ACL = """\
check_rcpt:
  accept  hosts = :
  deny    message = bad domain
          domains = bad.example
  deny    local_parts = nobody
  require verify = recipient
  accept  domains = +local_domains
"""


def test_named_acl_verdicts(tmp_path):
    cfg = config(tmp_path, RCPT_ACL)
    r, _ = run(cfg, "check_rcpt", local_part="x", domain="a.example")
    assert r.verdict == "accept"
    r, _ = run(cfg, "check_rcpt", local_part="x", domain="bad.example")
    assert (r.verdict, r.message) == ("deny", "bad domain")
    assert acl_smtp_reply(r, "rcpt") == (550, "bad domain")
    r, _ = run(cfg, "check_rcpt", local_part="nobody", domain="a.example")
    assert acl_smtp_reply(r, "rcpt") == (550, "Administrative prohibition")


def test_verify_recipient_failure_gives_unrouteable(tmp_path):
    cfg = config(tmp_path, RCPT_ACL)
    r, ctx = run(cfg, "check_rcpt", local_part="x", domain="elsewhere.example")
    assert r.verdict == "deny" and r.verify_failed == "recipient"
    assert acl_smtp_reply(r, "rcpt") == (550, "Unrouteable address")
    assert ctx.variables["acl_verify_message"] == "Unrouteable address"


def test_implicit_deny_at_end(tmp_path):
    cfg = config(tmp_path, "a:\n  accept hosts = 10.0.0.0/8\n")
    r, _ = run(cfg, "a")
    assert r.verdict == "deny"


def test_unset_acl_defaults(tmp_path):
    cfg = config(tmp_path, "")
    assert run_acl(cfg, None, "rcpt", ctx_for(cfg)).verdict == "deny"
    assert run_acl(cfg, None, "mail", ctx_for(cfg)).verdict == "accept"
    assert run_acl(cfg, "", "connect", ctx_for(cfg)).verdict == "accept"
    assert run_acl(cfg, None, "vrfy", ctx_for(cfg)).verdict == "deny"


def test_inline_acl_text(tmp_path):
    cfg = config(tmp_path, "")
    assert run(cfg, "accept")[0].verdict == "accept"
    assert run(cfg, "deny hosts = 192.0.2.1")[0].verdict == "deny"
    r, _ = run(cfg, "deny hosts = 192.0.2.2\naccept")
    assert r.verdict == "accept"


def test_acl_from_file(tmp_path):
    cfg = config(tmp_path, "")
    f = tmp_path / "acl.txt"
    f.write_text("# comment\n\ndeny message = from file \\\n   here\n"
                 "     senders = x@y.z\naccept\n")
    r, _ = run(cfg, str(f), sender_address="x@y.z")
    assert (r.verdict, r.message) == ("deny", "from file here")
    assert run(cfg, str(f), sender_address="q@y.z")[0].verdict == "accept"


def test_missing_acl_file_is_error_defer(tmp_path):
    cfg = config(tmp_path, "")
    r, _ = run(cfg, str(tmp_path / "nope"))
    assert r.verdict == "defer" and r.error
    assert acl_smtp_reply(r, "rcpt") == (451, "Temporary local problem - please try later")


def test_acl_name_is_expanded(tmp_path):
    cfg = config(tmp_path, "yes:\n  accept\nno:\n  deny\n")
    name = "${if eq{$domain}{a.example}{yes}{no}}"
    assert run(cfg, name, domain="a.example")[0].verdict == "accept"
    assert run(cfg, name, domain="c.example")[0].verdict == "deny"


def test_defer_discard_drop(tmp_path):
    cfg = config(tmp_path, """\
    a:
      defer   local_parts = later
              message = 452 4.2.2 try later
      discard local_parts = blackhole
      drop    local_parts = evil
              message = go away
    """)
    r, _ = run(cfg, "a", local_part="later")
    assert r.verdict == "defer" and acl_smtp_reply(r, "rcpt") == (452, "4.2.2 try later")
    assert run(cfg, "a", local_part="blackhole")[0].verdict == "discard"
    r, _ = run(cfg, "a", local_part="evil")
    assert r.verdict == "drop" and acl_smtp_reply(r, "rcpt") == (550, "go away")


def test_message_code_with_wrong_class_is_ignored():
    assert split_code("451 later", 550) == (550, "451 later")
    assert split_code("554 no", 550) == (554, "no")


def test_require_uses_message_seen_before_failure(tmp_path):
    cfg = config(tmp_path, """\
    a:
      require message = Can't verify sender
              senders = good@x.y
              message = Can't verify recipient
              local_parts = ok
              message = never used
      accept
    """)
    assert run(cfg, "a", sender_address="bad@x.y")[0].message == "Can't verify sender"
    assert run(cfg, "a", sender_address="good@x.y", local_part="no")[0].message == \
        "Can't verify recipient"
    assert run(cfg, "a", sender_address="good@x.y", local_part="ok")[0].verdict == "accept"


def test_endpass(tmp_path):
    cfg = config(tmp_path, """\
    a:
      accept domains = a.example
             endpass
             message = endpass denied
             local_parts = ok
      accept
    """)
    assert run(cfg, "a", domain="a.example", local_part="ok")[0].verdict == "accept"
    r, _ = run(cfg, "a", domain="a.example", local_part="bad")
    assert (r.verdict, r.message) == ("deny", "endpass denied")
    assert run(cfg, "a", domain="c.example", local_part="bad")[0].verdict == "accept"


def test_warn_logs_and_continues(tmp_path):
    cfg = config(tmp_path, """\
    a:
      warn   senders = *@spam.example
             log_message = suspicious $sender_address
      warn   senders = *@other.example
             log_message = not written
      accept
    """)
    s = session()
    r, _ = run(cfg, "a", sess=s, sender_address="x@spam.example")
    assert r.verdict == "accept"
    assert s.log.lines == [("main", "H=(helo) [192.0.2.1] Warning: suspicious x@spam.example")]


def test_set_variables_and_negation(tmp_path):
    cfg = config(tmp_path, """\
    a:
      warn  set acl_c0 = conn-$sender_host_address
            set acl_m_name = m-$local_part
      deny  !hosts = 192.0.2.0/24
      accept condition = ${if eq{$acl_m_name}{m-joe}}
    """)
    r, ctx = run(cfg, "a", local_part="joe")
    assert r.verdict == "accept"
    assert ctx.acl_vars == {"acl_c0": "conn-192.0.2.1", "acl_m_name": "m-joe"}
    r, _ = run(cfg, "a", local_part="joe", sender_host_address="198.51.100.1")
    assert r.verdict == "deny"


def test_controls_recorded_and_unknown_control_is_error(tmp_path):
    cfg = config(tmp_path, """\
    a:
      warn control = freeze/no_tell
           control = queue_only
           control = submission
      accept control = no_pipelining
    b:
      accept control = no_such_control
    """)
    r, _ = run(cfg, "a")
    assert r.controls == ["freeze/no_tell", "queue_only", "submission", "no_pipelining"]
    r, _ = run(cfg, "b")
    assert r.verdict == "defer" and r.error



def test_expanded_control_naming_an_unknown_one_defers(tmp_path):
    # known only after expansion, so the load-time check cannot see it: never a no-op
    cfg = config(tmp_path, """\
    a:
      accept control = ${if eq{1}{1}{no_such_control}{queue_only}}
    """)
    r, _ = run(cfg, "a")
    assert r.verdict == "defer"
    assert r.error and 'unknown control "no_such_control"' in r.log_message

def test_add_remove_header_logwrite_delay(tmp_path):
    cfg = config(tmp_path, """\
    a:
      warn  add_header = X-Checked: $local_part
            remove_header = X-Spam : X-Other
            logwrite = :reject: wrote it
            delay = 2s
      accept
    """)
    s = session()
    slept = []
    s.sleep = slept.append
    r, _ = run(cfg, "a", sess=s, local_part="joe")
    assert r.add_headers == ["X-Checked: joe"]
    assert r.remove_headers == ["X-Spam", "X-Other"]
    assert s.log.lines == [("reject", "wrote it")]
    assert slept == [2]


def test_nested_acl_condition(tmp_path):
    cfg = config(tmp_path, """\
    inner:
      accept local_parts = $acl_arg1
      deny
    outer:
      deny  !acl = inner joe
            message = not joe
      accept
    """)
    assert run(cfg, "outer", local_part="joe")[0].verdict == "accept"
    r, _ = run(cfg, "outer", local_part="ann")
    assert (r.verdict, r.message) == ("deny", "not joe")


def test_forced_expansion_failure_ignores_condition(tmp_path):
    cfg = config(tmp_path, "a:\n  accept senders = ${if eq{1}{2}{x}fail}\n")
    # Exim: a forced failure makes the condition be ignored (true).
    assert run(cfg, "a", sender_address="q@r.s")[0].verdict in ("accept",)


def test_authenticated_with_no_auth(tmp_path):
    cfg = config(tmp_path, "a:\n  accept authenticated = *\n  deny\n")
    assert run(cfg, "a")[0].verdict == "deny"
    # Exim tests the authenticator's name, not the id it set
    assert run(cfg, "a", authenticated_id="joe")[0].verdict == "deny"
    assert run(cfg, "a", sender_host_authenticated="plain",
               authenticated_id="joe")[0].verdict == "accept"
    named = config(tmp_path, "a:\n  accept authenticated = cram : login\n  deny\n")
    assert run(named, "a", sender_host_authenticated="plain")[0].verdict == "deny"
    assert run(named, "a", sender_host_authenticated="login")[0].verdict == "accept"


def test_encrypted_matches_the_cipher(tmp_path):
    cfg = config(tmp_path, "a:\n  accept encrypted = *\n  deny\n")
    assert run(cfg, "a")[0].verdict == "deny"
    assert run(cfg, "a", tls_in_cipher="TLS1.3:TLS_AES_256_GCM_SHA384:256")[0].verdict \
        == "accept"
    only = config(tmp_path, "a:\n  accept encrypted = ^TLS1\\.3:\n  deny\n")
    assert run(only, "a", tls_in_cipher="TLS1.2:ECDHE-RSA-AES128-GCM-SHA256:128")[0] \
        .verdict == "deny"
    assert run(only, "a", tls_in_cipher="TLS1.3:TLS_AES_128_GCM_SHA256:128")[0] \
        .verdict == "accept"


def test_sender_verify_reply(tmp_path):
    cfg = config(tmp_path, "a:\n  require verify = sender\n  accept\n")
    r, _ = run(cfg, "a", sender_address="x@nowhere.example")
    assert r.verify_failed == "sender"
    assert acl_smtp_reply(r, "rcpt") == (550, "Verification failed for <x@nowhere.example>\n"
                                              "Unrouteable address\nSender verify failed")
    assert run(cfg, "a", sender_address="x@a.example")[0].verdict == "accept"
    assert run(cfg, "a", sender_address="")[0].verdict == "accept"
    # no_details: Exim 4.96 -bh answers (and logs) only "Sender verify failed".
    cfg = config(tmp_path, "a:\n  require verify = sender/no_details\n  accept\n")
    r, _ = run(cfg, "a", sender_address="x@nowhere.example")
    assert acl_smtp_reply(r, "rcpt") == (550, "Sender verify failed")
    assert r.verify_head == ""


def test_verify_defer(tmp_path, monkeypatch):
    import pymta.routing
    cfg = config(tmp_path, "a:\n  require verify = recipient\n  accept\n"
                           "b:\n  require verify = recipient/defer_ok\n  accept\n")
    monkeypatch.setattr(pymta.routing, "route_address",
                        lambda *a, **k: SimpleNamespace(status="defer", message="dns down"))
    r, _ = run(cfg, "a", local_part="x", domain="a.example")
    assert r.verdict == "defer"
    # as exim4 -bh: the router's text is logged, the client gets the default 451
    assert r.log_message == "dns down"
    assert acl_smtp_reply(r, "rcpt") == (451, "Temporary local problem - please try later")
    assert run(cfg, "b", local_part="x", domain="a.example")[0].verdict == "accept"


def test_accept_message_changes_success_reply(tmp_path):
    cfg = config(tmp_path, "a:\n  accept message = 250 OK, I will allow you\n")
    r, _ = run(cfg, "a")
    assert acl_smtp_reply(r, "rcpt") == (250, "OK, I will allow you")


def test_parse_acl_text_statements():
    st = parse_acl_text("deny hosts = 1.2.3.4\n     !senders = a@b\n     set acl_m0 = x\naccept")
    assert [s.verb for s in st] == ["deny", "accept"]
    assert [(i.name, i.value) for i in st[0].items] == [
        ("hosts", "1.2.3.4"), ("!senders", "a@b"), ("set acl_m0", "x")]


def test_parse_acl_text_rejects_unknown_verb():
    from pymta.config.model import ConfigError
    with pytest.raises(ConfigError):
        parse_acl_text("allow hosts = *")


def test_expansion_acl_item_calls_back(tmp_path):
    cfg = config(tmp_path, """\
    helper:
      accept message = from helper $acl_arg1
    a:
      deny message = ${acl{helper}{x}}
    """)
    r, _ = run(cfg, "a")
    assert (r.verdict, r.message) == ("deny", "from helper x")


def test_set_variable_name_rules(tmp_path):
    cfg = config(tmp_path, "a:\n  warn set acl_c9x = 1\n  accept\n")
    r, ctx = run(cfg, "a")
    assert r.verdict == "accept" and ctx.acl_vars == {"acl_c9x": "1"}
    r, _ = run(cfg, "warn set acl_q = 1\naccept")
    assert r.verdict == "defer" and r.error


def test_expansion_error_defers(tmp_path):
    cfg = config(tmp_path, "a:\n  accept senders = ${nosuchop:x}\n")
    r, _ = run(cfg, "a")
    assert r.verdict == "defer" and r.error
    assert acl_smtp_reply(r, "rcpt")[0] == 451


def test_acl_expansion_item_without_a_session_runner(tmp_path):
    """${acl} in a context no ACL or session prepared (a router condition, -be) runs
    the ACL through the runner the engine registered with the expansion layer."""
    from pymta.expand import expand_string
    cfg = config(tmp_path, "helper:\n  accept message = got $acl_arg1\n")
    ctx = ctx_for(cfg)
    assert ctx.acl_runner is None
    assert expand_string("${acl{helper}{x}}", ctx) == "got x"
