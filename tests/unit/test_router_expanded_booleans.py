"""Exim's expanded booleans ("boolean*": a router's more and unseen, the smtp
transport's multi_domain and retry_include_ip_address) take an expansion, made for
each address; a result that is not a boolean defers the address.  Lines as
exim4 4.96 -bt printed them for the same configuration."""
from __future__ import annotations

from tests.support.daemon import run_pymta

CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
begin routers
dec:
  driver = redirect
  data =
  more = ${if eq{$local_part}{stop}{no}{${if eq{$local_part}{odd}{maybe}{yes}}}}
first:
  driver = accept
  unseen = ${if eq{$local_part}{copy}{yes}{${if eq{$local_part}{bad}{}{no}}}}
  transport = t1
second:
  driver = accept
  transport = t2
begin transports
t1:
  driver = appendfile
  file = /dev/null
t2:
  driver = appendfile
  file = /dev/null
"""


def _bt(tmp_path, local_part: str) -> str:
    conf = tmp_path / "eb.conf"
    conf.write_text(CONFIG)
    return run_pymta(["-bt", f"{local_part}@test.example"], conf).stdout


def test_more_expanded_no_fails_the_address(tmp_path):
    assert _bt(tmp_path, "stop") == "stop@test.example is undeliverable: Unrouteable address\n"


def test_an_expansion_that_is_no_boolean_defers(tmp_path):
    assert _bt(tmp_path, "odd") == (
        'odd@test.example cannot be resolved at this time: "maybe" is not a valid value '
        'for the "more" option in the dec router\n')
    assert '"" is not a valid value for the "unseen" option in the first router' in \
        _bt(tmp_path, "bad")


def test_unseen_expanded_per_address(tmp_path):
    copied = _bt(tmp_path, "copy")
    assert "router = first, transport = t1" in copied
    assert "router = second, transport = t2" in copied
    assert _bt(tmp_path, "plain") == "plain@test.example\n  router = first, transport = t1\n"


def test_bP_shows_the_expansion(tmp_path):
    conf = tmp_path / "eb.conf"
    conf.write_text(CONFIG)
    out = run_pymta(["-bP", "router", "dec"], conf).stdout
    assert "more = ${if eq{$local_part}{stop}{no}" in out
