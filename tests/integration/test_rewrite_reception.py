"""The rewrite section at reception, end to end: the real daemon over SMTP and the
command line, the delivered maildir messages, the spool and the main log (what Exim
4.96 writes for the same rules: the old header kept as deleted "*", the new one after
it, X-rewrote-* records of the old envelope, '"a" from env-to rewritten as "b" by
rule N' lines under log_selector = +address_rewrite)."""
from __future__ import annotations

import getpass
import os

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for

# a filter runs as a user: the test's own, or nobody when the tests run as root
FILTER_USER = "nobody" if os.geteuid() == 0 else getpass.getuser()

RULES = r"""
begin rewrite

root@*  *
*@old.example  $1@test.example
\N^<legacy!(.*)>$\N  <$1@test.example>  S
bob@*  "Bob Builder <bob@test.example>"  wf
*@*.sub.test.example  $1@test.example  F
"""

# old.example is accepted at RCPT when it verifies: verification routes the rewritten
# address (alice@test.example), though the RCPT ACL's variables keep what was given.
ALIASES = """\
aliases:
  driver = redirect
  domains = +local_domains
  local_parts = list
  data = alice@old.example

filtered:
  driver = redirect
  domains = +local_domains
  local_parts = filtered
  allow_filter
  user = FILTER_USER
  data = #Exim filter\\ndeliver alice@old.example

raw_aliases:
  driver = redirect
  domains = +local_domains
  local_parts = rawlist
  data = alice@old.example
  no_rewrite

"""

CONFIG = BASE_CONFIG.replace(
    "  accept  domains = remote.example\n",
    "  accept  domains = old.example\n          verify = recipient\n"
    "  accept  domains = remote.example\n").replace(
    "local_users:\n", ALIASES.replace("FILTER_USER", FILTER_USER) + "local_users:\n") + RULES


def _start(pymta_daemon, logged=True):
    macros = {"EXTRA_MAIN": "log_selector = +address_rewrite"} if logged else {}
    return pymta_daemon(config=CONFIG, macros=macros)


def _pair(old: str, new: str, flag: str) -> str:
    """A rewritten header in -H: the old text deleted, then the new one."""
    return f"{len(old):03d}* {old}{len(new):03d}{flag} {new}"


def _headers(message: bytes) -> list[str]:
    head = message.split(b"\n\n", 1)[0].decode()
    return head.replace("\n ", " ").replace("\n\t", " ").split("\n")


def test_smtp_message_is_rewritten_in_envelope_and_headers(pymta_daemon, tmp_path):
    d = _start(pymta_daemon)
    body = ("From: Carol <carol@old.example>\r\n"
            "To: alice@old.example, bob@remote.example (Bob)\r\n"
            "Cc: Someone <someone@elsewhere.example>\r\n"
            "Subject: rewrite me\r\n\r\nbody\r\n")
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@old.example> SIZE=100")[0] == 250
        assert c.cmd("RCPT TO:<alice@old.example>")[0] == 250
        # S: rewritten before any check, so <legacy!bob> is bob@test.example
        assert c.cmd("RCPT TO:<legacy!bob>")[0] == 250
        assert c.data(body.encode())[0] == 250
        c.quit()
    alice = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    bob = wait_for(lambda: maildir_messages(tmp_path, "bob"))
    assert alice and bob and alice == bob
    headers = _headers(alice[0])
    assert "From: Carol <carol@test.example>" in headers
    assert "To: alice@test.example, bob@remote.example (Bob)" in headers
    assert "Cc: Someone <someone@elsewhere.example>" in headers
    # the replaced headers and the X-rewrote records stay in the spool only
    assert not any("old.example" in h for h in headers), headers
    d.wait_for_log(r" <= carol@test.example ")
    log = d.log()
    assert '"<legacy!bob>" from smtp recipient rewritten as "<bob@test.example>" by rule 3' \
        in log
    for line in ('"alice@old.example" from env-to rewritten as "alice@test.example" by rule 2',
                 '"carol@old.example" from env-from rewritten as "carol@test.example" by rule 2',
                 '"carol@old.example" from from: rewritten as "carol@test.example" by rule 2',
                 '"alice@old.example" from to: rewritten as "alice@test.example" by rule 2'):
        assert f" {line}\n" in log, line
    # the id of the message prefixes the reception-time lines
    [arrival] = [ln for ln in log.splitlines() if " <= " in ln]
    msgid = arrival.split()[2]
    assert f"{msgid} \"alice@old.example\" from env-to" in log


