"""autoreply transport (vacation) through `pymta -odi`: the reply's headers and body as
Exim 4.96 builds them for the same configuration, its <= line, the once database and
log file, never_mail, and no replies to bulk or automatic mail."""
from __future__ import annotations

import os
import re

import pytest

from tests.support.daemon import PymtaDaemon

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
vac:
  driver = accept
  local_parts = vac : small
  transport = ${if eq{$local_part}{vac}{vacation}{small_once}}
  unseen
r:
  driver = accept
  transport = local
begin transports
vacation:
  driver = autoreply
  to = $sender_address
  from = vac@test.example
  subject = Away: $h_subject:
  text = I am away.\\nBack soon.\\n
  once = DIR/once.db
  log = DIR/vac.log
  never_mail = never@test.example
  headers = X-Vacation: yes
small_once:
  driver = autoreply
  to = $sender_address
  from = small@test.example
  subject = Away
  text = away
  once = DIR/once.txt
  once_file_size = 60
local:
  driver = appendfile
  file = DIR/mbox
"""


def send(d: PymtaDaemon, sender: str, headers: str, to: str = "vac@test.example") -> None:
    d.submit_and_deliver(sender, to, f"{headers}\n\nbody\n".encode())


def messages(d: PymtaDaemon) -> list[str]:
    path = d.dir / "mbox"
    text = path.read_text() if path.exists() else ""
    return [m for m in re.split(r"(?m)^(?=From \S+ \w{3} \w{3} )", text) if m]


def replies(d: PymtaDaemon) -> list[str]:
    return [m for m in messages(d) if m.startswith("From MAILER-DAEMON ")]


def test_reply_as_exim_builds_it_and_once(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    send(d, "someone@test.example", "Subject: hello there\nMessage-Id: <orig@x>")
    (reply,) = replies(d)
    headers, _, body = reply.partition("\n\n")
    names = [ln.split(":", 1)[0] for ln in headers.splitlines()[1:] if not ln[:1].isspace()]
    assert names == ["Received", "From", "To", "Subject", "In-Reply-To", "References",
                     "Auto-Submitted", "X-Vacation", "Message-Id", "Date"], headers
    for line in ("From: vac@test.example", "To: someone@test.example",
                 "Subject: Away: hello there", "In-Reply-To: <orig@x>",
                 "References: <orig@x>", "Auto-Submitted: auto-replied", "X-Vacation: yes"):
        assert f"\n{line}\n" in headers
    assert body.startswith("I am away.\nBack soon.\n")
    log = d.log()
    orig = re.search(r"(\w{6}-\w{6}-\w{2}) <= someone@test\.example", log).group(1)
    assert re.search(rf"\w{{6}}-\w{{6}}-\w{{2}} <= <> R={orig} U=\S+ P=local S=\d+", log)
    assert f"{orig} => vac <vac@test.example> R=vac T=vacation" in log
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n  From: vac@test\.example\n"
                        r"  To: someone@test\.example\n  Subject: Away: hello there\n"
                        r"  X-Vacation: yes\n", (tmp_path / "vac.log").read_text())
    # once: the second message from the same sender gets no reply; the log says so
    send(d, "someone@test.example", "Subject: again")
    assert len(replies(d)) == 1
    assert (tmp_path / "vac.log").read_text().endswith(
        "\n  previously sent to someone@test.example\n")
    # the original still reaches the mailbox (unseen)
    assert sum("Subject: again\n" in m for m in messages(d)) == 1


def test_no_reply_to_never_mail_bulk_or_automatic_mail(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    send(d, "never@test.example", "Subject: x")
    send(d, "list@test.example", "Subject: news\nPrecedence: list")
    send(d, "list2@test.example", "Subject: news\nList-Id: <l.test.example>")
    send(d, "robot@test.example", "Subject: ack\nAuto-Submitted: auto-generated")
    assert replies(d) == []
    send(d, "person@test.example", "Subject: hi\nAuto-Submitted: no")
    assert len(replies(d)) == 1


def test_once_file_with_a_size_limit_forgets_the_oldest(tmp_path):
    d = PymtaDaemon(CONFIG, tmp_path)
    for n in range(4):          # each record is about 30 bytes: the file holds two
        send(d, f"p{n}@test.example", "Subject: s", to="small@test.example")
    assert len(replies(d)) == 4
    kept = (tmp_path / "once.txt").read_text()
    assert "p0@test.example" not in kept and "p3@test.example" in kept
    send(d, "p3@test.example", "Subject: s", to="small@test.example")
    assert len(replies(d)) == 4
    send(d, "p0@test.example", "Subject: s", to="small@test.example")
    assert len(replies(d)) == 5


def test_eight_bit_header_fields_need_print_topbitchars(tmp_path):
    """As exim4 4.96: 8-bit text in a header field of the reply fails the delivery
    (its message names the option's text and the first byte that is not printing),
    unless print_topbitchars makes top-bit bytes printing; a control character
    fails it either way."""
    d = PymtaDaemon(CONFIG, tmp_path)
    send(d, "someone@test.example", "Subject: caf\u00e9")
    assert [r for r in replies(d) if "\nSubject: Away" in r] == []     # a bounce only
    assert ('** vac@test.example R=vac T=vacation: Expansion of "Away: $h_subject:" in '
            'vacation transport contains non-printing character 195') in d.log()
    d = PymtaDaemon("print_topbitchars = true\n" + CONFIG, tmp_path / "topbit")
    send(d, "someone@test.example", "Subject: caf\u00e9")
    (reply,) = replies(d)
    assert "\nSubject: Away: caf\u00e9\n" in reply
    send(d, "other@test.example", "Subject: a\x01b")
    assert len([r for r in replies(d) if "\nSubject: Away" in r]) == 1
    assert "contains non-printing character 1\n" in d.log()


def test_the_reply_comes_from_the_user_the_transport_runs_as(tmp_path):
    """exim4 4.96 with the autoreply transport's user = Debian-exim logged
    "<= <> R=<orig> U=Debian-exim" and its Received: began "from Debian-exim": the
    reply is submitted by a process running as the delivery's user, not as the caller
    (root) of the delivery."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the transport as another user")
    config = CONFIG.replace("  driver = autoreply\n  to = $sender_address\n  from = vac@",
                            "  driver = autoreply\n  user = nobody\n"
                            "  to = $sender_address\n  from = vac@", 1)
    d = PymtaDaemon(config, tmp_path)
    send(d, "someone@test.example", "Subject: hello")
    (reply,) = replies(d)
    assert "\nReceived: from nobody by test.example with local " in reply, reply
    assert re.search(r"<= <> R=\S+ U=nobody P=local ", d.log()), d.log()
