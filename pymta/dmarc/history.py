"""The DMARC history file (dmarc_history_file): one block per checked message, in the
format opendmarc's ``opendmarc-import`` reads (the same lines Exim writes), from which
the aggregate reports are made."""
from __future__ import annotations

import os

from pymta.dmarc.evaluate import ALIGNMENT_FAIL, ALIGNMENT_PASS, DmarcResult

# Authentication-Results result codes (opendmarc's ARES_RESULT_*).
ARES = {"pass": 0, "softfail": 2, "neutral": 3, "temperror": 4, "permerror": 5,
        "none": 6, "fail": 7, "unknown": 11}


def _dkim_code(status: str) -> int:
    return {"pass": ARES["pass"], "fail": ARES["fail"], "none": ARES["none"],
            "invalid": ARES["permerror"]}.get(status, ARES["unknown"])


def _tag(value: str | None) -> int:
    """A one-letter tag value as the file holds it (its character code; 0 if unset)."""
    return ord(value[0]) if value else 0


def history_entry(result: DmarcResult, msgid: str, reporter: str, received: int,
                  ipaddr: str, mfrom: str) -> str:
    """The lines for one message (only messages whose domain has a record are logged)."""
    record = result.record
    assert record is not None
    lines = [f"job {msgid}", f"reporter {reporter}", f"received {received}",
             f"ipaddr {ipaddr}", f"from {result.header_from}", f"mfrom {mfrom}"]
    if result.spf is not None:
        lines.append(f"spf {ARES.get(result.spf.result, ARES['unknown'])}")
    lines += [f"dkim {d.domain} {d.selector} {_dkim_code(d.status)}" for d in result.dkim]
    lines += [f"pdomain {result.used_domain}", f"policy {result.policy_code}"]
    lines += [f"rua {uri}" for uri in record.rua] or ["rua -"]
    lines += [f"pct {record.pct}",
              f"adkim {_tag(record.adkim) if record.explicit_a[0] else 0}",
              f"aspf {_tag(record.aspf) if record.explicit_a[1] else 0}",
              f"p {_tag(record.p) if record.explicit_p else 0}",
              f"sp {_tag(record.sp) if record.explicit_sp else 0}",
              f"align_dkim {ALIGNMENT_PASS if result.dkim_aligned else ALIGNMENT_FAIL}",
              f"align_spf {ALIGNMENT_PASS if result.spf_aligned else ALIGNMENT_FAIL}",
              f"action {result.action}"]
    return "\n".join(lines) + "\n"


def append_history(path: str, entry: str) -> None:
    """Append one entry with a single write (several processes share the file)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, entry.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)
