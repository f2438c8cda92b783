"""SpamAssassin's spamd: choosing among the servers of ``spamd_address`` (parsed in
:mod:`pymta.acl.scanconfig`) and the protocol (spec 45.2, 45.3).

Servers are tried by priority (``pri=``, higher first), randomly within a priority with
the bias of ``weight=``, leaving out those outside their ``time=`` window; a server
that refuses the connection is tried once more after ``retry=``; ``tmo=`` limits the
whole exchange.  ``variant=rspamd`` (Rspamd's protocol) is refused: pymta speaks only
spamd's.

The exchange is a ``REPORT SPAMC/1.2`` request with the user name and the .eml file;
spamd answers with the score, the threshold and its report.
"""
from __future__ import annotations

import random
import re
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from pymta.acl.scanconfig import SpamdServer
from pymta.acl.scanconn import ScanDefer, connect, read_answer, send_all, send_file

#: The most of spamd's answer that is read (Exim's buffer).
ANSWER_LIMIT = 32600
#: The longest $spam_bar (Exim's loop lets one more than its 50 through).
MAX_BAR = 51


class ConnectFailed(ScanDefer):
    """A spamd server could not be reached (the next one is tried)."""


@dataclass(frozen=True)
class SpamdAnswer:
    """What spamd said: the score, the user's threshold and the report text."""

    score: float
    threshold: float
    report: str


def server_order(servers: list[SpamdServer], second_of_day: int,
                 rng: random.Random | None = None) -> Iterator[SpamdServer]:
    """The order to try the servers in: highest priority first, and within a priority
    a random choice weighted by ``weight``; servers outside their time window and those
    of weight 0 are left out."""
    pick = rng or random.Random()
    left = [s for s in servers if s.in_window(second_of_day) and s.weight > 0]
    while left:
        top = max(s.pri for s in left)
        group = [s for s in left if s.pri == top]
        chosen = pick.choices(group, weights=[s.weight for s in group])[0]
        left.remove(chosen)
        yield chosen


def _connect(server: SpamdServer, deadline: float,
             sleep: Callable[[float], None]) -> tuple[socket.socket, str]:
    try:
        return connect(server.endpoint, deadline)
    except ScanDefer:
        if server.retry <= 0:
            raise
    sleep(min(server.retry, max(0.0, deadline - time.monotonic())))
    return connect(server.endpoint, deadline)


def connect_failure(server: SpamdServer, reason: str) -> str:
    """The log text for a server that could not be reached."""
    ep = server.endpoint
    if ep.path:
        return f"spamd: unable to connect to UNIX socket ({ep.path}): {reason}"
    return f"spamd: failed to connect to any address for {ep.host}: {reason}"


def query(server: SpamdServer, user: str, mbox: tuple[str, int],
          connected: Callable[[str], None],
          sleep: Callable[[float], None] = time.sleep) -> SpamdAnswer:
    """Ask one server about the .eml file ``mbox`` (path, size) for ``user``.

    A failure to connect raises :class:`ConnectFailed` (the next server may be tried);
    any failure after that is a ScanDefer with Exim's log text."""
    deadline = time.monotonic() + server.tmo
    try:
        sock, address = _connect(server, deadline, sleep)
    except ScanDefer as exc:
        raise ConnectFailed(connect_failure(server, str(exc))) from exc
    connected(address)
    label = f"spamd {address}"
    with sock:
        path, size = mbox
        request = (f"REPORT SPAMC/1.2\r\nUser: {user}\r\n"
                   f"Content-length: {size}\r\n\r\n").encode("utf-8", "surrogateescape")
        try:
            send_all(sock, request, deadline)
            send_file(sock, path, deadline)
        except ScanDefer as exc:
            raise ScanDefer(f"{label} send failed: {exc}") from exc
        try:
            sock.shutdown(socket.SHUT_WR)       # spamd reads until the half-close
        except OSError:
            pass                    # the peer has closed already: read what it said
        try:
            data = read_answer(sock, deadline, ANSWER_LIMIT)
        except ScanDefer as exc:
            reason = str(exc).rpartition("(")[2].rstrip(")")
            raise ScanDefer(f"error reading from {label}, socket: {reason}") from exc
    answer = parse_answer(data)
    if answer is None:
        raise ScanDefer(f"cannot parse {label} output")
    return answer


_STATUS = re.compile(rb"SPAMD/[^ \r\n]{1,7} 0 EX_OK\r\n")
_SPAM_HEADER = re.compile(rb"Spam: *\S+ *; *(-?[0-9.]+) */ *(-?[0-9.]+)\r\n")
_SCORE_LINE = re.compile(rb"(-?[0-9.]+)/(-?[0-9.]+)\r\n")


def parse_answer(data: bytes) -> SpamdAnswer | None:
    """Score, threshold and report from spamd's answer to REPORT (None: malformed).

    spamd puts the score in a ``Spam:`` header; the oldest versions wrote it as the
    first line of the body instead.  Both are read."""
    m = _STATUS.match(data)
    if not m:
        return None
    head_end = data.find(b"\r\n\r\n", m.start())
    if head_end < 0:
        return None
    head = data[m.end():head_end + 2]
    body = data[head_end + 4:]
    try:
        lines = re.findall(rb"[^\r\n]*\r\n", head)
        for line in lines:
            h = _SPAM_HEADER.fullmatch(line)
            if h:
                return SpamdAnswer(float(h.group(1)), float(h.group(2)), _report(body))
        if lines and lines[0].lower().startswith(b"content-length:"):
            s = _SCORE_LINE.match(body)
            if s:
                return SpamdAnswer(float(s.group(1)), float(s.group(2)),
                                   _report(body[s.end():]))
    except ValueError:
        return None
    return None


def _report(body: bytes) -> str:
    """The report as Exim keeps it: no CRs, a space after each newline (so it can be
    put in a header as is), trailing white space and control characters cut off."""
    text = body.decode("utf-8", "surrogateescape").replace("\r", "")
    text = text.replace("\n", "\n ")
    return text.rstrip("".join(chr(c) for c in range(33)))


def spam_variables(answer: SpamdAnswer) -> dict[str, str]:
    """$spam_score, $spam_score_int, $spam_bar, $spam_report and $spam_action."""
    score = answer.score
    whole = abs(int(score))
    bar = ("+" if score > 0 else "-") * min(whole, MAX_BAR) if whole else "/"
    return {
        "spam_score": f"{score:.1f}",
        "spam_score_int": str(int(score * 10)),
        "spam_bar": bar,
        "spam_report": answer.report,
        "spam_action": "reject" if score >= answer.threshold else "no action",
    }
