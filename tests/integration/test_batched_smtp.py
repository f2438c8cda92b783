"""pymta -bS: batched SMTP on standard input (no replies; Exim's error report, status)."""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for

CONFIG = BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt", """\
acl_smtp_rcpt = acl_check_rcpt
acl_not_smtp = acl_ns""").replace("begin acl\n", """begin acl

acl_ns:
  deny    condition = ${if eq{$recipients}{bob@test.example}}
          message = no bob
  accept
""")

TWO = (b"HELO x\nMAIL FROM:<a@remote.example>\nRCPT TO:<alice>\nDATA\nSubject: one\n\n"
       b"..dot\n.\nVRFY x\nMAIL FROM:<>\nRCPT TO:<alice@test.example>\nDATA\r\n"
       b"Subject: two\r\n\r\nbody\r\n.\r\nQUIT\nMAIL FROM:<ignored@x>\n")


def test_two_messages_no_replies(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    proc = d.run("-bS", "-odi", input=TWO)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    lines = d.wait_for_log(r"<= .* P=local-bsmtp ", count=2)
    assert re.search(r"<= a@remote\.example U=root P=local-bsmtp S=\d+", lines[0])
    assert re.search(r"<= <> U=root P=local-bsmtp S=\d+", lines[1])
    msgs = wait_for(lambda: len(maildir_messages(tmp_path, "alice")) == 2 and
                    maildir_messages(tmp_path, "alice"))
    assert b"\n.dot\n" in msgs[0] and b"Subject: one" in msgs[0]
    assert b"Subject: two" in msgs[1]


def test_error_in_a_command_after_one_message(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    proc = d.run("-bS", "-odq", input=(
        b"MAIL FROM:<a@remote.example>\nRCPT TO:<alice@test.example>\nDATA\nSubject: one\n"
        b"\nx\n.\nMAIL FROM:<a@remote.example>\nrcpt to:<malformed@in.com.plete\nDATA\n"
        b"x\n.\n"))
    assert proc.returncode == 1
    assert proc.stdout == ("501 '>' missing at end of address\nTransaction started in line 7\n"
                           "Error detected in line 9\nrcpt to:<malformed@in.com.plete\n")
    assert proc.stderr == (
        "An error was detected while processing a file of BSMTP input.\n"
        "The error message was:\n\n  501 '>' missing at end of address\n\n"
        "The SMTP transaction started in line 7.\nThe error was detected in line 9.\n"
        "The SMTP command at fault was:\n\n   rcpt to:<malformed@in.com.plete\n\n"
        "1 previous message was successfully processed.\n"
        "The rest of the batch was abandoned.\n")
    assert len(d.queue()) == 1


def test_errors_that_accept_nothing(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    cases = [
        (b"MAIL FROM:<a@remote.example>\nRCPT TO:<alice@test.example>\nDATA\nSubject: x\n\nx\n",
         "421 Lost incoming connection\nTransaction started in line 0\n"
         "Error detected in line 7\n"),
        (b"FOO bar\nMAIL FROM:<a@remote.example>\n",
         "500 Command unrecognized\nTransaction started in line 0\n"
         "Error detected in line 1\nFOO bar\n"),
        (b"RCPT TO:<alice@test.example>\n",
         "503 No sender yet given\nTransaction started in line 0\n"
         "Error detected in line 1\nRCPT TO:<alice@test.example>\n"),
        (b"MAIL FROM:<a@remote.example>\nDATA\n",
         "503 RCPT TO:<recipient> must precede DATA\nTransaction started in line 0\n"
         "Error detected in line 2\nDATA\n"),
        (b"MAIL FROM:<a@remote.example>\nRCPT TO:<bob@test.example>\nDATA\nx\n.\n",
         "550 no bob\nTransaction started in line 0\nError detected in line 5\n"),
    ]
    for batch, report in cases:
        proc = d.run("-bS", "-odq", input=batch)
        assert (proc.returncode, proc.stdout) == (2, report)
        assert "0 previous messages were successfully processed." in proc.stderr
    assert d.queue() == []
    assert "F=<a@remote.example> rejected by non-SMTP ACL: no bob" in d.log()


def test_oMr_sets_the_protocol(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    proc = d.run("-bS", "-odq", "-oMr", "uucp-batch", input=(
        b"MAIL FROM:<a@remote.example>\nRCPT TO:<alice@test.example>\nDATA\nx\n.\n"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d.wait_for_log(r"<= a@remote\.example U=root P=uucp-batch ")


def test_host_options_describe_the_origin(pymta_daemon):
    d = pymta_daemon(args=["-odq"], config=CONFIG)
    proc = d.run("-bS", "-odq", "-oMa", "10.9.8.7.1234", "-oMs", "h.example", "-oMt", "idx",
                 "-oMi", "10.0.0.1.25", "-oMaa", "plainx", "-oMai", "joe", "-oMas",
                 "joe@x.example", input=(
                     b"MAIL FROM:<a@remote.example>\nRCPT TO:<alice@test.example>\nDATA\n"
                     b"x\n.\n"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d.wait_for_log(r"<= a@remote\.example H=h\.example \[10\.9\.8\.7\] U=idx P=local-bsmtp "
                   r"A=plainx:joe S=\d+")
    [msgid] = d.queue()
    header = (d.spool / "input" / f"{msgid}-H").read_text()
    for line in ("-host_address [10.9.8.7]:1234", "-host_name h.example",
                 "-host_auth plainx", "-interface_address [10.0.0.1]:25", "-ident idx",
                 "-auth_id joe"):
        assert line + "\n" in header, (line, header)
    assert "auth_sender" not in header
    # The same options on a -bm submission, where -oMas is kept.
    d.run("-odq", "-oMa", "10.9.8.7", "-oMs", "h.example", "-oMt", "idx", "-oMaa", "p",
          "-oMai", "joe", "-oMas", "joe@x.example", "alice@test.example",
          input=b"Subject: x\n\nx\n")
    [line] = d.wait_for_log(r"<= root@test\.example H=h\.example \[10\.9\.8\.7\] U=idx "
                            r"P=local A=p:joe S=")
    bm = line.split()[2]
    assert "-auth_sender joe@x.example\n" in (d.spool / "input" / f"{bm}-H").read_text()
