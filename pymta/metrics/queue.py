"""The gauges the master computes at scrape time: the queue and its children.

The queue is read from the spool, cheaply: the names in input/ (and its split
subdirectories), no file opened.  The oldest message's age comes from its id, which
encodes its arrival time (a -H file's mtime changes with every delivery attempt).
The result is kept a few seconds, so frequent scrapes of a long queue cost little.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pymta.spool.files import input_dirs
from pymta.spool.ids import id_time, id_time_usec, is_message_id

#: seconds a queue reading is reused
CACHE_SECONDS = 5.0
PROCESS_KINDS = ("receiver", "worker", "queuerunner")


def read_queue(spool_dir: str) -> tuple[int, float | None]:
    """(messages in the default queue, arrival time of the oldest or None)."""
    count, oldest = 0, None
    for directory in input_dirs(spool_dir):
        try:
            with os.scandir(directory) as entries:
                for e in entries:
                    name = e.name
                    if not name.endswith("-H") or not is_message_id(name[:-2]):
                        continue
                    count += 1
                    arrived = id_time(name) + id_time_usec(name) / 1e6
                    if oldest is None or arrived < oldest:
                        oldest = arrived
        except FileNotFoundError:
            continue
    return count, oldest


class DaemonCollector(Collector):
    """Gauges of the queue and of the master's children, computed when scraped."""

    def __init__(self, spool_dir: str, processes: Callable[[], dict[str, int]]):
        self.spool_dir = spool_dir
        self.processes = processes
        self._cached: tuple[float, int, float | None] | None = None

    def _queue(self) -> tuple[int, float | None]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= CACHE_SECONDS:
            self._cached = (now, *read_queue(self.spool_dir))
        return self._cached[1], self._cached[2]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count, oldest = self._queue()
        yield GaugeMetricFamily("pymta_queue_messages",
                                "Messages on the (default) queue: -H files in input/",
                                value=count)
        yield GaugeMetricFamily("pymta_queue_oldest_message_age_seconds",
                                "Age of the oldest message on the queue (0 when empty)",
                                value=max(0.0, time.time() - oldest) if oldest else 0.0)
        procs = GaugeMetricFamily("pymta_processes", "The daemon's child processes by "
                                  "kind", labels=["kind"])
        counts = self.processes()
        for kind in PROCESS_KINDS:
            procs.add_metric([kind], counts.get(kind, 0))
        yield procs
