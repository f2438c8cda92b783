"""LMDB hints databases: basic operations, multiple processes, fork, deletion."""
import os

from pymta.hints.db import HintsDB
from tests.support.recording_log import RecordingLog


def test_put_get_delete_items(tmp_path):
    db = HintsDB(str(tmp_path), "retry")
    assert db.get("R:x.example") is None
    db.put("R:x.example", b"\x00\x01data")
    db.put("T:mx.example:192.0.2.1", b"t")
    assert db.get("R:x.example") == b"\x00\x01data"
    assert db.items() == [("R:x.example", b"\x00\x01data"), ("T:mx.example:192.0.2.1", b"t")]
    assert db.delete("R:x.example") is True
    assert db.delete("R:x.example") is False
    assert db.get("R:x.example") is None
    assert os.path.isfile(tmp_path / "db" / "retry")
    db.close()


def child_started(fn) -> int:
    """Run ``fn`` in a forked child; its pid (exit status 0 if ``fn`` returned)."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:
            os._exit(1)
    return pid


def child(fn) -> int:
    return os.waitpid(child_started(fn), 0)[1]


def test_processes_see_each_others_writes(tmp_path):
    db = HintsDB(str(tmp_path), "misc")
    db.put("parent", b"1")               # opened in the parent before fork

    def in_child():
        assert db.get("parent") == b"1"  # reopened lazily in the child
        db.put("child", b"2")
        other = HintsDB(str(tmp_path), "misc")
        assert other.get("child") == b"2"
    assert child(in_child) == 0
    assert db.get("child") == b"2"
    db.put("parent", b"3")
    assert child(lambda: None if HintsDB(str(tmp_path), "misc").get("parent") == b"3"
                 else 1 / 0) == 0


def test_deleting_the_file_is_safe(tmp_path):
    db = HintsDB(str(tmp_path), "callout")
    db.put("k", b"v")
    for name in os.listdir(tmp_path / "db"):
        os.unlink(tmp_path / "db" / name)
    assert db.get("k") is None            # noticed and recreated
    db.put("k2", b"v2")
    assert HintsDB(str(tmp_path), "callout").get("k2") == b"v2"


def test_deleting_the_directory_is_safe(tmp_path):
    db = HintsDB(str(tmp_path), "ratelimit")
    db.put("k", b"v")
    db.close()
    for name in os.listdir(tmp_path / "db"):
        os.unlink(tmp_path / "db" / name)
    os.rmdir(tmp_path / "db")
    assert HintsDB(str(tmp_path), "ratelimit").get("k") is None


def test_garbage_file_is_replaced(tmp_path):
    os.makedirs(tmp_path / "db")
    (tmp_path / "db" / "seen").write_bytes(b"not an lmdb file" * 300)
    db = HintsDB(str(tmp_path), "seen")
    db.put("a", b"b")
    assert db.get("a") == b"b"


def test_clear(tmp_path):
    db = HintsDB(str(tmp_path), "tls")
    db.put("a", b"1")
    db.put("b", b"2")
    db.clear()
    assert db.items() == []


def test_truncated_file_is_recreated_not_sigbus(tmp_path):
    """LMDB would map the pages a truncated file lacks and die of SIGBUS reading them."""
    db = HintsDB(str(tmp_path), "retry")
    for i in range(200):
        db.put(f"k{i}", b"v" * 100)
    db.close()
    os.truncate(tmp_path / "db" / "retry", 8192)

    def in_child():
        log = RecordingLog()
        d = HintsDB(str(tmp_path), "retry", log=log)
        assert d.get("k5") is None
        assert "damaged (truncated to 8192 bytes" in log.text()
        d.put("k", b"v")
        assert d.get("k") == b"v"
    assert child(in_child) == 0


def test_growing_file_is_not_taken_for_truncated(tmp_path):
    """A file that another process is growing is never judged truncated.  Taking the
    size before reading the meta pages let a commit in between make a fresh receiver
    throw the whole database away (lost ratelimit updates under concurrent
    connections); several checkers compete for the CPU so that they get preempted."""
    import time

    from pymta.hints.db import data_file_damage
    path = str(tmp_path / "db" / "ratelimit")
    HintsDB(str(tmp_path), "ratelimit").put("seed", b"x")
    writer = os.fork()
    if writer == 0:           # each commit adds pages, then a meta page counting them
        try:
            db = HintsDB(str(tmp_path), "ratelimit")
            for i in range(1500):
                db.put(f"k{i}", b"v" * 300)
        finally:
            os._exit(0)

    def check_while_growing():
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert data_file_damage(path) is None
    checkers = [child_started(check_while_growing) for _ in range(4)]
    statuses = [os.waitpid(pid, 0)[1] for pid in checkers]
    os.waitpid(writer, 0)
    assert statuses == [0] * 4


def test_session_threads_share_one_environment(tmp_path):
    """smtp_receiver_threads: threads opening a hints file at the same moment get the
    one environment (py-lmdb refuses a second open of the same files), and their
    read-modify-write updates are not lost."""
    import threading

    from pymta.hints.db import get_env
    log = RecordingLog()
    start = threading.Barrier(8)
    envs: list[object] = []

    def work() -> None:
        db = HintsDB(str(tmp_path), "ratelimit", log)
        start.wait(5)
        envs.append(db.env())
        for _ in range(25):
            db.update("count", lambda old: (None, str(int(old or b"0") + 1).encode()), None)
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(map(id, envs))) == 1 and envs[0] is get_env(str(tmp_path / "db" /
                                                                     "ratelimit"))
    assert HintsDB(str(tmp_path), "ratelimit").get("count") == b"200"
    assert log.text() == ""
