"""strict_acl_vars: an unset ACL variable is an unknown variable (Exim's error text with
"(strict_acl_vars is set)"), and a condition whose expansion fails rejects temporarily
with Exim's "failed to expand ACL string" log line, even in a warn statement.
Expected output recorded from exim4 4.96 (tests/data/strict_acl_vars/README)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pymta.config import load_config
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError
from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "strict_acl_vars"


def _conf(tmp_path: Path, name: str) -> Path:
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    conf = tmp_path / name
    conf.write_text((DATA / name).read_text().replace("SPOOL", str(spool)))
    return conf


def _replies_and_log(text: str) -> list[str]:
    """The reply lines (banner and EHLO lines aside, they name the software) and the
    LOG lines of a -bh transcript."""
    keep = []
    for line in text.splitlines():
        if line.startswith("LOG:") and "smtp_connection" not in line:
            keep.append(line)
        elif line[:3].isdigit() and not line.startswith(("220 ", "250-", "250 HELP")):
            keep.append(line)
    return keep


@pytest.mark.parametrize("name", ["strict", "warn_error"])
def test_bh_transcript_as_exim(tmp_path, name):
    conf = _conf(tmp_path, f"{name}.conf")
    out = run_pymta(["-bh", "192.0.2.1"], conf, input=(DATA / "session.in").read_bytes())
    assert out.returncode == 0, out.stderr
    got = _replies_and_log(out.stdout + out.stderr)
    want = _replies_and_log((DATA / f"{name}.exim.out").read_text())
    assert sorted(got) == sorted(want), (got, want)


@pytest.mark.parametrize("line", (DATA / "be.exim.tsv").read_text().splitlines())
def test_expansion_errors_as_exim(tmp_path, line):
    expr, want = line.split("\t")
    conf = _conf(tmp_path, "strict.conf")
    ctx = ExpandContext(config=load_config(str(conf)))
    with pytest.raises(ExpandError) as exc:
        expand_string(expr, ctx)
    assert f"Failed: {exc.value}" == want


def test_set_variables_are_known(tmp_path):
    ctx = ExpandContext(config=load_config(str(_conf(tmp_path, "strict.conf"))))
    ctx.acl_vars["acl_m_seen"] = "yes"
    assert expand_string("$acl_m_seen ${if def:acl_m_seen{set}}", ctx) == "yes set"
    lax = tmp_path / "lax.conf"
    lax.write_text("primary_hostname = test.example\n")
    assert expand_string("[$acl_m_never]", ExpandContext(config=load_config(str(lax)))) \
        == "[]"
