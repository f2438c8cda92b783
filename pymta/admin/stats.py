"""``pymta-stats [--json] [-t N] [mainlog...]``: a summary of main log files in the
manner of eximstats.

It reads Exim-format main logs (pymta's own, plain or gzip-compressed; standard input
when no file is named) and reports the grand totals of messages received and delivered
(messages, bytes, hosts; how many messages were delayed or had a failed address),
deliveries per transport, the top sending hosts, destination hosts and destination
domains by count and by volume, the delivery errors and the rejections by reason.
``--json`` prints the same numbers as one JSON object.

Counting follows eximstats: a delivery is one ``=>`` line (the ``->`` lines of further
addresses in the same delivery count as addresses, not deliveries), its volume is the
message's size from ``S=`` on its ``<=`` line (on the delivery line only when the
arrival is not in the logs read), and a message received or delivered without an
``H=`` host is from or to the host "local".
"""
from __future__ import annotations

import gzip
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Iterable, Iterator

import click

_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)(?: [-+]\d{4})?"
    r"(?: \[\d+\])? (?P<rest>.*)$")
_MSG = re.compile(r"^(?P<id>[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2,4}) "
                  r"(?P<flag><=|=>|->|\*>|==|\*\*) (?P<rest>.*)$")
_SIZE = re.compile(r"(?:^| )S=(\d+)")
_HOST = re.compile(r"(?:^| )H=(\S+)(?: (\([^)]*\)))?(?: (\[[^\]]+\]))?")
_TRANSPORT = re.compile(r"(?:^| )T=(\S+)")
_REJECT = re.compile(r"(?:^| )rejected (?P<what>.*)$")
_REJECT_IP = re.compile(r"(?:^| )H=(?:\S+ )?(?:\([^)]*\) )?(\[[^\]]+\])")


@dataclass
class Tally:
    """Messages and bytes for one name (a host, a transport, a domain)."""

    messages: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.messages += 1
        self.bytes += size


@dataclass
class Stats:
    """Everything counted from the logs."""

    first: str = ""
    last: str = ""
    received: int = 0
    received_bytes: int = 0
    delivered: int = 0
    delivered_addresses: int = 0
    delivered_bytes: int = 0
    delayed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    received_ids: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)
    sending_hosts: dict[str, Tally] = field(default_factory=dict)
    destination_hosts: dict[str, Tally] = field(default_factory=dict)
    destination_domains: dict[str, Tally] = field(default_factory=dict)
    transports: dict[str, Tally] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    rejected_ips: Counter[str] = field(default_factory=Counter)


def _tally(table: dict[str, Tally], name: str, size: int) -> None:
    table.setdefault(name, Tally()).add(size)


def _host_name(rest: str) -> str | None:
    """The host as eximstats names it: the H= name, ``(helo)`` when there is no name."""
    m = _HOST.search(rest)
    return None if m is None else m.group(1)


def reject_reason(what: str) -> str:
    """``Rejected RCPT: relay not permitted`` from the text after ``rejected``."""
    m = re.match(r"^(RCPT|MAIL|VRFY|EXPN|ETRN)\b[^:]*: (.*)$", what)
    if m:
        return f"Rejected {m.group(1)}: {m.group(2)}"
    m = re.match(r"^(?:after (\S+)|connection in \"\w+\" ACL|(EHLO or HELO) \S*)"
                 r"(?:: (.*))?$", what)
    if m:
        stage = m.group(1) or m.group(2) or "connection"
        return f"Rejected {stage}: {m.group(3) or ''}".rstrip(": ").rstrip()
    return what