def test_local_message_spool_marks_old_headers_and_envelope(pymta_daemon):
    d = _start(pymta_daemon)
    message = ("From: bob@anywhere.example\n"
               "To: Alice <alice@old.example>,\n  root@old.example\n"
               "Cc: carol, bob\n"
               "Subject: local\n\nbody\n")
    proc = d.run("-odq", "-f", "sender@x.sub.test.example", "-t", input=message)
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    spool = (d.spool / "input" / f"{msgid}-H").read_text()
    header_part = spool.split("\n\n", 1)[1]
    assert "<sender@test.example>\n" in spool          # F: the envelope sender
    assert "\nalice@test.example\n" in spool           # -t recipients, rewritten
    assert "\nroot@old.example\n" in spool             # "*": never rewritten
    # the old header deleted ("*") and the new one after it with the same type letter
    assert _pair("From: bob@anywhere.example\n",
                 "From: Bob Builder <bob@test.example>\n", "F") in header_part
    assert _pair("To: Alice <alice@old.example>,\n  root@old.example\n",
                 "To: Alice <alice@test.example>,\n  root@old.example\n", "T") in header_part
    # a local message's unqualified header addresses are qualified, then rewritten
    assert _pair("Cc: carol, bob\n",
                 "Cc: carol@test.example, Bob Builder <bob@test.example>\n", "C") \
        not in header_part             # the w rule has the f flag only
    assert _pair("Cc: carol, bob\n", "Cc: carol@test.example, bob@test.example\n", "C") \
        in header_part
    assert "* X-rewrote-original-recipient: alice@old.example\n" in header_part
    assert "* X-rewrote-sender: sender@x.sub.test.example\n" in header_part
    log = d.log()
    assert (f'{msgid} "sender@x.sub.test.example" from env-from rewritten as '
            '"sender@test.example" by rule 5') in log
    assert f'{msgid} "bob@anywhere.example" from from: rewritten as ' \
        '"Bob Builder <bob@test.example>" by rule 4' in log


def test_rewrites_are_not_logged_without_the_selector(pymta_daemon, tmp_path):
    d = _start(pymta_daemon, logged=False)
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.send_message("carol@old.example", ["alice@old.example"],
                              "From: carol@old.example\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
    d.wait_for_log(r" <= carol@test.example ")
    assert "rewritten" not in d.log()


def test_brw_with_the_daemons_configuration(pymta_daemon):
    d = _start(pymta_daemon)
    proc = d.run("-brw", "Bob <bob@old.example>")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "  sender: Bob <bob@test.example>",
        "    from: Bob Builder <bob@test.example>",
        "      to: Bob <bob@test.example>",
        "      cc: Bob <bob@test.example>",
        "     bcc: Bob <bob@test.example>",
        "reply-to: Bob <bob@test.example>",
        "env-from: bob@test.example",
        "  env-to: bob@test.example",
    ]


def test_recipient_verification_routes_the_rewritten_address(pymta_daemon):
    d = _start(pymta_daemon)
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<carol@elsewhere.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@old.example>")[0] == 250
        # nobody@test.example has no mailbox: refused, as nobody@old.example is
        assert c.cmd("RCPT TO:<nobody@old.example>")[0] == 550
        c.quit()


def test_redirect_children_are_rewritten_unless_no_rewrite(pymta_daemon):
    d = _start(pymta_daemon)
    routed = d.run("-bt", "list@test.example")
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert "alice@test.example" in routed.stdout
    assert "router = local_users" in routed.stdout
    raw = d.run("-bt", "rawlist@test.example")
    assert raw.returncode == 2
    assert "alice@old.example" in raw.stdout


