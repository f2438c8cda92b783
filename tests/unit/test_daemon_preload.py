"""preload_all: what a process about to become exim_user imports beforehand."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from pymta.daemon.preload import preload_all
preload_all()
print(json.dumps(sorted(sys.modules)))
"""


def test_preload_imports_pymta_but_not_its_command_line_tools():
    # a fresh interpreter: this one has imported whatever earlier tests needed
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    modules = set(json.loads(out))
    # what children may import lazily is there: lookups, the spool, DNS record types
    assert {"pymta.lookups.lsearch", "pymta.delivery.deliver", "dns.rdtypes.IN.A",
            "email.generator"} <= modules
    # the tools with their own entry points (and click, which only they use) are not
    assert not {"pymta.admin.dumpdb", "pymta.admin.stats", "pymta.cli.qgrep",
                "pymta.cli.what", "click"} & modules