def parse(lines: Iterable[str], stats: Stats | None = None) -> Stats:
    """Count what ``lines`` (main log lines) say."""
    st = stats or Stats()
    for raw in lines:
        m = _LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        stamp, rest = m.group("time"), m.group("rest")
        if not st.first or stamp < st.first:
            st.first = stamp
        st.last = max(st.last, stamp)
        mm = _MSG.match(rest)
        if mm is None:
            r = _REJECT.search(rest)
            if r:
                st.rejections[reject_reason(r.group("what"))] += 1
                ip = _REJECT_IP.search(rest)
                if ip:
                    st.rejected_ips[ip.group(1)] += 1
            continue
        msgid, flag, body = mm.group("id"), mm.group("flag"), mm.group("rest")
        size_m = _SIZE.search(body)
        if flag == "<=":
            size = int(size_m.group(1)) if size_m else 0
            st.received += 1
            st.received_bytes += size
            st.sizes[msgid] = size
            st.received_ids.add(msgid)
            # a message submitted locally comes from the host "local", as in eximstats
            _tally(st.sending_hosts, _host_name(body) or "local", size)
        elif flag == "=>":
            # the message's size as received, as eximstats counts; S= on the delivery
            # line only when the arrival is not in these logs
            size = st.sizes.get(msgid, int(size_m.group(1)) if size_m else 0)
            st.delivered += 1
            st.delivered_addresses += 1
            st.delivered_bytes += size
            _tally(st.destination_hosts, _host_name(body) or "local", size)
            address = body.split(" ", 1)[0]
            am = re.search(r"<([^>]*)>", body.split(" R=", 1)[0])
            address = am.group(1) if am else address
            if "@" in address:
                _tally(st.destination_domains, address.rsplit("@", 1)[1].lower(), size)
            t = _TRANSPORT.search(body)
            if t:
                _tally(st.transports, t.group(1), size)
        elif flag == "->":
            st.delivered_addresses += 1
        elif flag == "==":
            st.delayed.add(msgid)
        elif flag == "**":
            st.failed.add(msgid)
            st.errors[body] += 1
    return st


def open_log(path: str) -> Iterator[str]:
    """The lines of a log file, gunzipped when it is compressed ("-": stdin)."""
    stream: IO[bytes]
    if path == "-":
        stream = sys.stdin.buffer
    else:
        stream = open(path, "rb")
    try:
        if stream.peek(2)[:2] == b"\x1f\x8b" if hasattr(stream, "peek") else False:
            stream = gzip.GzipFile(fileobj=stream)   # type: ignore[assignment]
        for line in stream:
            yield line.decode("utf-8", "replace")
    finally:
        if path != "-":
            stream.close()


def _top(table: dict[str, Tally], n: int, by: str) -> list[tuple[str, Tally]]:
    key = (lambda kv: (-kv[1].messages, -kv[1].bytes, kv[0])) if by == "count" else \
        (lambda kv: (-kv[1].bytes, -kv[1].messages, kv[0]))
    return sorted(table.items(), key=key)[:n]


def as_dict(st: Stats, top: int) -> dict[str, object]:
    """The report as plain data (what ``--json`` prints)."""
    def tallies(table: dict[str, Tally], by: str) -> list[dict[str, object]]:
        return [{"name": k, "messages": v.messages, "bytes": v.bytes}
                for k, v in _top(table, top, by)]
    delayed = len(st.delayed & st.received_ids)
    failed = len(st.failed & st.received_ids)
    return {
        "from": st.first, "to": st.last,
        "received": {"messages": st.received, "bytes": st.received_bytes,
                     "hosts": len(st.sending_hosts), "delayed": delayed, "failed": failed},
        "delivered": {"messages": st.delivered, "addresses": st.delivered_addresses,
                      "bytes": st.delivered_bytes, "hosts": len(st.destination_hosts)},
        "rejects": {"messages": sum(st.rejections.values()),
                    "hosts": len(st.rejected_ips)},
        "transports": {k: {"messages": v.messages, "bytes": v.bytes}
                       for k, v in sorted(st.transports.items())},
        "sending_hosts_by_count": tallies(st.sending_hosts, "count"),
        "sending_hosts_by_volume": tallies(st.sending_hosts, "volume"),
        "destination_hosts_by_count": tallies(st.destination_hosts, "count"),
        "destination_hosts_by_volume": tallies(st.destination_hosts, "volume"),
        "destination_domains_by_count": tallies(st.destination_domains, "count"),
        "destination_domains_by_volume": tallies(st.destination_domains, "volume"),
        "errors": [{"count": c, "error": e} for e, c in st.errors.most_common()],
        "rejections": [{"count": c, "reason": r} for r, c in st.rejections.most_common(top)],
        "rejected_ips": [{"count": c, "ip": ip} for ip, c in st.rejected_ips.most_common(top)],
    }


