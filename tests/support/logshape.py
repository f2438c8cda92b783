"""Log lines reduced to their shape, to compare pymta's delivery lines with Exim's.

What differs from one run to the next is masked: the time stamp (keeping whether it has
milliseconds), the ``[pid]``, message ids, port numbers after ``[ip]``, the values of
``S=`` (the two MTAs add different Received: headers) and of ``QT=``/``DT=`` (keeping
whether they are whole seconds or have milliseconds).  Field names, their order and
everything else stay as written.
"""
from __future__ import annotations

import re

_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3})?")
_PID = re.compile(r"^(TIME(?:\.mmm)?) \[\d+\]")
_MSGID = re.compile(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b")
_PORT = re.compile(r"\]:\d+")
_SIZE = re.compile(r" S=\d+")
_MS = re.compile(r" (QT|DT)=\d+\.\d{3}s")
_WHOLE = re.compile(r" (QT|DT)=(?:\d+[dhm])*\d+s")


def shape(line: str) -> str:
    """``line`` with its run-dependent values masked."""
    line = _STAMP.sub(lambda m: "TIME.mmm" if m.group(1) else "TIME", line)
    line = _PID.sub(r"\1 [PID]", line)
    line = _MSGID.sub("MSGID", line)
    line = _PORT.sub("]:PORT", line)
    line = _SIZE.sub(" S=N", line)
    line = _MS.sub(r" \1=N.NNNs", line)
    return _WHOLE.sub(r" \1=Ns", line)


def delivery_shapes(log: str, first_only: bool = False) -> list[str]:
    """The shapes of the ``=>``, ``->``, ``**`` and ``Completed`` lines of a main log
    (``first_only``: of the first message that arrived, not of its bounce)."""
    first = re.search(r" (\S+) <= ", log)
    out = []
    for line in log.splitlines():
        if first_only and first and f" {first.group(1)} " not in line:
            continue
        s = shape(line)
        if re.search(r"MSGID (=>|->|\*\*|Completed)", s):
            out.append(s)
    return out
