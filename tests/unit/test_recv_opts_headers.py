"""strip_trailing_dot, strip_excess_angle_brackets and allow_utf8_domains in header lines (verify =
header_syntax), against exim4's recorded answers (tests/data/recv_opts/header_syntax.txt)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pymta.acl.addrlist import AddressSyntax, parse_address_list
from pymta.acl.verify import check_header_syntax

DATA = Path(__file__).resolve().parent.parent / "data" / "recv_opts"
CASES = [line.split("|") for line in (DATA / "header_syntax.txt").read_text().splitlines()]


def _strip(option: str) -> AddressSyntax:
    """What the ACL engine passes for a (not SMTPUTF8) message under ``option``."""
    return AddressSyntax(excess_angle_brackets=option.startswith("strip_excess"),
                         trailing_dot=option.startswith("strip_trailing_dot"),
                         utf8_domains=option.startswith("allow_utf8_domains"))


@pytest.mark.parametrize("option,header,reply", CASES)
def test_header_syntax_matches_exim(option, header, reply):
    err = check_header_syntax([header + "\n"], lambda _kind: False, _strip(option))
    assert (err is None) == reply.startswith("250"), err


def test_stripped_header_address_is_the_plain_one():
    both = AddressSyntax(excess_angle_brackets=True, trailing_dot=True)
    [pa] = parse_address_list("Alice <<alice@test.example.>>", both)
    assert pa.error is None and pa.address == "alice@test.example"
