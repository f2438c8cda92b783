"""Record Exim 4.96's delivery log lines for tests/integration/test_log_delivery.py.

Run as root with exim4 installed: ``python -m tests.data.logdlv.record_exim`` from the
repository.  For each selector in tests/integration/test_log_delivery.py it starts a
real exim4 daemon with the same configuration pymta is tested with, sends the same
message and writes the masked =>, -> and Completed lines (** too, for FAILURES) to
``<name>.txt`` here.
"""
from __future__ import annotations

import smtplib
import tempfile
import time
from pathlib import Path

from tests.integration.test_log_delivery import (
    ALIASES,
    CONFIG,
    FAILING_RECIPIENTS,
    FAILURES,
    MESSAGE,
    RECIPIENTS,
    SELECTORS,
    SENDER,
    USERS,
)
from tests.support.exim import EximDaemon
from tests.support.logshape import delivery_shapes
from tests.support.sink import SmtpSink

HERE = Path(__file__).parent


def record(name: str, selector: str, failing: bool = False) -> None:
    sink = SmtpSink(mode="rcpt", code=550, text="no such user") if failing else SmtpSink()
    with sink, tempfile.TemporaryDirectory(prefix="logdlv-") as tmp:
        d = Path(tmp)
        (d / "mail").mkdir()
        (d / "mail").chmod(0o777)
        (d / "aliases").write_text(ALIASES)
        (d / "users").write_text(USERS)
        text = (CONFIG.replace("SELECTOR", selector).replace("SINK_PORT", str(sink.port))
                .replace("SPOOL", "@SPOOL@").replace("DIR", "@DIR@")
                # Exim wants a user for a local delivery that no router gives one
                .replace("  file = @DIR@/mail/$local_part_data\n",
                         "  file = @DIR@/mail/$local_part_data\n  user = Debian-exim\n"))
        ex = EximDaemon(text, d).start()
        try:
            with smtplib.SMTP("127.0.0.1", ex.port) as s:
                s.ehlo("client.example")
                s.sendmail(SENDER, FAILING_RECIPIENTS if failing else RECIPIENTS, MESSAGE)
            deadline = time.monotonic() + 15
            done = "Frozen" if failing else "Completed"
            while done not in ex.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            shapes = delivery_shapes(ex.log(), first_only=failing)
        finally:
            ex.stop()
    (HERE / f"{name}.txt").write_text("".join(s + "\n" for s in shapes))
    print(name, *shapes, sep="\n  ")


if __name__ == "__main__":
    for name, selector in SELECTORS.items():
        record(name, selector)
    for name, selector in FAILURES.items():
        record(name, selector, failing=True)
