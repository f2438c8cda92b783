"""Shared fixtures of the unit tests."""
from __future__ import annotations

import pytest

#: a configuration for command-line tests: alice and bob of test.example get mail in
#: one mbox file, DIR/mbox
CLI_CONF = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
message_size_limit = 0
domainlist local_domains = test.example
begin routers
local_users:
  driver = accept
  domains = +local_domains
  local_parts = alice : bob
  transport = t
begin transports
t:
  driver = appendfile
  file = {dir}/mbox
"""


@pytest.fixture
def cli_conf(tmp_path) -> str:
    """The path of a written :data:`CLI_CONF` whose spool is ``tmp_path/spool``."""
    spool = tmp_path / "spool"
    (spool / "log").mkdir(parents=True)
    path = tmp_path / "pymta.conf"
    path.write_text(CLI_CONF.format(spool=spool, dir=tmp_path))
    return str(path)
