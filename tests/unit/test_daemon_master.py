"""The daemon master with stand-in session and delivery functions (real fork, sockets)."""
import os
import signal
import socket
import time
from types import SimpleNamespace

import pytest

from pymta.config.options import format_time
from pymta.daemon import listen
from pymta.daemon.master import (
    DaemonOptions,
    Master,
    daemon_addresses,
    pid_file_path,
    start_line,
)


class FileLog:
    """Logger stand-in: one line per call, appended (safe across forked processes)."""

    def __init__(self, path):
        self.path = path

    def _w(self, kind, text, msgid=None):
        with open(self.path, "a") as f:
            f.write(f"{kind} {msgid + ' ' if msgid else ''}{text}\n")

    def main(self, text, msgid=None):
        self._w("main", text, msgid)

    def reject(self, text, msgid=None):
        self._w("reject", text, msgid)

    def panic(self, text, msgid=None):
        self._w("panic", text, msgid)

    def lines(self):
        try:
            with open(self.path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


def config(tmp_path, **main):
    defaults = dict(spool_directory=str(tmp_path), smtp_accept_max=4, queue_run_max=2,
                    local_interfaces="127.0.0.1", daemon_smtp_ports="0", pid_file_path="")
    defaults.update(main)
    return SimpleNamespace(main=SimpleNamespace(**defaults), filename="test.conf")


def fake_session(sock, config, listener, log, notify, stop_event=None):
    """Greets, reads one line that names a message id, 'accepts' it, then waits for QUIT."""
    f = sock.makefile("rb")
    sock.sendall(b"220 fake\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        if stop_event is not None and stop_event.is_set():
            sock.sendall(b"421 shutting down\r\n")
            return
        word = line.strip().decode()
        if word == "QUIT":
            sock.sendall(b"221 bye\r\n")
            return
        if word == "NODELAY?":          # what the receiver set on the accepted socket
            on = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            sock.sendall(f"250 {'on' if on else 'off'}\r\n".encode())
            continue
        notify(word)
        sock.sendall(f"250 OK id={word}\r\n".encode())


def fake_deliver(config, msgid, log, **kw):
    with open(os.path.join(config.main.spool_directory, "delivered"), "a") as f:
        f.write(f"{msgid} {os.getpid()}\n")


@pytest.fixture
def daemon(tmp_path, request):
    cfg = config(tmp_path, **getattr(request, "param", {}))
    log = FileLog(str(tmp_path / "log"))
    socks = listen.bind_listeners([("127.0.0.1", 0)])
    port = socks[0].getsockname()[1]
    pidfile = str(tmp_path / "pid")
    opts = DaemonOptions(listen=True, foreground=True)
    pid = os.fork()
    if pid == 0:
        try:
            m = Master(cfg, log, socks, opts, pid_file=pidfile,
                       run_session=fake_session, deliver=fake_deliver)
            with open(pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
            os._exit(m.run())
        finally:
            os._exit(3)
    for s in socks:
        s.close()
    info = SimpleNamespace(pid=pid, port=port, log=log, tmp=tmp_path, pidfile=pidfile)
    yield info
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def delivered(tmp):
    try:
        return (tmp / "delivered").read_text().splitlines()
    except FileNotFoundError:
        return []


def talk(port, *lines):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = c.makefile("rb")
    replies = [f.readline()]
    for line in lines:
        c.sendall(line.encode() + b"\r\n")
        replies.append(f.readline())
    c.close()
    return replies


def children_of(pid):
    import psutil
    return psutil.Process(pid).children()


def test_accepted_message_is_handed_to_a_worker_once(daemon):
    replies = talk(daemon.port, "1aaaaa-000000-AA", "QUIT")
    assert replies[0] == b"220 fake\r\n" and replies[1].startswith(b"250 OK")
    assert wait_for(lambda: delivered(daemon.tmp))
    time.sleep(0.3)
    got = delivered(daemon.tmp)
    assert len(got) == 1 and got[0].startswith("1aaaaa-000000-AA ")
    assert got[0].split()[1] != str(daemon.pid)   # a worker, not the master


def test_concurrent_sessions_served(daemon):
    c1 = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    c2 = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    c3 = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    for c in (c1, c2, c3):   # three sessions at once: the pool grew beyond two
        assert c.makefile("rb").readline() == b"220 fake\r\n"
        c.close()


def test_crashed_receiver_is_replaced_and_logged(daemon):
    assert wait_for(lambda: len(children_of(daemon.pid)) >= 4)
    victim = next(p for p in children_of(daemon.pid) if p.pid != daemon.pid)
    os.kill(victim.pid, signal.SIGKILL)
    assert wait_for(lambda: any("ended unexpectedly (killed by signal 9)" in ln
                                for ln in daemon.log.lines()))
    assert wait_for(lambda: victim.pid not in [p.pid for p in children_of(daemon.pid)]
                    and len(children_of(daemon.pid)) >= 4)
    assert talk(daemon.port, "QUIT")[1] == b"221 bye\r\n"


def test_sigterm_gives_421_to_session_in_progress_and_removes_pid_file(daemon):
    c = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    f = c.makefile("rb")
    assert f.readline() == b"220 fake\r\n"
    assert wait_for(lambda: os.path.exists(daemon.pidfile))
    os.kill(daemon.pid, signal.SIGTERM)
    time.sleep(0.5)
    c.sendall(b"NOOP\r\n")
    assert f.readline() == b"421 shutting down\r\n"
    c.close()
    _, status = os.waitpid(daemon.pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert not os.path.exists(daemon.pidfile)
    assert any("SIGTERM received: daemon terminating" in ln for ln in daemon.log.lines())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=1)


def test_start_line_and_helpers(tmp_path):
    opts = DaemonOptions(queue_interval=1800)
    line = start_line(42, opts, [("127.0.0.1", 2525), ("::1", 2525)])
    assert line == ("pymta 0.1.0 daemon started: pid=42, -q30m, listening for SMTP on "
                    "[127.0.0.1]:2525 [::1]:2525")
    assert "no queue runs" in start_line(1, DaemonOptions(), [("127.0.0.1", 25)])
    assert format_time(5400) == "1h30m"
    cfg = config(tmp_path, daemon_smtp_ports="smtp")
    assert daemon_addresses(cfg, None) == [("127.0.0.1", 25)]
    assert daemon_addresses(cfg, "2525") == [("127.0.0.1", 2525)]
    assert pid_file_path(cfg, DaemonOptions()) == os.path.join(str(tmp_path), "pymta-daemon.pid")
    assert pid_file_path(cfg, DaemonOptions(oX="2525")) is None
    assert pid_file_path(cfg, DaemonOptions(oX="2525", pid_file="/x")) == "/x"
    cfg.main.pid_file_path = "/run/p.pid"
    assert pid_file_path(cfg, DaemonOptions()) == "/run/p.pid"


def test_drop_privileges_to_exim_user(tmp_path):
    from pymta.daemon.util import drop_privileges
    if os.geteuid() != 0:
        pytest.skip("needs root")
    cfg = SimpleNamespace(main=SimpleNamespace(exim_user="nobody", exim_group=None))

    def ids_after(keep_root: bool) -> str:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                dropped = drop_privileges(cfg, keep_root=keep_root)
                os.write(w, f"{dropped} {os.getresuid()} {sorted(os.getgroups())}".encode())
            finally:
                os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        return os.read(r, 200).decode()
    import pwd
    pw = pwd.getpwnam("nobody")
    nobody, groups = pw.pw_uid, sorted(os.getgrouplist("nobody", pw.pw_gid))
    assert ids_after(False) == f"True {(nobody, nobody, nobody)} {groups}"
    # a delivery worker keeps a saved root uid to switch to local users
    assert ids_after(True) == f"True {(nobody, nobody, 0)} {groups}"
    assert drop_privileges(SimpleNamespace(main=SimpleNamespace(exim_user=None))) is False


def test_standalone_queue_run_skips_frozen_and_locked(tmp_path):
    from pymta.daemon import queuerunner
    from pymta.spool import files
    from pymta.spool.ids import new_message_id
    from pymta.spool.lock import lock_message
    from pymta.spool.model import SpoolMessage, SpoolRecipient
    ids = []
    for frozen in (False, True, False):
        msgid = new_message_id()
        msg = SpoolMessage(id=msgid, originator_login="root", originator_uid=0,
                           originator_gid=0, sender="a@b", received_time=int(time.time()),
                           frozen_at=int(time.time()) if frozen else None,
                           recipients=[SpoolRecipient("r@x")])
        files.write_spool(str(tmp_path), msg, b"body\n")
        ids.append(msgid)
    held = lock_message(str(tmp_path), ids[2])
    cfg = config(tmp_path)
    calls = []
    n = queuerunner.run_queue(cfg, FileLog(str(tmp_path / "log")),
                              deliver=lambda c, m, lg, **kw: calls.append((m, kw)))
    default = {"queue": "", "local_only": False}
    assert n == 1 and calls == [(ids[0], {"forced": False, **default})]
    calls.clear()
    held.release()
    queuerunner.run_queue(cfg, FileLog(str(tmp_path / "log")), force_frozen=True,
                          deliver=lambda c, m, lg, **kw: calls.append((m, kw)))
    # the order of a queue run is arbitrary unless queue_run_in_order is set
    assert sorted(calls, key=str) == sorted(
        ((i, {"forced": True, "manual": True, **default}) for i in ids), key=str)


def test_accepted_sockets_have_tcp_nodelay(daemon):
    # tcp_nodelay defaults to true (as in Exim): replies are not held back by Nagle.
    assert talk(daemon.port, "NODELAY?", "QUIT")[1] == b"250 on\r\n"


@pytest.mark.parametrize("daemon", [{"tcp_nodelay": False}], indirect=True)
def test_tcp_nodelay_false_leaves_nagle_on(daemon):
    assert talk(daemon.port, "NODELAY?", "QUIT")[1] == b"250 off\r\n"


@pytest.mark.parametrize("daemon", [{"smtp_accept_max": 1}], indirect=True)
def test_smtp_accept_max_reached_gives_421(daemon):
    c1 = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    f1 = c1.makefile("rb")
    assert f1.readline() == b"220 fake\r\n"
    time.sleep(0.5)     # the master learns that its only receiver is busy
    c2 = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    assert c2.makefile("rb").readline().startswith(b"421 ")
    c2.close()
    assert wait_for(lambda: any("refused: too many connections" in ln
                                for ln in daemon.log.lines()))
    c1.sendall(b"QUIT\r\n")
    assert f1.readline() == b"221 bye\r\n"
    c1.close()
    time.sleep(0.5)
    assert talk(daemon.port, "QUIT")[0] == b"220 fake\r\n"


def _spool_message(spool, frozen=False):
    from pymta.spool import files
    from pymta.spool.ids import new_message_id
    from pymta.spool.model import SpoolMessage, SpoolRecipient
    msgid = new_message_id()
    msg = SpoolMessage(id=msgid, originator_login="root", originator_uid=0, originator_gid=0,
                       sender="a@b", received_time=int(time.time()),
                       frozen_at=int(time.time()) if frozen else None,
                       recipients=[SpoolRecipient("r@x")])
    files.write_spool(str(spool), msg, b"body\n")
    return msgid


def test_queue_runs_without_listening_hand_due_messages_to_workers(tmp_path):
    """-q1s alone: no sockets, periodic queue runs, frozen messages left alone, each
    message delivered by a worker once per run until it leaves the queue."""
    from pymta.spool import files
    due = _spool_message(tmp_path)
    frozen = _spool_message(tmp_path, frozen=True)
    cfg = config(tmp_path)
    log = FileLog(str(tmp_path / "log"))

    def deliver_and_remove(config, msgid, log, **kw):
        fake_deliver(config, msgid, log)
        files.remove_message(config.main.spool_directory, msgid)

    pid = os.fork()
    if pid == 0:
        try:
            m = Master(cfg, log, [], DaemonOptions(listen=False, queue_interval=1),
                       deliver=deliver_and_remove)
            os._exit(m.run())
        finally:
            os._exit(3)
    try:
        assert wait_for(lambda: delivered(tmp_path), 10)
        time.sleep(2.5)     # more queue runs: nothing further to do
        got = [line.split()[0] for line in delivered(tmp_path)]
        assert got == [due]
        assert files.read_header(str(tmp_path), frozen).frozen_at is not None
    finally:
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_sighup_rebinds_changed_addresses_and_keeps_running(tmp_path):
    from tests.support.ports import free_port
    p1, p2 = free_port(), free_port()
    cfg1 = config(tmp_path, local_interfaces=f"127.0.0.1.{p1}")
    cfg2 = config(tmp_path, local_interfaces=f"<; 127.0.0.1.{p1} ; 127.0.0.1.{p2}")
    cfg3 = config(tmp_path, local_interfaces=f"127.0.0.1.{p2}")
    configs = [cfg2, cfg3]
    log = FileLog(str(tmp_path / "log"))
    socks = listen.bind_listeners(daemon_addresses(cfg1, None))
    pid = os.fork()
    if pid == 0:
        try:
            m = Master(cfg1, log, socks, DaemonOptions(config_path="x"),
                       load_config=lambda path, macros: configs.pop(0),
                       run_session=fake_session, deliver=fake_deliver)
            os._exit(m.run())
        finally:
            os._exit(3)
    for s in socks:
        s.close()

    def answers(port):
        try:
            return talk(port, "QUIT")[0] == b"220 fake\r\n"
        except OSError:
            return False
    try:
        assert wait_for(lambda: answers(p1)) and not answers(p2)
        os.kill(pid, signal.SIGHUP)      # adds p2, keeps p1
        assert wait_for(lambda: answers(p2)) and answers(p1)
        os.kill(pid, signal.SIGHUP)      # drops p1
        assert wait_for(lambda: not answers(p1))
        assert wait_for(lambda: answers(p2)), log.lines()
        assert sum("SIGHUP received" in ln for ln in log.lines()) == 2
        assert not any(ln.startswith("panic") for ln in log.lines())
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def test_master_survives_a_failing_logger(tmp_path):
    class BrokenLog(FileLog):
        def main(self, text, msgid=None):
            raise OSError("log disk full")

        def panic(self, text, msgid=None):
            raise OSError("log disk full")
    socks = listen.bind_listeners([("127.0.0.1", 0)])
    port = socks[0].getsockname()[1]
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            m = Master(config(tmp_path), BrokenLog(str(tmp_path / "log")), socks,
                       DaemonOptions(config_path="x"), load_config=lambda p, m: None,
                       run_session=fake_session, deliver=fake_deliver)
            os._exit(m.run())
        finally:
            os._exit(3)
    for s in socks:
        s.close()
    try:
        assert wait_for(lambda: talk(port, "QUIT")[0] == b"220 fake\r\n")
        os.kill(pid, signal.SIGHUP)          # logging the reload raises inside the master
        time.sleep(1.0)
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
        assert talk(port, "QUIT")[1] == b"221 bye\r\n"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_surplus_idle_receivers_retire_one_per_second(tmp_path, monkeypatch):
    """Under bursty load the idle count swings: retiring every surplus receiver at once
    and forking new ones a moment later burned more CPU than the sessions (benchmark
    S5).  One surplus receiver goes per RETIRE_INTERVAL."""
    from pymta.daemon import master as master_mod
    socks = listen.bind_listeners([("127.0.0.1", 0)])
    m = Master(config(tmp_path, smtp_accept_max=50), FileLog(str(tmp_path / "log")), socks,
               DaemonOptions(listen=True, foreground=True))
    for pid in range(1000, 1000 + master_mod.MAX_SPARE_RECEIVERS + 5):   # 5 too many
        m.children[pid] = master_mod.Child(pid, "receiver")
    monkeypatch.setattr(m, "worker_count", lambda: 0)
    retired: list[int] = []
    monkeypatch.setattr(m, "_retire", lambda c, sig: (retired.append(c.pid),
                                                      setattr(c, "retiring", True)))
    clock = [100.0]
    monkeypatch.setattr(master_mod.time, "monotonic", lambda: clock[0])
    m._maintain_pools()
    m._maintain_pools()
    assert len(retired) == 1
    clock[0] += master_mod.RETIRE_INTERVAL
    m._maintain_pools()
    assert len(retired) == 2
    for s in socks:
        s.close()


def test_threaded_receivers_are_counted_in_session_slots(tmp_path, monkeypatch):
    """smtp_receiver_threads = 4: the pool keeps 5 idle session slots, so two receivers
    of 4; with 7 of their 8 sessions busy a third is forked; the limit counts sessions
    (smtp_accept_max = 10: the third receiver gets the 2 slots left)."""
    from pymta.daemon import master as master_mod
    socks = listen.bind_listeners([("127.0.0.1", 0)])
    m = Master(config(tmp_path, smtp_accept_max=10, smtp_receiver_threads=4),
               FileLog(str(tmp_path / "log")), socks,
               DaemonOptions(listen=True, foreground=True))
    monkeypatch.setattr(m, "worker_count", lambda: 0)
    forked: list[int] = []
    next_pid = [2000]

    def spawn(sessions: int = 1) -> bool:
        slots = m.connections.free_slots({s for c in m.children.values() for s in c.slots},
                                         sessions)
        pid, next_pid[0] = next_pid[0], next_pid[0] + 1
        m.children[pid] = master_mod.Child(pid, "receiver", slots=slots)
        forked.append(sessions)
        return True
    monkeypatch.setattr(m, "spawn_receiver", spawn)
    m._maintain_pools()
    assert forked == [4, 4]
    first, second = list(m.children.values())
    for slot in first.slots:
        m.connections.claim(slot, first.pid, "192.0.2.1")
    for slot in second.slots[:3]:
        m.connections.claim(slot, second.pid, "192.0.2.2")
    m._maintain_pools()
    assert forked == [4, 4, 2]              # 10 sessions: the limit
    m._update_saturation()
    assert not m._saturated                 # 3 slots still idle
    for c in list(m.children.values())[1:]:
        for slot in c.slots:
            m.connections.claim(slot, c.pid, "192.0.2.3")
    m._update_saturation()
    assert m._saturated
    for s in socks:
        s.close()
