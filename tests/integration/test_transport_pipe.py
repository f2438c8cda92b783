"""pipe transport through `pymta -odi`: real commands (sh scripts), exit codes, signals,
timeouts, output handling, taint, environment and redirected "|command" addresses.

The expected log lines are those Exim 4.96 writes for the same configuration (recorded
with exim4 -odi on Debian's package).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.support.daemon import PymtaDaemon

SENDER = "s@test.example"

SCRIPTS = {
    "sig.sh": "#!/bin/sh\nkill -KILL $$\n",
    "ok.sh": ('#!/bin/sh\nenv > "$OUT/env.out"; cat > "$OUT/msg.out"; '
              'printf "%s|" "$@" > "$OUT/args.out"; echo logged-line; echo second\n'),
    "group.sh": '#!/bin/sh\nsleep 60 &\necho $! > "$OUT/child.pid"\nwait\n',
    "batch.sh": ('#!/bin/sh\necho run >> "$OUT/batch.runs"; '
                 'printf "%s," "$@" > "$OUT/batch.args"\n'),
    "forward.sh": '#!/bin/sh\ncat > "$OUT/forward.out"; echo "$1" > "$OUT/forward.arg"\n',
    "batchid.sh": '#!/bin/sh\necho "$*" >> "$OUT/batchid.runs"\n',
}

TRANSPORTS = {
    "exit1": 'command = /bin/sh -c "echo out1; echo second; exit 1"\n  return_fail_output',
    "exit75": 'command = /bin/sh -c "echo deferring; exit 75"\n  log_defer_output',
    "exit127": "command = /nonexistent/cmd arg",
    "sig": "command = @OUT@/sig.sh",
    "slow": "command = @OUT@/group.sh\n  timeout = 1s",
    "ok": ("command = @OUT@/ok.sh $pipe_addresses \"a b\" 'c\\\\d' \"e\\\\f\" \"${lc:ABC}\"x\n"
           "  environment = EXTRA=1 : OUT=@OUT@\n  log_output"),
    "retout": 'command = /bin/sh -c "echo hello"\n  return_output',
    "tainted": "command = /bin/echo $local_part",
    "shell": "use_shell\n  command = echo $local_part > /dev/null",
    "shellok": 'use_shell\n  command = test "\\$LOCAL_PART" = shellok && exit 3',
    "ignored": 'command = /bin/sh -c "exit 9"\n  ignore_status',
    "frozen": "command = /nonexistent/cmd\n  freeze_exec_fail",
    "bsmtp": 'command = /bin/sh -c "cat > @OUT@/bsmtp.out"\n  use_bsmtp',
    "batch": 'command = @OUT@/batch.sh $pipe_addresses "[$local_part]"\n  batch_max = 10',
    "batchid": ('command = @OUT@/batchid.sh $pipe_addresses\n  batch_max = 10\n'
                '  batch_id = ${if eq{$local_part}{c3}{odd}{even}}'),
}


def _config(out: Path) -> str:
    names = list(TRANSPORTS)
    routers = "".join(f"r_{n}:\n  driver = accept\n  local_parts = {n}\n  transport = {n}\n"
                      for n in names if n not in ("batch", "batchid"))
    routers += "r_batch:\n  driver = accept\n  local_parts = b1 : b2 : b3\n  transport = batch\n"
    routers += ("r_batchid:\n  driver = accept\n  local_parts = c1 : c2 : c3\n"
                "  transport = batchid\n")
    user = "user = nobody" if os.geteuid() == 0 else ""
    transports = "".join(
        f"{n}:\n  driver = pipe\n  {user}\n  {body.replace('@OUT@', str(out))}\n"
        + ("" if "environment" in body else f"  environment = OUT={out}\n")
        for n, body in TRANSPORTS.items())
    return f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
begin routers
forwarder:
  driver = redirect
  local_parts = fwd
  data = "|{out}/forward.sh first-arg"
  pipe_transport = address_pipe
{routers}
begin transports
address_pipe:
  driver = pipe
  {'user = nobody' if os.geteuid() == 0 else ''}
  environment = OUT={out}
{transports}
"""


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipe")
    out = base / "out"
    out.mkdir()
    os.chmod(out, 0o777)        # the commands run as nobody
    for name, text in SCRIPTS.items():
        p = out / name
        p.write_text(text)
        p.chmod(0o755)
    d = PymtaDaemon(_config(out), base / "mta")
    d.out = out
    return d


