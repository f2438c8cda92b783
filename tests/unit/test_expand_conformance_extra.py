"""Run the extra Exim 4.96 ``-be`` cases (tests/data/expand/extra_cases.jsonl, recorded by
tests/data/expand/record_cases.py) through pymta's expander; same rules as cases.jsonl."""
from __future__ import annotations

import json

from test_expand_conformance import DATA, be_env, run_case  # noqa: F401  (fixture)

# Cases where pymta deliberately differs from Exim 4.96 (see docs/EXPANSION.md).
DELIBERATE = {
    # Exim 4.96 crashes (SIGSEGV) on a forall_json/forany_json list that is not JSON;
    # the recorder saw no output at all.  pymta fails the expansion with a message.
    "${if forall_json{not json}{eq{$item}{b}}{y}{n}}": "Failed:",
    # Exim 4.96 dies of a division by zero (no output); pymta fails the expansion.
    "${nhash_0:abc}": "Failed:",
    "${nhash_5_0:abc}": "Failed:",
    "${nhash{65536}{65536}{abc}}": "Failed:",      # the C int product of the two is 0
    "${hash_3_0:abcdefgh}": "Failed:",
    "${hash{3}{0}{abcdefgh}}": "Failed:",
    # Exim 4.96 compresses the all-zero IPv6 address to ":"; pymta gives "::".
    "${ipv6norm:::}": "::",
    "${mask_n:::1/ 64}": "::/64",
    # PAM is not available to pymta: the condition is an expansion error, not "false".
    "${if pam{a:b}{y}{n}}": "Failed:",
}


def _cases():
    with open(DATA / "extra_cases.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_extra_cases_pass(be_env):  # noqa: F811 - the imported fixture
    d, config = be_env
    failures = []
    for case in _cases():
        if case["expr"] in DELIBERATE:
            case = dict(case, out=DELIBERATE[case["expr"]])   # what pymta does instead
        ok, got = run_case(case, d, config)
        if not ok:
            failures.append((case["expr"], case["out"], got))
    for expr, want, got in failures:
        print(f"  FAIL {expr!r}: want {want!r} got {got!r}")
    assert not failures
