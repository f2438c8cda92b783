"""Exim's debug output: ``control = debug`` in ACLs of the real daemon (the debuglog file
in the log directory, kill, pretrigger with trigger=paniclog, tracing carried into the
delivery through the -H file) and ``-d`` on the command line (to standard error)."""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import run_pymta


def _config(acls: str, main: str = "") -> str:
    """BASE_CONFIG with more main options and ACLs (before acl_check_rcpt)."""
    return BASE_CONFIG.replace("begin acl\n", f"{main}\nbegin acl\n\n{acls}\n", 1)


CONNECT = _config("acl_conn:\n"
                  "  accept control = debug/tag=.$sender_host_address/opts=+acl\n",
                  "acl_smtp_connect = acl_conn")


def _read(path) -> str:
    return path.read_text() if path.exists() else ""


def _header(d, msgid: str) -> str:
    return next((d.spool / "input").rglob(f"{msgid}-H")).read_text()


def test_connect_control_traces_acls_into_debuglog_tag(pymta_daemon):
    d = pymta_daemon(["-odq"], config=CONNECT)
    debuglog = d.spool / "log" / "debuglog.127.0.0.1"
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<bob@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<nobody@elsewhere.example>")[0] == 550
        assert c.data(b"Subject: traced\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    lines = wait_for(lambda: "SMTP<< QUIT" in _read(debuglog) and _read(debuglog)).splitlines()
    # the ACL trace: which ACL, each statement and condition, and the verdict
    assert 'using ACL "acl_check_rcpt"' in lines
    assert 'check domains = +local_domains' in lines
    assert 'end of ACL "acl_check_rcpt": ACCEPT' in lines
    assert 'deny: condition test succeeded in ACL "acl_check_rcpt"' in lines
    assert 'end of ACL "acl_check_rcpt": DENY' in lines
    assert 'end of ACL "acl_conn": ACCEPT' in lines
    # the default selectors of -d come with +acl: the SMTP dialogue, the arrival
    assert "SMTP<< MAIL FROM:<bob@test.example>" in lines
    assert any(re.fullmatch(r"Data file written for message \S+", ln) for ln in lines)
    assert any(ln.startswith("  ") and " <= bob@test.example " in ln for ln in lines)
    # +expand was not asked for
    assert not any(ln.startswith("considering:") for ln in lines)
    # nothing else in the log directory is a debug log
    assert sorted(p.name for p in (d.spool / "log").glob("debuglog*")) == [debuglog.name]


def test_tracing_continues_in_the_delivery_after_spool_residency(pymta_daemon):
    d = pymta_daemon(["-odq"], config=CONNECT)
    debuglog = d.spool / "log" / "debuglog.127.0.0.1"
    with d.client() as c:
        c.banner()
        c.ehlo()
        c.send_message("bob@test.example", "alice@test.example", b"Subject: kept\r\n\r\nb\r\n")
        c.quit()
    [msgid] = wait_for(d.queue)
    header = _header(d, msgid)
    # Exim's two lines, after the ACL variables and before -body_linecount
    assert re.search(rf"\n-debug_selector 0x[0-9a-f]+\n-debuglog_name {re.escape(str(debuglog))}"
                     r"\n(?:.*\n)*?-body_linecount ", header), header
    before = debuglog.read_text()
    assert "debug enabled by spoolfile" not in before
    # delivered later, by another process (-M), which reads the -H file
    proc = d.run("-M", msgid)
    assert proc.returncode == 0, proc.stderr
    assert maildir_messages(d.dir, "alice")
    after = debuglog.read_text()[len(before):].splitlines()
    assert after[0] == "debug enabled by spoolfile"
    assert f"delivering message {msgid}" in after
    assert "routing alice@test.example" in after
    assert "calling local_users router" in after
    assert "routed by local_users router" in after
    assert "local_maildir transport returned OK for alice@test.example" in after
    assert any(ln.endswith(" Completed") for ln in after)
    assert proc.stderr == ""          # the trace went to the file, not to standard error


KILL = _config("acl_mail:\n"
               "  accept control = debug/tag=.speculative\n"
               "acl_rcpt:\n"
               "  warn   local_parts = bob\n"
               "         control = debug/kill\n"
               "  accept acl = acl_check_rcpt\n",
               "acl_smtp_mail = acl_mail")


def test_kill_stops_the_output_and_removes_the_file(pymta_daemon):
    d = pymta_daemon(config=KILL.replace("acl_smtp_rcpt = acl_check_rcpt",
                                         "acl_smtp_rcpt = acl_rcpt"))
    debuglog = d.spool / "log" / "debuglog.speculative"
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert "SMTP<< RCPT TO:<alice@test.example>" in debuglog.read_text()
        assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
        assert not debuglog.exists()
        c.quit()
    # and the connection ended without recreating it
    assert not debuglog.exists()


PANIC = _config("acl_mail:\n"
                "  accept control = debug/tag=.pt/opts=+all/pretrigger=100000/"
                "trigger=paniclog\n"
                "acl_rcpt:\n"
                "  warn   local_parts = bob\n"
                "         logwrite = :panic: bob is trouble\n"
                "  accept acl = acl_check_rcpt\n",
                "acl_smtp_mail = acl_mail")


def test_pretrigger_is_written_only_when_the_paniclog_is(pymta_daemon):
    d = pymta_daemon(config=PANIC.replace("acl_smtp_rcpt = acl_check_rcpt",
                                          "acl_smtp_rcpt = acl_rcpt"))
    debuglog = d.spool / "log" / "debuglog.pt"
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        c.quit()
    assert debuglog.exists() and debuglog.read_text() == ""       # created, nothing kept
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@test.example>")[0] == 250
        assert debuglog.read_text() == ""
        assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
        lines = debuglog.read_text().splitlines()
        c.quit()
    assert "bob is trouble" in d.log("panic")
    # +all has +pid and +timestamp: "HH:MM:SS pid text"
    prefix = re.compile(r"^\d\d:\d\d:\d\d +\d+ ")
    assert all(prefix.match(ln) for ln in lines), lines
    texts = [prefix.sub("", ln) for ln in lines]
    # the buffer held what came before the trigger, from the MAIL command on
    assert "SMTP>> 250 OK" in texts
    assert "SMTP<< RCPT TO:<bob@test.example>" in texts
    assert "LOG: PANIC" in texts
    # after the trigger, lines go straight to the file
    assert 'end of ACL "acl_rcpt": ACCEPT' in texts


def test_bh_writes_no_debuglog(tmp_path):
    spool = tmp_path / "spool"
    conf = tmp_path / "pymta.conf"
    conf.write_text(CONNECT.replace("SPOOL", str(spool)).replace("DIR", str(tmp_path)))
    proc = run_pymta(["-bh", "1.2.3.4"], conf, input="QUIT\r\n",
                     macros={"SINK_PORT": "25"})
    assert proc.returncode == 0, proc.stderr
    assert "220 " in proc.stdout
    assert not list(tmp_path.rglob("debuglog*"))


def test_d_expand_traces_be_to_stderr(tmp_path):
    conf = tmp_path / "pymta.conf"
    conf.write_text(f"spool_directory = {tmp_path}/spool\n")
    proc = run_pymta(["-d-all+expand", "-be", "${lc:ABC}"], conf)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "abc\n"
    err = proc.stderr.splitlines()
    assert "considering: ${lc:ABC}" in err
    assert "  expanding: ${lc:ABC}" in err and "     result: abc" in err
    # the same without +expand: no trace; with +pid each line starts with the pid
    assert run_pymta(["-d-all+acl", "-be", "${lc:ABC}"], conf).stderr == ""
    pid_err = run_pymta(["-d-all+expand+pid", "-be", "${lc:ABC}"], conf).stderr
    assert re.search(r"^ *\d+ considering: \$\{lc:ABC\}$", pid_err, re.M), pid_err


def _daemon_output(d) -> str:
    return (d.dir / "daemon.out").read_text(errors="replace")


def test_daemon_d_traces_its_children_to_stderr_with_pids(pymta_daemon):
    d = pymta_daemon(["-d-all+acl"])
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<bob@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        c.quit()
    # the receiver's lines carry its pid (forced for a daemon, as in Exim)
    line = wait_for(lambda: re.search(r'^ *(\d+) end of ACL "acl_check_rcpt": ACCEPT$',
                                      _daemon_output(d), re.M))
    assert int(line.group(1)) != d.proc.pid


def test_daemon_dd_leaves_its_children_untraced(pymta_daemon):
    d = pymta_daemon(["-dd-all+acl"])
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<bob@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        c.quit()
    assert "ACL" not in _daemon_output(d)


DEBUG_PRINT = """\
spool_directory = DIR/spool
primary_hostname = test.example
begin routers
r1:
  driver = accept
  local_parts = ! nobody
  debug_print = R: lp=$local_part rn=$router_name
  transport = t1
begin transports
t1:
  driver = appendfile
  file = DIR/mbox
  debug_print = T: tn=$transport_name rn=$router_name
"""


def _debug_print_conf(tmp_path):
    conf = tmp_path / "pymta.conf"
    conf.write_text(DEBUG_PRINT.replace("DIR", str(tmp_path)))
    return conf


def test_router_debug_print_in_address_testing_mode(tmp_path):
    conf = _debug_print_conf(tmp_path)
    proc = run_pymta(["-bt", "x@test.example"], conf)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "R: lp=x rn=r1\n"
    assert "router = r1, transport = t1" in proc.stdout
    # written after the local_parts check: a router skipped by it prints nothing
    assert run_pymta(["-bt", "nobody@test.example"], conf).stderr.count("R:") == 0


def test_debug_print_goes_to_the_debug_output_with_v_or_d(tmp_path):
    conf = _debug_print_conf(tmp_path)
    msg = "Subject: x\n\nbody\n"
    quiet = run_pymta(["-odi", "x@test.example"], conf, input=msg)
    assert quiet.returncode == 0 and "R:" not in quiet.stderr and "T:" not in quiet.stderr
    verbose = run_pymta(["-v", "-odi", "x@test.example"], conf, input=msg)
    assert verbose.returncode == 0, verbose.stderr
    assert "R: lp=x rn=r1\n" in verbose.stderr
    assert "T: tn=t1 rn=r1\n" in verbose.stderr
    traced = run_pymta(["-d-all+transport", "-odi", "x@test.example"], conf, input=msg)
    lines = traced.stderr.splitlines()
    assert "T: tn=t1 rn=r1" in lines
    assert "t1 transport returned OK for x@test.example" in lines
    assert (tmp_path / "mbox").read_text().count("Subject: x") == 3


def test_d_lookup_traces_each_lookup_and_its_result(tmp_path):
    conf = tmp_path / "pymta.conf"
    conf.write_text(f"spool_directory = {tmp_path}/spool\n")
    (tmp_path / "aliases").write_text("alice: a@example.com\n")
    aliases = tmp_path / "aliases"
    proc = run_pymta(["-d-all+lookup", "-be",
                      f"${{lookup{{alice}}lsearch{{{aliases}}}}} "
                      f"${{lookup{{bob}}lsearch{{{aliases}}}{{y}}{{n}}}}"], conf)
    assert proc.stdout == "a@example.com n\n", proc.stderr
    # one space in: made while expanding (as Exim indents what it traces there)
    assert proc.stderr.splitlines() == [
        f' lsearch lookup: file="{aliases}" key="alice"', " lookup yielded: a@example.com",
        f' lsearch lookup: file="{aliases}" key="bob"', " lookup failed"]


def test_not_smtp_acl_control_traces_submission_and_delivery(tmp_path):
    conf = tmp_path / "pymta.conf"
    conf.write_text(DEBUG_PRINT.replace("DIR", str(tmp_path)).replace(
        "begin routers", "acl_not_smtp = ns\nbegin acl\nns:\n"
        "  accept control = debug/tag=.ns/opts=-all+acl+route+transport\nbegin routers"))
    proc = run_pymta(["-odi", "x@test.example"], conf, input="Subject: x\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    # the log directory did not exist yet: it is made for the debug log
    lines = (tmp_path / "spool" / "log" / "debuglog.ns").read_text().splitlines()
    assert lines[:2] == ['accept: condition test succeeded in ACL "ns"',
                         'end of ACL "ns": ACCEPT']
    assert "R: lp=x rn=r1" in lines and "T: tn=t1 rn=r1" in lines
    assert "t1 transport returned OK for x@test.example" in lines
    assert proc.stderr == ""
