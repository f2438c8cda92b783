"""Users' Exim and Sieve filters through the redirect router, and the system filter,
delivered with `pymta -odi`.

The expected log lines are those Exim 4.96 wrote for the same configuration and
messages (exim4 -odi on Debian's package, filters and system filter as here).
"""
from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

from tests.support.daemon import PymtaDaemon

SENDER = "s@test.example"
USER = "nobody" if os.geteuid() == 0 else getpass.getuser()
USERS = "u1 : u2 : u3 : u4 : u5 : u6 : u7 : u8 : u9"

FILTERS = {
    "u1": "# Exim filter\nif $h_subject: contains urgent then save DIR/urgent endif\n"
          "unseen deliver other@test.example\n",
    "u2": "# Exim filter\nseen finish\n",
    "u3": "# Exim filter\nif foo then\n",
    "u4": "# Exim filter\nif personal then vacation endif\nlogfile DIR/flog\n"
          'logwrite "got $message_id"\n',
    "u5": '# Exim filter\npipe "/bin/echo hello $message_id"\n'
          'mail to bob@test.example subject "note" text "hi\\n"\n',
    "u6": "# Exim filter\ndeliver zed@test.example\nsave relative/x\n",
    "u7": '# Sieve filter\nif header :contains "subject" "zzz" { discard; }\n',
    "u8": '# Sieve filter\nredirect "other@test.example";\n',
    "u9": '# Sieve filter\nrequire ["fileinto", "copy"];\n'
          'if header :contains "subject" "keepme" { fileinto :copy "Saved"; }\n'
          'elsif true { fileinto "Other"; }\n',
}

CONFIG = f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
SYSTEM_FILTER_SETTINGS
begin routers
userfilter:
  driver = redirect
  allow_filter
  user = {USER}
  local_parts = {USERS}
  file = DIR/$local_part_data.filter
  router_home_directory = DIR/home
  file_transport = address_file
  pipe_transport = address_pipe
  reply_transport = address_reply
r:
  driver = accept
  local_parts = s : {USERS} : other : bob : mon
  transport = local
begin transports
local:
  driver = appendfile
  file = DIR/mbox-$local_part_data
  user = {USER}
address_file:
  driver = appendfile
  # Sieve folders: inbox is the user's mailbox, others are under DIR/folders
  file = ${{if eq{{$address_file}}{{inbox}}{{DIR/mbox-$local_part_data}}\\
          {{${{if eq{{${{substr_0_1:$address_file}}}}{{/}}{{$address_file}}\\
          {{DIR/folders/$address_file}}}}}}}}
  user = {USER}
address_pipe:
  driver = pipe
  user = {USER}
  return_output
address_reply:
  driver = autoreply
  user = {USER}
