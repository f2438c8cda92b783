"""The -oM options with -bh and -bs: the client's host name, ident, our interface and a
preset authentication, as Exim 4.96 shows them in ACL variables, logs and the spool."""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG

CONFIG = BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", """\
acl_smtp_rcpt = acl_vars
log_selector = +incoming_port""").replace("begin acl\n", """begin acl

acl_vars:
  warn log_message = V sha=$sender_host_address:$sender_host_port shn=$sender_host_name \\
                     ident=$sender_ident rip=$received_ip_address:$received_port \\
                     auth=$sender_host_authenticated aid=$authenticated_id \\
                     proto=$received_protocol
  accept
""")
SESSION = (b"EHLO x\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@test.example>\r\n"
           b"DATA\r\nSubject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n")
OPTIONS = ("-oMs", "host.example", "-oMt", "identx", "-oMi", "10.0.0.1.25",
           "-oMaa", "plainx", "-oMai", "joe", "-oMas", "joe@x.example")


def test_bh_with_host_options(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    proc = d.run("-bh", "10.1.1.1.99", *OPTIONS, input=SESSION)
    assert proc.returncode == 0, proc.stderr
    assert "250-mx.test.example Hello identx at host.example [10.1.1.1]" in proc.stdout
    assert "AUTH" not in proc.stdout                  # already authenticated
    assert ("LOG: H=host.example (x) [10.1.1.1] U=identx Warning: V sha=10.1.1.1:99 "
            "shn=host.example ident=identx rip=10.0.0.1:25 auth=plainx aid=joe "
            "proto=esmtpa") in proc.stderr
    assert re.search(r"<= a@remote\.example H=host\.example \(x\) \[10\.1\.1\.1\]:99 "
                     r"U=identx P=esmtpa A=plainx:joe S=\d+", proc.stderr)


def test_bh_and_oma_the_last_wins(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    late = d.run("-bh", "10.1.1.1", "-oMa", "10.2.2.2", input=SESSION)
    assert "V sha=10.2.2.2:" in late.stderr
    early = d.run("-oMa", "10.2.2.2", "-bh", "10.1.1.1.99", input=SESSION)
    assert "V sha=10.1.1.1:99 " in early.stderr


def test_bs_trusted_with_a_host_address(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    proc = d.run("-bs", "-odq", "-oMa", "10.9.8.7.1234", *OPTIONS, input=SESSION)
    assert proc.returncode == 0, proc.stderr
    assert "250-mx.test.example Hello identx at host.example [10.9.8.7]" in proc.stdout
    [line] = d.wait_for_log(r"<= a@remote\.example")
    assert re.search(r"<= a@remote\.example H=host\.example \(x\) \[10\.9\.8\.7\]:1234 "
                     r"U=identx P=esmtpa A=plainx:joe S=\d+", line)
    assert "V sha=10.9.8.7:1234 shn=host.example ident=identx rip=10.0.0.1:25" in d.log()
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    assert "--host_address [10.9.8.7]:1234\n" in header
    assert "--host_name host.example\n" in header or "-host_name host.example\n" in header
    assert "ident identx\n" in header
    assert "-interface_address [10.0.0.1]:25\n" in header


def test_bs_trusted_without_a_host_address(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    proc = d.run("-bs", "-odq", "-oMaa", "plainx", "-oMai", "joe", input=SESSION)
    assert proc.returncode == 0, proc.stderr
    [line] = d.wait_for_log(r"<= a@remote\.example")
    assert re.search(r" U=root P=local-esmtpa A=plainx:joe S=\d+", line)


def test_oMr_does_not_apply_to_bs_and_bh(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    proc = d.run("-bs", "-odq", "-oMr", "weird", input=SESSION)
    assert proc.returncode == 0, proc.stderr
    d.wait_for_log(r"<= a@remote\.example U=root P=local-esmtp S=")
    checked = d.run("-bh", "10.1.1.1", "-oMr", "weird", input=SESSION)
    assert " proto=esmtp" in checked.stderr and "weird" not in checked.stderr
