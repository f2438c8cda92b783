"""Expansion failures say what Exim 4.96 says.

Every recorded ``-be`` case (tests/data/expand/cases.jsonl and extra_cases.jsonl) whose
Exim output is ``Failed: ...`` must give exactly that text in pymta, except the
deliberate differences below, which are pinned to pymta's own text (each with the reason;
docs/EXPANSION.md lists them too).  Operators grep logs for these messages.
"""
from __future__ import annotations

import json

import pytest
from test_expand_conformance import DATA, be_env, run_case  # noqa: F401  (fixture)

# expression -> (what pymta prints instead, why it differs); @DIR@ as in the data files
DELIBERATE: dict[str, tuple[str, str]] = {
    "${sort{x}{nosuch}{$item}}": (
        'Failed: bad comparator "nosuch" in sort',
        "Exim gives an empty message for a comparator that is not a condition"),
    "${if match_local_part{abc}{+nosuch}{y}{n}}": (
        'Failed: unknown named localpart list "+nosuch"',
        "Exim prints NULL as the reason for an unknown named list"),
    "${if match_domain{x}{+nosuch}{y}{n}}": (
        'Failed: unknown named domain list "+nosuch"',
        "Exim prints NULL as the reason for an unknown named list"),
    "${lookup{rex.test}wildlsearch{@DIR@/wild.lsearch}}": (
        'Failed: lookup of "rex.test" gave DEFER: $ not followed by letter, digit, or {',
        "Exim defers without a reason when a wildlsearch key fails to expand; "
        "pymta gives the key's expansion error"),
    "[${lookup{dom.test}wildlsearch{@DIR@/more.lsearch}}]": (
        'Failed: lookup of "dom.test" gave DEFER: $ not followed by letter, digit, or {',
        "as above"),
    "${lookup{root}lsearch{relative/path}}": (
        'Failed: "relative/path" is not an absolute path',
        "pymta refuses a relative file name before opening anything"),
    "${lookup{root}lsearch{}}": (
        'Failed: "" is not an absolute path',
        "pymta refuses a relative (here empty) file name before opening anything"),
    "${lookup{x}dsearch{relative}{y}{n}}": (
        'Failed: dsearch requires an absolute directory name: "relative"',
        "pymta refuses a relative directory before opening anything"),
    "${lookup{root}cdb{@DIR@/aliases.lsearch}{y}{n}}": (
        "Failed: @DIR@/aliases.lsearch is not a cdb file",
        'Exim says "failed to open ... too short for cdb lookup: Success"'),
    "${lookup{root}dbm{@DIR@/aliases.lsearch}{y}{n}}": (
        "Failed: @DIR@/aliases.lsearch is not a Berkeley DB hash file",
        "Exim reports an unrelated errno (No such file or directory) for a file that "
        "exists but is not a database"),
}


def _failed_cases() -> list[dict]:
    cases = []
    for name in ("cases.jsonl", "extra_cases.jsonl"):
        with open(DATA / name) as f:
            cases += [c for c in map(json.loads, filter(str.strip, f))
                      if c["out"].startswith("Failed:")]
    return cases


def test_every_deliberate_difference_is_a_recorded_failure():
    exprs = {c["expr"] for c in _failed_cases()}
    assert set(DELIBERATE) <= exprs


def test_failure_texts_match_exim(be_env):  # noqa: F811 - the imported fixture
    d, config = be_env
    wrong = []
    for case in _failed_cases():
        want = case["out"]
        if case["expr"] in DELIBERATE:
            want = DELIBERATE[case["expr"]][0]
        want = want.replace("@DIR@", str(d))
        _ok, got = run_case(case, d, config)
        if got != want:
            wrong.append((case["expr"], want, got))
    for expr, want, got in wrong:
        print(f"  {expr!r}\n    want {want!r}\n    got  {got!r}")
    assert not wrong, f"{len(wrong)} failure texts differ from Exim's"


@pytest.mark.parametrize("expr, want", [
    # a few shapes beyond the recorded cases, checked against exim4 -be
    ("${sg{a}{b}{c}{d}}", "Failed: Too many arguments for 'sg' (max is 3)"),
    ("${hash{1}x}", "Failed: Not enough arguments for 'hash' (min is 2)"),
    ("${run{1}{2}x}", 'Failed: syntax error in "run" item - "fail" expected'),
    ("${env{1}{2}{3}{4}x}", "Failed: curly-bracket problem in conditional yes/no "
     "parsing: did not close with '}'\n remaining string is '{4}x}'"),
    ("${if and{{or{{eq{a}}}}}{y}{n}}", 'Failed: missing 2nd string in {} after "eq" '
     'inside "or{...}" condition inside "and{...}" condition'),
    ("${if forall{a}{eq{a}}}", 'Failed: missing 2nd string in {} after "eq" inside '
     '"forall" condition'),
    ("${acl_z}", 'Failed: unknown variable in "${acl_z}" (user-defined ACL variables '
     "must start acl_c or acl_m)"),
    ("${if <{1x}{2}}", 'Failed: invalid integer "1x"'),
    ("${if <{abc}{2}}", 'Failed: integer expected but "abc" found'),
    ("${sg{abc}{a)b}{x}}", 'Failed: regular expression error in "a)b": unmatched '
     "closing parenthesis at offset 1"),
    ("${sg{abc}{[z-a]}{x}}", 'Failed: regular expression error in "[z-a]": range out '
     "of order in character class at offset 3"),
    ("${lookup{root}}", "Failed: missing lookup type"),
    ("${length:x}", "Failed: Not enough arguments for 'length' (min is 2)"),
    ("${listnamed_l:nosuch}", 'Failed: "nosuch" is not a localpart named list'),
    ("${map{1}x}", "Failed: missing '{' for last arg of map"),
    ("${reduce{1}{2}{3}x}", 'Failed: missing } at end of "reduce"'),
    ("${sort{1}x}", "Failed: missing '{' for comparator arg of sort"),
    ("${extract{1}{2}x}", "Failed: missing '{' for arg 3 of extract"),
    ("${extract{1}{2}{3}{4}x}", 'Failed: syntax error in "extract" item - "fail" expected'),
    ("${filter{a}x}", "Failed: missing '{' for last arg of filter"),
    ("${filter{a}{eq{a}{a}}x}", 'Failed: missing } at end of "filter"'),
    ("${prvscheck{1}x}", "Failed: Not enough arguments for 'prvscheck' (min is 1)"),
    ("${readsocket{1}{2}{3}{4}{5}{6}{7}{8}{9}{10}{11}{12}}",
     "Failed: missing '}' closing readsocket"),
    ("${run}", "Failed: missing '{' for command arg of run"),
])
def test_more_shapes(be_env, expr, want):  # noqa: F811 - the imported fixture
    d, config = be_env
    _ok, got = run_case({"expr": expr, "out": want}, d, config)
    assert got == want
