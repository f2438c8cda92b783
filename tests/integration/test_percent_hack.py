"""percent_hack_domains: the RCPT ACL sees the address a local part with % stands for
(the last % as @, recipients only), and routing routes it as the original's child;
against exim4 4.96's -bh and -bt output for the same configuration
(tests/data/percent_hack)."""
from __future__ import annotations

from pathlib import Path

from tests.support.daemon import run_pymta

DATA = Path(__file__).resolve().parent.parent / "data" / "percent_hack"


def _conf(tmp_path: Path) -> Path:
    lines = [line for line in (DATA / "exim.conf").read_text().splitlines()
             if not line.startswith(("exim_user", "spool_directory", "log_file_path"))]
    conf = tmp_path / "configure"
    conf.write_text(f"spool_directory = {tmp_path}/spool\n" + "\n".join(lines) + "\n")
    return conf


def test_rcpt_acl_sees_the_hacked_address_as_exim(tmp_path):
    out = run_pymta(["-bh", "192.0.2.1"], _conf(tmp_path),
                    input=(DATA / "session.txt").read_text())
    logged = [line for line in (out.stdout + out.stderr).splitlines()
              if line.startswith(("LOG: MAIL", "LOG: RCPT"))]
    assert logged == (DATA / "exim4_bh.txt").read_text().splitlines()


def test_bt_routes_the_hacked_address_as_a_child(tmp_path):
    out = run_pymta(["-bt", "u%other.example@mx.test", "a%b@c.hack.test"], _conf(tmp_path))
    assert out.stdout == (DATA / "exim4_bt.txt").read_text()


def test_without_the_option_nothing_changes(tmp_path):
    conf = _conf(tmp_path)
    conf.write_text(conf.read_text().replace("percent_hack_domains", "# percent_hack_domains"))
    out = run_pymta(["-bt", "u%other.example@mx.test"], conf)
    assert out.stdout.splitlines()[0] == "u%other.example@mx.test"