def _pct(part: int, whole: int) -> str:
    return f"{part:5d} {100.0 * part / whole if whole else 0.0:4.1f}%"


def _heading(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def text_report(st: Stats, top: int) -> str:
    """The report in eximstats's text layout."""
    d = as_dict(st, top)
    rec, dlv, rej = d["received"], d["delivered"], d["rejects"]
    assert isinstance(rec, dict) and isinstance(dlv, dict) and isinstance(rej, dict)
    out = ["", f"pymta statistics from {st.first} to {st.last}"]
    out += _heading("Grand total summary")
    out += [" " * 66 + "At least one address",
            f"  {'TOTAL':<14}{'Volume':>12}{'Messages':>11}{'Addresses':>10}{'Hosts':>10}"
            f"{'Delayed':>13}{'Failed':>13}",
            f"  {'Received':<14}{rec['bytes']:>12}{rec['messages']:>11}{'':>10}"
            f"{rec['hosts']:>10}  {_pct(rec['delayed'], rec['messages'])}  "
            f"{_pct(rec['failed'], rec['messages'])}",
            f"  {'Delivered':<14}{dlv['bytes']:>12}{dlv['messages']:>11}"
            f"{dlv['addresses']:>10}{dlv['hosts']:>10}",
            f"  {'Rejects':<14}{'':>12}{rej['messages']:>11}{'':>10}{rej['hosts']:>10}"]
    out += _heading("Deliveries by transport")
    out.append(f"  {'':<20}{'Volume':>10}{'Messages':>12}")
    for name, t in sorted(st.transports.items()):
        out.append(f"  {name:<20}{t.bytes:>10}{t.messages:>12}")
    for key, title in (("sending_hosts", "sending hosts"),
                       ("destination_hosts", "host destinations"),
                       ("destination_domains", "domain destinations")):
        for by, word in (("count", "message count"), ("volume", "volume")):
            rows = d[f"{key}_by_{by}"]
            assert isinstance(rows, list)
            if not rows:
                continue
            out += _heading(f"Top {top} {title} by {word}")
            out.append(f"  {'Messages':>8} {'Bytes':>10}   {title[0].upper() + title[1:-1]}")
            out += [f"  {r['messages']:>8} {r['bytes']:>10}   {r['name']}" for r in rows]
    if st.rejections:
        out += _heading(f"Top {top} mail rejection reasons by message count")
        out.append("  Messages   Mail rejection reason")
        out += [f"  {c:>8}   {r}" for r, c in st.rejections.most_common(top)]
    if st.errors:
        out += _heading("List of errors")
        out += [f"  {c:>4} {e}" for e, c in st.errors.most_common()]
    return "\n".join(out) + "\n\n"


@click.command(context_settings={"help_option_names": ["--help", "-h"]})
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("-t", "top", type=click.IntRange(min=0), default=50, show_default=True,
              help="how many entries the top lists show")
@click.argument("logs", nargs=-1)
def main(as_json: bool, top: int, logs: tuple[str, ...]) -> None:
    """Statistics from pymta (and Exim) main log files."""
    st = Stats()
    for path in logs or ("-",):
        try:
            parse(open_log(path), st)
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    if as_json:
        sys.stdout.write(json.dumps(as_dict(st, top), indent=2) + "\n")
    else:
        sys.stdout.write(text_report(st, top))