def test_filter_deliveries_are_rewritten(pymta_daemon, tmp_path):
    d = _start(pymta_daemon)
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.send_message("carol@elsewhere.example", ["filtered@test.example"],
                              "Subject: via a filter\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
    d.wait_for_log(r"=> alice <filtered@test.example> R=local_users")


SENDER_VERIFY = CONFIG.replace(
    "acl_smtp_rcpt = acl_check_rcpt\n",
    "acl_smtp_rcpt = acl_check_rcpt\nacl_smtp_mail = acl_check_mail\n").replace(
    "begin acl\n",
    "begin acl\n\nacl_check_mail:\n  accept  verify = sender\n"
    "          logwrite = MAIL ACL sender $sender_address\n\n")


def test_a_verified_sender_stays_rewritten(pymta_daemon, tmp_path):
    d = pymta_daemon(config=SENDER_VERIFY,
                     macros={"EXTRA_MAIN": "log_selector = +address_rewrite"})
    with d.client() as c:
        c.banner()
        c.ehlo()
        # bob@test.example verifies (bob has a mailbox); bob@old.example would not
        assert c.send_message("bob@old.example", ["alice@test.example"],
                              "Subject: verified\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
    [arrival] = d.wait_for_log(r" <= bob@test.example ")
    msgid = arrival.split()[2]
    log = d.log()
    # rewritten (and logged) once, at verification, without a message id
    assert log.count('"bob@old.example" from env-from rewritten as "bob@test.example"') == 1
    assert "MAIL ACL sender bob@test.example\n" in log
    assert f'{msgid} "bob@old.example"' not in log


def test_system_filter_deliveries_are_rewritten(pymta_daemon, tmp_path):
    (tmp_path / "system.filter").write_text("# Exim filter\ndeliver alice@old.example\n")
    config = CONFIG.replace("spool_directory = SPOOL\n",
                            "spool_directory = SPOOL\nsystem_filter = DIR/system.filter\n")
    d = pymta_daemon(config=config, macros={"EXTRA_MAIN": "log_selector = +address_rewrite"})
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.send_message("carol@elsewhere.example", ["bob@test.example"],
                              "Subject: system filter\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    assert wait_for(lambda: maildir_messages(tmp_path, "alice"))
    [arrival] = d.wait_for_log(r" <= carol@elsewhere.example ")
    msgid = arrival.split()[2]
    d.wait_for_log(rf'{msgid} "alice@old.example" from env-to rewritten as '
                   r'"alice@test.example" by rule 2')
    assert maildir_messages(tmp_path, "bob") == []      # a significant delivery


DATA_ACL = CONFIG.replace(
    "acl_smtp_rcpt = acl_check_rcpt\n",
    "acl_smtp_rcpt = acl_check_rcpt\nacl_smtp_data = acl_check_data\n").replace(
    "begin acl\n",
    "begin acl\n\nacl_check_data:\n  accept  logwrite = DATA ACL $sender_address "
    "[$recipients] $h_From:\n\n")


def test_the_data_acl_sees_the_rewritten_envelope_and_headers(pymta_daemon, tmp_path):
    d = pymta_daemon(config=DATA_ACL,
                     macros={"EXTRA_MAIN": "log_selector = +address_rewrite"})
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.send_message("carol@old.example", ["alice@old.example", "bob@test.example"],
                              "From: carol@old.example\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    [line] = d.wait_for_log(r"DATA ACL ")
    assert line.endswith(
        "DATA ACL carol@test.example [alice@test.example, bob@test.example] "
        "carol@test.example")
    # the rewrites are logged when the header is in, before the DATA ACL runs (the
    # first is RCPT's verify = recipient, without a message id)
    lines = d.log().splitlines()
    rewritten = [i for i, ln in enumerate(lines) if " rewritten as " in ln]
    assert len(rewritten) == 4 and max(rewritten) < lines.index(line)


def test_batched_smtp_gets_the_smtp_time_rules(pymta_daemon, tmp_path):
    d = _start(pymta_daemon)
    batch = ("MAIL FROM:<carol@elsewhere.example>\nRCPT TO:<legacy!alice>\nDATA\n"
             "Subject: batched\n\nbody\n.\nQUIT\n")
    proc = d.run("-odq", "-bS", input=batch)
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    spool = (d.spool / "input" / f"{msgid}-H").read_text()
    assert "\n1\nalice@test.example\n" in spool
    assert '"<legacy!alice>" from smtp recipient rewritten as "<alice@test.example>" ' \
        "by rule 3" in d.log()


NOT_SMTP_ACL = CONFIG.replace(
    "acl_smtp_rcpt = acl_check_rcpt\n",
    "acl_smtp_rcpt = acl_check_rcpt\nacl_not_smtp = acl_check_local\n").replace(
    "begin acl\n",
    "begin acl\n\nacl_check_local:\n  accept  logwrite = LOCAL ACL $sender_address "
    "[$recipients] $h_From: / $h_To:\n\n")


def test_the_non_smtp_acl_sees_the_rewritten_message(pymta_daemon):
    d = pymta_daemon(config=NOT_SMTP_ACL,
                     macros={"EXTRA_MAIN": "log_selector = +address_rewrite"})
    proc = d.run("-odq", "-f", "carol@old.example", "-t",
                 input="From: carol@old.example\nTo: alice@old.example, bob\n\nbody\n")
    assert proc.returncode == 0, proc.stderr
    [msgid] = d.queue()
    lines = d.log().splitlines()
    [acl] = [ln for ln in lines if "LOCAL ACL" in ln]
    assert acl.endswith(f"{msgid} LOCAL ACL carol@test.example "
                        "[alice@test.example, bob@test.example] carol@test.example / "
                        "alice@test.example, bob@test.example")
    # logged once, before the ACL's line (Exim's order)
    rewritten = [i for i, ln in enumerate(lines) if " rewritten as " in ln]
    assert len(rewritten) == 4 and max(rewritten) < lines.index(acl)


def test_bt_and_bv_rewrite_the_address_first(pymta_daemon):
    d = _start(pymta_daemon)
    bt = d.run("-bt", "alice@old.example")
    assert bt.returncode == 0, bt.stdout + bt.stderr
    assert bt.stdout.startswith("Address rewritten as: alice@test.example\n"
                                "alice@test.example\n")
    # -bt shows the log line on standard error, in Exim's "LOG:" form
    assert 'LOG: address_rewrite MAIN\n  "alice@old.example" from env-to rewritten as ' \
        '"alice@test.example" by rule 2\n' in bt.stderr
    bv = d.run("-bv", "alice@old.example")
    assert bv.stdout == "Address rewritten as: alice@test.example\n" \
        "alice@test.example verified\n"
    # -bvs rewrites as a sender: the F rule applies, not the recipient rules' T
    bvs = d.run("-bvs", "x@y.sub.test.example")
    assert bvs.stdout.startswith("Address rewritten as: x@test.example\n")
    bv = d.run("-bv", "x@y.sub.test.example")
    assert "Address rewritten" not in bv.stdout
