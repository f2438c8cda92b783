"""Prometheus metrics of the daemon (the pymta extension ``metrics_listen``).

- :mod:`pymta.metrics.counters`: the metric families and the calls that count events
  (``received``, ``delivered``, ...), cheap no-ops unless the daemon enabled metrics.
- :mod:`pymta.metrics.multiproc`: the per-process files the counts live in
  (prometheus_client's multiprocess mode) and the master's folding of dead processes'
  files into one.
- :mod:`pymta.metrics.queue`: the queue gauges, read from the spool at scrape time.
- :mod:`pymta.metrics.endpoint`: the master's loopback HTTP endpoint.
"""
