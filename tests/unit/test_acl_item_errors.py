"""Errors in the arguments of ACL items, in a MAIL ACL: the texts and outcomes Exim 4.96
gave for the same items (tests/data/acl_errors/mail_acl.exim.txt, from exim4 -bh):
a 451 with the reason in the reject line, a skipped warn statement, or a paniclog line
and the ACL going on."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pymta.acl import run_acl
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from tests.support.recording_log import RecordingLog

DATA = Path(__file__).resolve().parent.parent / "data" / "acl_errors" / "mail_acl.exim.txt"
CASES = [tuple(line.split("\t", 1)) for line in DATA.read_text().splitlines()]
PREFIX = "H=(x) [1.2.3.4] "
REJECTED = PREFIX + "temporarily rejected MAIL <a@b.c>: "


@pytest.mark.parametrize("item,exim", CASES, ids=[c[0] for c in CASES])
def test_mail_acl_item_matches_exim(tmp_path, item, exim):
    path = tmp_path / "configure"
    path.write_text(f"primary_hostname = test.example\nspool_directory = {tmp_path}\n"
                    f"begin acl\nacl_m:\n  warn {item}\n  accept\n")
    cfg = load_config(str(path))
    log = RecordingLog()
    ctx = ExpandContext(config=cfg, variables={"sender_host_address": "1.2.3.4",
                                               "sender_address": "a@b.c"})
    res = run_acl(cfg, "acl_m", "mail", ctx, SimpleNamespace(log=log, log_prefix=PREFIX[:-1]))
    if exim.startswith(REJECTED):
        assert (res.verdict, res.log_message) == ("defer", exim[len(REJECTED):])
        assert not (res.error and res.paniclog)   # not a configuration error: no paniclog
    else:
        assert res.verdict == "accept"
        assert [text for _, text in log.lines] == ([exim] if exim else [])