def deliver(d: PymtaDaemon, local_part: str, body: str = "body\n") -> list[str]:
    """Submit to local_part@test.example with -odi; the main log lines of that message."""
    before = len(d.log().splitlines())
    d.submit_and_deliver(SENDER, f"{local_part}@test.example",
                         f"Subject: t\n\n{body}".encode())
    lines = [line.split(" ", 2)[2] for line in d.log().splitlines()[before:]]
    return [re.sub(r"^\w{6}-\w{6}-\w{2} ", "", line) for line in lines]


def bounce_texts(d: PymtaDaemon) -> str:
    """Every bounce's body on the queue (the bounces to s@test.example are frozen:
    that address does not route)."""
    out = []
    for p in sorted((d.spool / "input").glob("*-D")):
        out.append(p.read_text(errors="replace"))
    return "\n".join(out)


def test_failure_status_and_returned_output(pipes):
    lines = deliver(pipes, "exit1")
    assert any(line.endswith("** exit1@test.example R=r_exit1 T=exit1: Child process of exit1 "
                             "transport returned 1 from command: /bin/sh") for line in lines), lines
    assert ("The following text was generated during the delivery attempt:\n\n"
            "------ exit1@test.example ------\n\nout1\nsecond\n") in bounce_texts(pipes)


def test_temp_error_defers_and_logs_the_output(pipes):
    lines = deliver(pipes, "exit75")
    assert any(line.endswith("<exit75@test.example>: exit75 transport output: deferring")
               for line in lines), lines
    assert any(line.endswith("== exit75@test.example R=r_exit75 T=exit75 defer (0): Child "
                             "process of exit75 transport returned 75 (could mean temporary "
                             "error) from command: /bin/sh") for line in lines), lines


def test_missing_command_fails_with_exims_hint(pipes):
    lines = deliver(pipes, "exit127")
    assert any(line.endswith("** exit127@test.example R=r_exit127 T=exit127: Child process of "
                             "exit127 transport returned 127 (could mean unable to exec or "
                             "command does not exist) from command: /nonexistent/cmd")
               for line in lines), lines


def test_signal_fails_and_the_bounce_says_only_local_delivery_failed(pipes):
    lines = deliver(pipes, "sig")
    assert any(line.endswith(f'** sig@test.example R=r_sig T=sig: Child process of sig '
                             f'transport (running command "{pipes.out}/sig.sh") was '
                             f'terminated by signal 9 (Killed)') for line in lines), lines
    assert "  sig@test.example\n    local delivery failed\n" in bounce_texts(pipes)


