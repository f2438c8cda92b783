"""Message ids: Exim 4.96 format, decoding, uniqueness within and across processes."""
import os

from pymta.spool import ids


def test_format_and_decode_known_exim_id():
    # ids written by Exim 4.96 with their -received_time_usec values
    assert ids.is_message_id("1xUsgJ-0001b3-13")
    assert ids.id_time("1xUsgJ-0001b3-13") == 1795296695
    assert ids.unbase62("0001b3") == 6141
    assert ids.id_time_usec("1xUsgJ-0001b3-13") == 325000      # .328560 in 1/200 s
    assert ids.id_time_usec("1xUsgF-0001Z2-1I") == 400000      # .402030


def test_new_id_encodes_time_pid_fraction(monkeypatch):
    # earlier tests in this process made ids with the real clock: forget them, and
    # restore the last tick afterwards (left at this 2026 time, later ids would wait for
    # it when the real clock is earlier)
    monkeypatch.setattr(ids, "_last_pid", None)
    monkeypatch.setattr(ids, "_last_tick", -1)
    now_ns = 1795296695_328560_000
    mid = ids.new_message_id(now_ns)
    assert mid.startswith("1xUsgJ-" + ids.base62(os.getpid(), 6) + "-")
    assert mid.endswith("-13")
    assert ids.is_message_id(mid)


def test_not_ids():
    for bad in ("", "1xUsgJ-0001b3-1", "1xUsgJ_0001b3-13", "1xUsgJ-0001b3-13-H", "../../etc"):
        assert not ids.is_message_id(bad)


def test_same_process_never_repeats():
    made = [ids.new_message_id() for _ in range(30)]
    assert len(set(made)) == 30
    assert made == sorted(made, key=lambda i: (ids.id_time(i), ids.id_time_usec(i)))


def test_unique_across_processes():
    r, w = os.pipe()
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            out = "\n".join(ids.new_message_id() for _ in range(25)) + "\n"
            os.write(w, out.encode())
            os._exit(0)
        children.append(pid)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    got = data.decode().split()
    assert len(got) == 100 and len(set(got)) == 100


def test_threads_of_one_process_never_share_an_id():
    """Session threads of one receiver (smtp_receiver_threads) have one pid: the tick
    rule must hold between them too."""
    import threading

    from pymta.spool.ids import new_message_id
    got: list[str] = []

    def make() -> None:
        for _ in range(30):
            got.append(new_message_id())
    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 120 and len(set(got)) == 120


def test_wait_survives_the_tick_ending_between_two_clock_readings(monkeypatch):
    # the clock reads inside the tick, then past it, on the next reading: the wait
    # must not compute a negative sleep from the second reading, 1 ms later (CI once hit this)
    tick = 1795296695_328560_000 // ids._TICK_NS
    readings = iter([(tick + 1) * ids._TICK_NS - 1, (tick + 1) * ids._TICK_NS + 1_000_000])
    slept: list[float] = []
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(readings, (tick + 2) * ids._TICK_NS))
    monkeypatch.setattr(ids.time, "sleep", lambda s: slept.append(s) or None)
    ids._wait_until_after(tick)
    assert all(s >= 0 for s in slept) and len(slept) == 1
