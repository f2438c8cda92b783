"""headers_rewrite on a transport, end to end: the delivered message's headers are
rewritten (those received and those an ACL added), the routers' and the transport's
headers_add are not, and the spool keeps the message as received (Exim 4.96 does the
same for this configuration)."""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.daemon import run_pymta

CONFIG = BASE_CONFIG.replace(
    "acl_check_rcpt:\n",
    "acl_check_rcpt:\n  warn  add_header = Reply-To: acl@old.example\n").replace(
    "  local_parts = lsearch;DIR/users\n",
    "  local_parts = lsearch;DIR/users\n  headers_add = X-Router: router@old.example\n").replace(
    "  maildir_format\n",
    "  maildir_format\n"
    "  headers_add = Cc: transport@old.example\n"
    '  headers_rewrite = *@old.example $1@test.example fcr : '
    'w@* "Whole <ww@test.example>" w\n')


def test_transport_rewrites_headers_at_delivery(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG, macros={"EXTRA_MAIN": "log_selector = +address_rewrite"})
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.send_message(
            "carol@old.example", ["alice@test.example"],
            "From: carol@old.example\r\nTo: Ph <w@any>, x@old.example\r\n"
            "Cc: y@old.example\r\nSubject: at delivery\r\n\r\nbody\r\n")[0] == 250
        c.quit()
    [message] = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    head = message.split(b"\n\n", 1)[0].decode() + "\n"
    assert "\nFrom: carol@test.example\n" in head
    # "t" is not among the first rule's flags: only the w rule changes To:
    assert "\nTo: Whole <ww@test.example>, x@old.example\n" in head
    assert "\nCc: y@test.example\n" in head
    assert "\nReply-To: acl@test.example\n" in head          # added by an ACL
    assert "\nX-Router: router@old.example\n" in head        # router's headers_add
    assert "\nCc: transport@old.example\n" in head           # transport's headers_add
    log = d.wait_for_log(r'"carol@old.example" from from: rewritten as '
                         r'"carol@test.example" by rule 1')
    assert log
    assert not d.queue()


def test_headers_rewrite_refuses_envelope_flags(tmp_path):
    bad = CONFIG.replace(" fcr : ", " F : ")
    (tmp_path / "bad.conf").write_text(bad)
    proc = run_pymta(["-bV"], tmp_path / "bad.conf",
                     macros={"SPOOL": str(tmp_path / "spool"), "DIR": str(tmp_path),
                             "SINK_PORT": "25"})
    assert proc.returncode != 0
    assert "non-header rewrite - not allowed at transport time" in proc.stderr + proc.stdout
