"""``pymta -brt``, ``-brw`` and the ``-bP`` forms, run on one configuration by pymta
and by Exim 4.96 (the oracle): the outputs and exit codes must be the same."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.daemon import run_pymta
from tests.support.exim import EXIM, exim_or_skip

CONFIG = """\
keep_environment =
exim_user = Debian-exim
spool_directory = SPOOLDIR
primary_hostname = mx.test.example
qualify_domain = q.example
domainlist local_domains = test.example : other.example
hostlist relays = 192.0.2.0/24
acl_smtp_rcpt = acl_rcpt
hide smtp_banner = private   banner   text
MACRO_ONE = one

begin acl

acl_rcpt:
  accept  hosts    =   +relays
  deny    message  = relay   not   permitted

begin routers

local:
  driver = accept
  domains = +local_domains
  transport = t

begin transports

t:
  driver = appendfile
  file = /dev/null

begin retry

a.example        *            senders=x@y.example F,1h,5m
b.example        quota_3d     F,90m,1m; G,25h,7m,2; H,3d,1h,1.25
c.example        rcpt_4xx     F,1d,1h
d.example        refused_A    F,1h,5m
*.e.example      timeout      F,2h,15m; G,16h,1h,1.5; F,4d,6h
*@f.example      *            F,1w,1d
"""

CASES = [
    ["-brt", "a.example"],
    ["-f", "x@y.example", "-brt", "a.example"],
    ["-brt", "b.example", "quota_3d"],
    ["-brt", "b.example", "quota"],
    ["-brt", "u@c.example", "rcpt_451"],
    ["-brt", "d.example", "refused_A"],
    ["-brt", "d.example"],
    ["-brt", "host.e.example", "timeout"],
    ["-brt", "zz.example", "host.e.example", "timeout"],
    ["-brt", "someone@f.example"],
    ["-brt", "f.example"],
    ["-brt", "localhost"],
    ["-brt", "b.example", "nonsense"],
    ["-brt"],
    ["-brw", "user@Test.Example"],
    ["-brw", "user"],
    ["-brw"],
    ["-bP", "+local_domains"],
    ["-bP", "+relays"],
    ["-bP", "+nothing"],
    ["-bP", "router_list", "transport_list", "authenticator_list"],
    ["-bP", "qualify_domain", "primary_hostname"],
    ["-bP", "macro", "_CONFIG_DIR_NOT_THERE"],
    ["-bP", "macro", "MACRO_ONE"],
    ["-bP", "smtp_banner"],
    ["-bP", "-n", "qualify_domain", "accept_8bitmime"],
    ["-bP", "-n", "+relays"],
    ["-bP", "-n", "macro", "MACRO_ONE"],
    ["-bP", "configure_file"],
    ["-bP", "environment"],
]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    exim_or_skip()
    d = tmp_path_factory.mktemp("testmodes")
    os.chmod(d, 0o755)
    (d / "spool").mkdir()
    os.chmod(d / "spool", 0o777)
    path = d / "test.conf"
    path.write_text(CONFIG.replace("SPOOLDIR", str(d / "spool")))
    os.chmod(path, 0o644)
    return path


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a))
def test_same_as_exim(config_file, args):
    exim = subprocess.run([EXIM, "-C", str(config_file)] + args, capture_output=True,
                          text=True, timeout=30)
    ours = run_pymta(args, config_file)
    assert ours.returncode == exim.returncode, (ours.stderr, exim.stdout, exim.stderr)
    if exim.returncode == 0:
        assert ours.stdout == exim.stdout, ours.stderr
    else:
        # the complaint is the same, whichever stream it goes to
        assert (ours.stdout + ours.stderr).strip().splitlines()[-1] == \
            (exim.stdout + exim.stderr).strip().splitlines()[-1]


def test_bp_config_lists_the_parsed_configuration(config_file):
    ours = run_pymta(["-bP", "config"], config_file)
    exim = subprocess.run([EXIM, "-C", str(config_file), "-bP", "config"],
                          capture_output=True, text=True, timeout=30)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == exim.stdout
