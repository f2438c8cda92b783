"""pymta/metrics pieces that need no daemon: the metrics_listen syntax, folding an ended
process's count files, the queue reading and the HTTP answers."""
from __future__ import annotations

import os
import selectors
import socket
import time

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from pymta.metrics.endpoint import MetricsAddressError, MetricsEndpoint, parse_metrics_listen
from pymta.metrics.multiproc import Folder
from pymta.metrics.queue import read_queue
from pymta.spool.ids import id_time, new_message_id


def test_metrics_listen_syntax():
    assert parse_metrics_listen("") is None
    assert parse_metrics_listen("  ") is None
    assert parse_metrics_listen("127.0.0.1:9325") == ("127.0.0.1", 9325)
    assert parse_metrics_listen("127.0.0.2:80") == ("127.0.0.2", 80)
    assert parse_metrics_listen("[::1]:9325") == ("::1", 9325)
    for bad, why in (("0.0.0.0:9325", "not a loopback"), ("192.0.2.1:9325", "not a loopback"),
                     ("[2001:db8::1]:1", "not a loopback"), ("localhost:9325", "not an IP"),
                     ("127.0.0.1", "not address:port"), ("127.0.0.1:0", "not address:port"),
                     ("127.0.0.1:70000", "not address:port")):
        with pytest.raises(MetricsAddressError, match=why):
            parse_metrics_listen(bad)


def _key(name: str, **labels: str) -> str:
    return mmap_key(name, name, list(labels), list(labels.values()), "help")


def _write(path: str, values: dict[str, float]) -> None:
    d = MmapedDict(path)
    for k, v in values.items():
        d.write_value(k, v, 0.0)
    d.close()


def test_fold_adds_ended_processes_and_removes_their_files(tmp_path):
    a, b = _key("x_total", t="smtp"), _key("x_total", t="local")
    _write(str(tmp_path / "counter_101.db"), {a: 2.0, b: 1.0})
    _write(str(tmp_path / "counter_102.db"), {a: 3.0})
    _write(str(tmp_path / "histogram_101.db"), {_key("h_bucket", le="1.0"): 4.0})
    folder = Folder(str(tmp_path))
    folder.fold(101)
    folder.fold(102)
    folder.fold(103)                        # no files: nothing to do
    assert sorted(os.listdir(tmp_path)) == ["counter_folded.db", "histogram_folded.db"]
    folded = {k: v for k, v, _t, _p in
              MmapedDict.read_all_values_from_file(str(tmp_path / "counter_folded.db"))}
    assert folded == {a: 5.0, b: 1.0}


def test_fold_orphans_keeps_live_processes(tmp_path):
    k = _key("x_total")
    _write(str(tmp_path / f"counter_{os.getpid()}.db"), {k: 1.0})     # alive
    dead = _dead_pid()
    _write(str(tmp_path / f"counter_{dead}.db"), {k: 2.0})
    Folder(str(tmp_path)).fold_orphans(keep=set())
    assert set(os.listdir(tmp_path)) == {"counter_folded.db", f"counter_{os.getpid()}.db"}


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_read_queue_counts_header_files_and_dates_the_oldest_by_its_id(tmp_path):
    assert read_queue(str(tmp_path)) == (0, None)
    top = tmp_path / "input"
    sub = top / "a"
    sub.mkdir(parents=True)
    old = new_message_id(int((time.time() - 3600) * 1e9))
    new = new_message_id()
    for d, msgid in ((top, old), (sub, new)):
        (d / f"{msgid}-H").write_bytes(b"")
        (d / f"{msgid}-D").write_bytes(b"")
    (top / "not-an-id-H").write_bytes(b"")
    count, oldest = read_queue(str(tmp_path))
    assert count == 2
    assert oldest is not None and int(oldest) == id_time(old)


@pytest.fixture
def endpoint(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ep = MetricsEndpoint(sock, str(tmp_path), str(tmp_path))
    sel = selectors.DefaultSelector()
    ep.start(sel, lambda: {"receiver": 2, "worker": 1}, lambda: set())
    _write(str(tmp_path / "counter_folded.db"),
           {_key("pymta_messages_received_total", protocol="esmtp"): 7.0})
    yield ep
    sel.close()
    sock.close()


def test_endpoint_answers(endpoint):
    ok = endpoint.response(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = ok.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    text = body.decode()
    assert 'pymta_messages_received_total{protocol="esmtp"} 7.0' in text
    assert 'pymta_processes{kind="receiver"} 2.0' in text
    assert 'pymta_processes{kind="queuerunner"} 0.0' in text
    assert "pymta_queue_messages 0.0" in text
    head_only = endpoint.response(b"HEAD /metrics?x=1 HTTP/1.1\r\n\r\n")
    assert head_only.endswith(b"\r\n\r\n") and head_only.startswith(b"HTTP/1.0 200")
    assert endpoint.response(b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 404")
    assert endpoint.response(b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 405")
    assert endpoint.response(b"\r\n\r\n").startswith(b"HTTP/1.0 400")


def test_a_torn_file_is_put_aside_not_fatal(tmp_path):
    k = _key("x_total")
    _write(str(tmp_path / "counter_201.db"), {k: 1.0})
    path = tmp_path / "counter_202.db"
    _write(str(path), {k: 1.0})
    data = bytearray(path.read_bytes())
    data[8:12] = (10_000).to_bytes(4, "little")        # a key length past the end
    path.write_bytes(bytes(data))
    folder = Folder(str(tmp_path))
    folder.fold(202)
    folder.fold(201)
    assert set(os.listdir(tmp_path)) == {"counter_folded.db", "counter_202.db.damaged"}


def test_a_file_a_child_has_just_created_does_not_fail_the_scrape(endpoint, tmp_path):
    # between a new child's open() and its sizing of the file, the file is empty; the
    # live process's file is skipped for that scrape (it failed with 500 before)
    (tmp_path / f"counter_{os.getpid()}.db").write_bytes(b"")
    ok = endpoint.response(b"GET /metrics HTTP/1.1\r\n\r\n")
    assert ok.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b'pymta_messages_received_total{protocol="esmtp"} 7.0' in ok
