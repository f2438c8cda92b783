"""Message locks: an fcntl write lock on the -D file, exclusive across processes."""
import os

from pymta.spool import files
from pymta.spool.lock import is_locked, lock_message
from pymta.spool.model import SpoolMessage

MID = "1xUsgJ-0001b3-13"


def spool_one(tmp_path) -> str:
    spool = str(tmp_path)
    m = SpoolMessage(id=MID, originator_login="u", originator_uid=1, originator_gid=1,
                     sender="a@b", received_time=1795296695)
    files.write_spool(spool, m, b"body\n")
    return spool


def child_try_lock(spool: str) -> bool:
    """Fork; the child reports whether it could lock the message."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        got = lock_message(spool, MID)
        os.write(w, b"1" if got else b"0")
        os._exit(0)
    os.close(w)
    answer = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    return answer == b"1"


def test_second_process_cannot_lock(tmp_path):
    spool = spool_one(tmp_path)
    lock = lock_message(spool, MID)
    assert lock is not None and lock.held
    assert child_try_lock(spool) is False
    lock.release()
    assert not lock.held
    assert child_try_lock(spool) is True


def test_lock_held_by_child_is_seen(tmp_path):
    spool = spool_one(tmp_path)
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        lk = lock_message(spool, MID)
        os.write(w, b"1" if lk else b"0")
        os.read(r2, 1)                      # hold until the parent has checked
        os._exit(0)
    assert os.read(r, 1) == b"1"
    assert lock_message(spool, MID) is None
    assert is_locked(spool, MID)
    os.write(w2, b"x")
    os.waitpid(pid, 0)
    with lock_message(spool, MID) as lk:       # released when the holder exited
        assert lk is not None
        with lk.open_body() as f:
            assert f.read() == b"body\n"
    assert child_try_lock(spool) is True


def test_closing_another_descriptor_keeps_the_lock(tmp_path):
    spool = spool_one(tmp_path)
    lock = lock_message(spool, MID)
    with files.open_data(spool, MID) as f:      # classic fcntl locks would die here
        f.read()
    assert child_try_lock(spool) is False
    lock.release()


def test_missing_message_gives_none(tmp_path):
    assert lock_message(str(tmp_path), MID) is None
