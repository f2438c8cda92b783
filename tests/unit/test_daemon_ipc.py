"""Notifications and the worker protocol."""
import os
import socket

from pymta.daemon import ipc
from pymta.daemon.stopflag import StopFlag


def test_notifications_round_trip_and_drain():
    master, child = ipc.notify_pair()
    n = ipc.Notifier(child)
    n.message("1abcde-000000-AA")
    n.busy()
    n.idle()
    n.send("Q", "1abcde-000000-AB")
    got = ipc.read_notifications(master)
    pid = str(os.getpid())
    assert got == [("M", "1abcde-000000-AA"), ("B", pid), ("I", pid), ("Q", "1abcde-000000-AB")]
    assert ipc.read_notifications(master) == []


def test_full_buffer_loses_notification_without_blocking():
    master, child = ipc.notify_pair()
    child.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    n = ipc.Notifier(child)
    results = [n.send("M", "x" * 100) for _ in range(5000)]
    assert results[0] is True and False in results   # never blocks; later ones dropped


def test_new_message_waits_for_room_instead_of_being_dropped():
    import threading
    import time
    master, child = ipc.notify_pair()
    child.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    n = ipc.Notifier(child)
    while n.send("Q", "x" * 100):               # fill the buffer
        pass
    got: list = []
    drainer = threading.Thread(target=lambda: (time.sleep(0.05),
                                               got.extend(ipc.read_notifications(master))))
    drainer.start()
    n.message("1abcde-000000-AC")              # waits until the master has read
    drainer.join()
    got.extend(ipc.read_notifications(master))
    assert ("M", "1abcde-000000-AC") in got


def test_worker_delivers_ids_and_reports_done():
    from pymta.daemon.worker import worker_main
    master_end, worker_end = ipc.worker_pair()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            master_end.close()

            def deliver(config, msgid, log, **kw):
                os.write(w, f"{msgid}:{sorted(kw)};".encode())
                if msgid == "boom":
                    raise RuntimeError("delivery bug")

            class Log:
                def panic(self, text):
                    os.write(w, b"panic;")
            os._exit(worker_main(worker_end, None, Log(), deliver))
        finally:
            os._exit(9)
    worker_end.close()
    os.close(w)
    master_end.sendall(b"id1\nboom\nid2 forced\nid3 forced thaw\n")
    f = master_end.makefile("rb")
    assert [f.readline() for _ in range(4)] == [b"D id1\n", b"D boom\n", b"D id2\n", b"D id3\n"]
    f.close()
    master_end.close()                      # master gone: the worker ends
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    log = os.read(r, 4096).decode()
    assert log == ("id1:['queue'];boom:['queue'];panic;id2:['forced', 'queue'];"
                   "id3:['forced', 'manual', 'queue'];")


def test_stop_flag():
    f = StopFlag()
    assert not f.is_set() and not f
    f.set()
    assert f.is_set() and f