begin retry
* * F,1h,10m
"""


def _daemon(tmp_path: Path, system_filter: str | None = None) -> PymtaDaemon:
    settings = ""
    if system_filter is not None:
        (tmp_path / "system.filter").write_text(system_filter.replace("DIR", str(tmp_path)))
        settings = ("system_filter = DIR/system.filter\nsystem_filter_user = "
                    f"{USER}\nsystem_filter_file_transport = address_file\n")
    d = PymtaDaemon(CONFIG.replace("SYSTEM_FILTER_SETTINGS", settings), tmp_path)
    d.prepare()
    for name, text in FILTERS.items():
        (tmp_path / f"{name}.filter").write_text(text.replace("DIR", str(tmp_path)))
    for sub in ("home", "folders"):
        (tmp_path / sub).mkdir(exist_ok=True)
    (tmp_path / "home" / ".vacation.msg").write_text("Away!\n")
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam(USER)
        for sub in ("home", "folders"):
            os.chown(tmp_path / sub, pw.pw_uid, pw.pw_gid)
    return d


def _send(d: PymtaDaemon, user: str, subject: str = "urgent",
          extra: str = "") -> str:
    message = f"From: {SENDER}\nTo: {user}@test.example\nSubject: {subject}\n{extra}\nbody\n"
    d.submit_and_deliver(SENDER, f"{user}@test.example", message.encode())
    ids = re.findall(r"(\w{6}-\w{6}-\w{2}) <= s@test\.example", d.log())
    return ids[-1]


def _lines(d: PymtaDaemon, msgid: str) -> list[str]:
    return [ln.split(f"{msgid} ", 1)[1] for ln in d.log().splitlines()
            if f" {msgid} " in ln and " <= " not in ln]


def test_exim_filters_save_forward_discard_and_errors(tmp_path):
    d = _daemon(tmp_path)
    m1 = _send(d, "u1")
    assert sorted(_lines(d, m1)) == sorted([
        "=> other <u1@test.example> R=r T=local",
        f"=> {tmp_path}/urgent <u1@test.example> R=userfilter T=address_file",
        "Completed"])
    assert "Subject: urgent" in (tmp_path / "urgent").read_text()
    assert not (tmp_path / "mbox-u1").exists()      # the save was significant
    # nothing significant: unseen deliver, and the address goes on to the next router
    m1b = _send(d, "u1", subject="calm")
    assert sorted(_lines(d, m1b)) == sorted(["=> other <u1@test.example> R=r T=local",
                                             "=> u1 <u1@test.example> R=r T=local",
                                             "Completed"])
    m2 = _send(d, "u2")
    assert _lines(d, m2) == ["=> discarded <u2@test.example> R=userfilter", "Completed"]
    # a syntax error defers the user's mail, naming the line; nothing is lost
    m3 = _send(d, "u3")
    assert _lines(d, m3) == [
        '== u3@test.example R=userfilter defer (-17): error in filter file: unrecognized '
        'condition word "then" near line 3 of filter file']
    assert m3 in d.run("-bp").stdout


def test_vacation_logwrite_pipe_mail_and_generated_bounces(tmp_path):
    d = _daemon(tmp_path)
    m4 = _send(d, "u4")
    assert "=> >s@test.example <u4@test.example> R=userfilter T=address_reply" in \
        _lines(d, m4)
    assert "=> u4 <u4@test.example> R=r T=local" in _lines(d, m4)
    reply = (tmp_path / "mbox-s").read_text()
    assert "Subject: On vacation\n" in reply and "\n\nAway!\n" in reply
    assert (tmp_path / "flog").read_text() == f"got {m4}\n"
    # the vacation once file: a second message gets no second reply
    _send(d, "u4")
    assert (tmp_path / "mbox-s").read_text().count("Subject: On vacation") == 1

    m5 = _send(d, "u5")
    lines = _lines(d, m5)
    assert "=> >bob@test.example <u5@test.example> R=userfilter T=address_reply" in lines
    assert ("** |/bin/echo hello $message_id <u5@test.example> R=userfilter "
            "T=address_pipe: return message generated") in lines
    assert "Subject: note\n" in (tmp_path / "mbox-bob").read_text()
    bounce = (tmp_path / "mbox-s").read_text().split("X-Failed-Recipients: ")[-1]
    assert bounce.startswith("u5@test.example\n")
    assert ("  pipe to |/bin/echo hello $message_id\n    generated by u5@test.example\n"
            in bounce)
    assert f"------ pipe to |/bin/echo hello $message_id\n       generated by " \
        f"u5@test.example ------\n\nhello {m5}\n" in bounce
    assert "Final-Recipient: rfc822;u5@test.example\n" in bounce

    m6 = _send(d, "u6")
    assert sorted(_lines(d, m6)) == sorted([
        "** zed@test.example <u6@test.example>: Unrouteable address",
        f"=> {tmp_path}/home/relative/x <u6@test.example> R=userfilter T=address_file",
        "Completed"])
    bounce = (tmp_path / "mbox-s").read_text().split("X-Failed-Recipients: ")[-1]
    assert "  zed@test.example\n    (generated from u6@test.example)\n    Unrouteable " \
        "address\n" in bounce


def test_sieve_keep_redirect_and_fileinto(tmp_path):
    d = _daemon(tmp_path)
    m7 = _send(d, "u7", subject="hello")       # implicit keep: "inbox"
    assert _lines(d, m7) == ["=> inbox <u7@test.example> R=userfilter T=address_file",
                             "Completed"]
    assert "Subject: hello" in (tmp_path / "mbox-u7").read_text()
    m7b = _send(d, "u7", subject="zzz")        # discard
    assert _lines(d, m7b) == ["=> discarded <u7@test.example> R=userfilter", "Completed"]
    m8 = _send(d, "u8")
    assert _lines(d, m8) == ["=> other <u8@test.example> R=r T=local", "Completed"]
    m9 = _send(d, "u9", subject="keepme")      # fileinto :copy keeps the implicit keep
    assert sorted(_lines(d, m9)) == sorted([
        "=> Saved <u9@test.example> R=userfilter T=address_file",
        "=> inbox <u9@test.example> R=userfilter T=address_file", "Completed"])
    _send(d, "u9", subject="other")
    assert "Subject: other" in (tmp_path / "folders" / "Other").read_text()
    assert "Subject: other" not in (tmp_path / "mbox-u9").read_text()


SYSTEM_FILTER = """# Exim filter
if first_delivery then headers add "X-Sys: $n1 yes" headers remove "X-Drop" endif
if $h_subject: contains "copy" then unseen deliver mon@test.example endif
if $h_subject: contains "save" then unseen save DIR/saved endif
if $h_subject: contains "take" then deliver other@test.example endif
if $h_subject: contains "freeze" then freeze "held by filter" endif
if $h_subject: contains "fail" then fail text "<<short>>long reason" endif
if $h_subject: contains "defer" then defer "try later" endif
if $h_subject: contains "finish" then seen finish endif
"""


def test_system_filter(tmp_path):
    d = _daemon(tmp_path, SYSTEM_FILTER)
    m = _send(d, "s", subject="copy", extra="X-Drop: 1\n")
    assert sorted(_lines(d, m)) == sorted(["=> mon <system-filter> R=r T=local",
                                           "=> s <s@test.example> R=r T=local",
                                           "Completed"])
    mbox = (tmp_path / "mbox-s").read_text()
    assert "X-Sys: 0 yes\n" in mbox and "X-Drop" not in mbox
    m = _send(d, "s", subject="save")
    assert f"=> {tmp_path}/saved <system-filter> T=address_file" in _lines(d, m)
    m = _send(d, "s", subject="take")
    assert _lines(d, m) == ["original recipients ignored (system filter)",
                            "=> other <system-filter> R=r T=local", "Completed"]
    m = _send(d, "s", subject="finish")
    assert _lines(d, m) == ["=> discarded (system filter)", "Completed"]
    m = _send(d, "s", subject="defer")
    assert _lines(d, m) == ["Delivery deferred by system filter"]
    m2 = _send(d, "s", subject="freeze")
    assert _lines(d, m2) == ["Frozen by the system filter: held by filter"]
    queue = d.run("-bp").stdout
    assert m in queue and f"{m2} <s@test.example> *** frozen ***" in queue
    m = _send(d, "s", subject="fail")
    assert _lines(d, m)[0] == "cancelled by system filter: short"
    bounce = (tmp_path / "mbox-s").read_text()
    assert "long reason" not in bounce      # the bounce of a "fail" is itself failed