def test_timeout_kills_the_whole_process_group(pipes):
    started = time.monotonic()
    lines = deliver(pipes, "slow")
    assert time.monotonic() - started < 20
    assert any(line.endswith("** slow@test.example R=r_slow T=slow: pipe delivery process "
                             "timed out") for line in lines), lines
    pid = int((pipes.out / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and \
            "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
        time.sleep(0.05)
    gone = not os.path.exists(f"/proc/{pid}") or \
        "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert gone, "the command's background child survived the timeout"


def test_arguments_environment_message_and_log_output(pipes):
    lines = deliver(pipes, "ok", "body\nFrom x\n")
    assert "=> ok <ok@test.example> R=r_ok T=ok" in lines, lines
    assert "<ok@test.example>: ok transport output: logged-line" in " ".join(lines)
    # Split before expansion, quotes and escapes as Exim 4.96 reads them: a quoted word
    # ends at its quote ("${lc:ABC}"x is two arguments) and \f is a form feed.
    assert (pipes.out / "args.out").read_text() == "ok@test.example|a b|c\\d|e\f|abc|x|"
    env = dict(line.split("=", 1) for line in (pipes.out / "env.out").read_text().splitlines()
               if "=" in line)
    for name, value in {"LOCAL_PART": "ok", "LOGNAME": "ok", "USER": "ok",
                        "DOMAIN": "test.example", "RECIPIENT": "ok@test.example",
                        "SENDER": SENDER, "SHELL": "/bin/sh", "PATH": "/bin:/usr/bin",
                        "QUALIFY_DOMAIN": "test.example", "EXTRA": "1"}.items():
        assert env.get(name) == value, (name, env)
    assert re.fullmatch(r"\w{6}-\w{6}-\w{2}", env["MESSAGE_ID"])
    msg = (pipes.out / "msg.out").read_text()
    assert re.match(rf"From {SENDER} \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d \d{{4}}\n", msg)
    assert msg.endswith("\nbody\nFrom x\n\n")       # no "From " escaping; suffix "\n"


def test_return_output_fails_a_zero_exit(pipes):
    lines = deliver(pipes, "retout")
    assert any(line.endswith("** retout@test.example R=r_retout T=retout: return message "
                             "generated") for line in lines), lines
    assert ("  retout@test.example\n\nThe following text was generated during the delivery "
            "attempt:\n\n------ retout@test.example ------\n\nhello\n") in bounce_texts(pipes)


def test_tainted_argument_is_refused(pipes):
    lines = deliver(pipes, "tainted")
    assert any(line.endswith("** tainted@test.example R=r_tainted T=tainted: Tainted arg 1 "
                             "for tainted transport command: 'tainted'") for line in lines), lines


def test_use_shell_refuses_a_tainted_command_and_runs_a_clean_one(pipes):
    lines = deliver(pipes, "shell")
    assert any("Tainted arg 2 for shell transport command" in line for line in lines), lines
    lines = deliver(pipes, "shellok")
    assert any(line.endswith("** shellok@test.example R=r_shellok T=shellok: Child process "
                             "of shellok transport returned 3 from command: /bin/sh")
               for line in lines), lines


def test_ignore_status_and_freeze_exec_fail(pipes):
    assert "=> ignored <ignored@test.example> R=r_ignored T=ignored" in deliver(pipes,
                                                                                 "ignored")
    lines = deliver(pipes, "frozen")
    assert any("== frozen@test.example R=r_frozen T=frozen defer (0): Child process of "
               "frozen transport returned 127" in line for line in lines), lines
    assert any(line.startswith("Frozen") for line in lines), lines


def test_batch_smtp_format(pipes):
    deliver(pipes, "bsmtp", "body\n.dot\n")
    text = (pipes.out / "bsmtp.out").read_text()
    assert text.startswith(f"MAIL FROM:<{SENDER}>\nRCPT TO:<bsmtp@test.example>\nDATA\n")
    assert text.endswith("\nbody\n..dot\n.\n")


def test_redirected_pipe_runs_unexpanded_with_the_users_message(pipes):
    lines = deliver(pipes, "fwd")
    assert any(f"=> |{pipes.out}/forward.sh first-arg <fwd@test.example> R=forwarder "
               "T=address_pipe" in line for line in lines), lines
    assert (pipes.out / "forward.arg").read_text() == "first-arg\n"
    assert "\nbody\n" in (pipes.out / "forward.out").read_text()


def test_batch_max_runs_the_command_once_for_several_addresses(pipes):
    before = len(pipes.log().splitlines())
    pipes.prepare()
    r = pipes.run("-odi", "-f", SENDER, "b1@test.example", "b2@test.example", "b3@test.example",
                  input=b"Subject: batch\n\nbody\n")
    assert r.returncode == 0, r.stderr
    lines = [re.sub(r"^\S+ \S+ \w{6}-\w{6}-\w{2} ", "", ln)
             for ln in pipes.log().splitlines()[before:]]
    assert (pipes.out / "batch.runs").read_text() == "run\n"
    # every address as its own argument; $local_part is empty in a batch
    assert (pipes.out / "batch.args").read_text() == \
        "b1@test.example,b2@test.example,b3@test.example,[],"
    assert sum(ln.startswith(("=> b", "-> b")) for ln in lines) == 3, lines


def test_batch_id_splits_batches(pipes):
    pipes.prepare()
    r = pipes.run("-odi", "-f", SENDER, "c1@test.example", "c2@test.example",
                  "c3@test.example", input=b"Subject: batch\n\nbody\n")
    assert r.returncode == 0, r.stderr
    runs = sorted((pipes.out / "batchid.runs").read_text().splitlines())
    assert runs == ["c1@test.example c2@test.example", "c3@test.example"]
