"""sender_unqualified_hosts / recipient_unqualified_hosts over SMTP, and which refused
MAIL, RCPT and DATA commands count towards smtp_max_synprot_errors: the replies of
-bh sessions against what exim4 4.96 answered to the same input with the same
configuration (tests/data/unqualified)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "unqualified"
SESSIONS = json.loads((DATA / "exim4_bh.json").read_text())


def _replies(text: str) -> list[str]:
    # the EHLO keyword lists differ between the two programs; the rest must not
    return [line for line in text.splitlines() if line[:3].isdigit()
            and not line.startswith(("220", "250-", "250 HELP"))]


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_replies_as_exim(tmp_path, name):
    session = SESSIONS[name]
    conf = tmp_path / "configure"
    conf.write_text(f"spool_directory = {tmp_path}/spool\n" + "\n".join(
        line for line in (DATA / "exim.conf").read_text().splitlines()
        if not line.startswith(("exim_user", "spool_directory", "log_file_path"))) + "\n")
    out = run_pymta(["-bh", session["ip"]], conf, input=session["input"])
    assert _replies(out.stdout) == _replies("\n".join(session["replies"])), out.stdout
