"""The smtp_syntax_error log lines, in exim4's wording."""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG


def test_syntax_error_lines_leave_out_the_argument_the_reply_starts_with(pymta_daemon):
    # exim4 -bh 1.2.3.4 logs, for these commands:
    #   SMTP syntax error in "MAIL FROM:<a@b" H=(x) [1.2.3.4] '>' missing at end of address
    #   SMTP syntax error in "MAIL FROM:<a@b.example> SIZE=x" H=(x) [1.2.3.4] malformed
    #   address: SIZE=x may not follow <a@b.example> (one line, with the trailing space)
    d = pymta_daemon(config="log_selector = +smtp_syntax_error\n" + BASE_CONFIG)
    with d.client() as c:
        c.banner()
        c.cmd("HELO x")
        assert c.cmd("MAIL FROM:<a@b") == (501, "<a@b: '>' missing at end of address")
        assert c.cmd("MAIL FROM:<a@b.example> SIZE=x")[0] == 501
        c.quit()
    d.wait_for_log(r"SMTP syntax error", count=2)
    log = d.log()
    assert """SMTP syntax error in "MAIL FROM:<a@b" H=(x) [127.0.0.1] '>' missing at end of \
address\n""" in log
    assert """SMTP syntax error in "MAIL FROM:<a@b.example> SIZE=x" H=(x) [127.0.0.1] \
malformed address: SIZE=x may not follow <a@b.example> \n""" in log
