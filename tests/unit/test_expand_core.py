"""Unit tests for the expansion parser and evaluator (issue 2 subset)."""
from __future__ import annotations

import types

import pytest

from pymta.config.model import Config
from pymta.expand import (
    ExpandContext,
    ExpandError,
    ExpandFail,
    compile_expansion,
    eval_condition,
    expand_string,
)
from pymta.expand.parser import Item, Op, Seq, Var
from pymta.taint import Tainted, is_tainted


def make_ctx(**variables) -> ExpandContext:
    main = types.SimpleNamespace(primary_hostname="mx.corp.test", qualify_domain="corp.test",
                                 spool_directory="/var/spool/pymta")
    config = Config(filename="/etc/pymta/configure", main=main)
    return ExpandContext(config=config, variables=dict(variables))


def x(text: str, **variables) -> str:
    return expand_string(text, make_ctx(**variables))


# -- parser -------------------------------------------------------------------------

def test_plain_text_returned_unchanged_and_same_object():
    s = "no specials here"
    assert expand_string(s, make_ctx()) is s


def test_compile_builds_tree_and_caches():
    t = compile_expansion("a$b${lc:C}${if eq{1}{1}{y}{n}}")
    assert isinstance(t, Seq)
    assert t.parts[0] == "a"
    assert isinstance(t.parts[1], Var) and t.parts[1].name == "b"
    assert isinstance(t.parts[2], Op) and t.parts[2].name == "lc"
    assert isinstance(t.parts[3], Item) and t.parts[3].name == "if"
    assert compile_expansion("a$b${lc:C}${if eq{1}{1}{y}{n}}") is t


@pytest.mark.parametrize("text", ["${", "${lc:abc", "${if eq{a}}", "$", "${if}",
                                  "${if eq{a}{b}{c}{d}", "${lookup{a}lsearch}",
                                  "${if foo{a}{b}}", "${extract{a}}", "${length_-1:abc}",
                                  "${substr_x:abc}", "${nosuchop:x}"])
def test_syntax_errors(text):
    with pytest.raises(ExpandError):
        x(text)


# -- variables ----------------------------------------------------------------------

def test_variables_both_forms():
    assert x("$local_part@${domain}", local_part="joe", domain="ex.test") == "joe@ex.test"


def test_config_variables_and_unknown_variable():
    assert x("$primary_hostname/$qualify_domain") == "mx.corp.test/corp.test"
    with pytest.raises(ExpandError, match='unknown variable name "nosuch"'):
        x("$nosuch")


def test_known_but_unset_variable_is_empty():
    assert x("<$sender_host_address>") == "<>"


def test_computed_variables():
    assert x("$version_number") == "4.96"
    assert x("$tod_epoch").isdigit()
    assert x("$pid").isdigit()
    assert x("$config_dir") == "/etc/pymta"


def test_acl_variables_default_empty_and_shared():
    ctx = make_ctx()
    ctx.acl_vars["acl_c0"] = "kept"
    assert expand_string("$acl_c0/$acl_m_x/", ctx) == "kept//"


def test_header_variables():
    ctx = make_ctx()
    ctx.headers = ["Subject:  hello\n world\n", "To: a@b\n", "to: c@d\n",
                   "X-Enc: =?utf-8?Q?caf=C3=A9?=\n"]
    assert expand_string("$h_subject:", ctx) == "hello\n world"
    assert expand_string("$rh_subject:", ctx) == "  hello\n world\n"
    assert expand_string("$h_to:", ctx) == "a@b,\nc@d"
    assert expand_string("$lh_to:", ctx) == " a@b: c@d"
    assert expand_string("$h_x-enc:", ctx) == "caf\u00e9"
    assert is_tainted(expand_string("$h_to:", ctx))
    assert expand_string("${if def:h_to:{y}{n}}${if def:h_cc:{y}{n}}", ctx) == "yn"


# -- escapes ------------------------------------------------------------------------

def test_backslash_escapes():
    assert x(r"a\tb\nc\x41\101\$\\") == "a\tb\ncAA$\\"


def test_N_protects_text():
    assert x(r"\N${not}$expanded\N!") == "${not}$expanded!"


# -- if and conditions -----------------------------------------------------------------

@pytest.mark.parametrize("cond,expected", [
    ("eq{a}{a}", True), ("eq{a}{A}", False), ("eqi{a}{A}", True),
    ("=={1K}{1024}", True), ("<{2}{10}", True), ("lt{2}{10}", False),
    (">={3}{3}", True), ("<={4}{3}", False), ("gt{b}{a}", True),
    ("match{abc}{\\N^a.c$\\N}", True), ("match{abc}{^b}", False),
    ("def:primary_hostname", True), ("def:sender_address", False),
    ("and{{eq{a}{a}}{eq{b}{b}}}", True), ("or{{eq{a}{b}}{eq{b}{c}}}", False),
    ("inlist{b}{a:b:c}", True), ("inlisti{B}{a:b:c}", True),
    ("bool{yes}", True), ("bool{0}", False), ("bool_lax{anything}", True),
    ("!eq{a}{b}", True), ("isip{::1}", True), ("isip4{::1}", False),
])
def test_conditions(cond, expected):
    assert x("${if " + cond + "{T}{F}}") == ("T" if expected else "F")


def test_numeric_condition_rejects_non_integer():
    with pytest.raises(ExpandError, match="integer expected"):
        x("${if <{abc}{1}{y}{n}}")


def test_if_without_strings_and_missing_no():
    assert x("${if eq{a}{a}}") == "true"
    assert x("${if eq{a}{b}}") == ""
    assert x("${if eq{a}{b}{yes}}") == ""


def test_forced_fail():
    with pytest.raises(ExpandFail):
        x("${if eq{a}{b}{yes}fail}")
    assert issubclass(ExpandFail, ExpandError)


def test_branch_not_taken_is_not_evaluated():
    # these would fail if evaluated: division by zero, a missing lookup file
    assert x("${if eq{a}{a}{ok}{${eval:1/0}}}") == "ok"
    assert x("${if eq{a}{b}{${lookup{k}lsearch{/nonexistent}}}{ok}}") == "ok"
    assert x("${if or{{eq{a}{a}}{eq{${eval:1/0}}{x}}}{ok}}") == "ok"


def test_untaken_branch_still_checks_names_like_exim():
    with pytest.raises(ExpandError, match="unknown variable name"):
        x("${if eq{a}{a}{ok}{$nosuchvariable}}")
    with pytest.raises(ExpandError, match="unknown expansion operator"):
        x("${if eq{a}{b}{${nosuchop:x}}{ok}}")
    with pytest.raises(ExpandError, match="inside \"or"):
        x("${if or{{eq{a}{a}}{eq{$nosuch}{x}}}{y}{n}}")


def test_match_sets_numbered_variables_inside_if_only():
    assert x("${if match{abcdef}{^ab(.)d}{$1}{no}}-$1-") == "c--"


# -- operators ----------------------------------------------------------------------

@pytest.mark.parametrize("expr,out", [
    ("${lc:AbC}", "abc"), ("${uc:AbC}", "ABC"), ("${length_2:abcdef}", "ab"),
    ("${substr_1_2:abcdef}", "bc"), ("${substr_-3:abcdef}", "abc"),
    ("${substr{-5}{2}{1234567}}", "34"), ("${eval:1+2*3}", "7"),
    ("${eval:(1+2)*3}", "9"), ("${eval:-7/2}", "-3"), ("${eval:7%-3}", "1"),
    ("${eval:0x10+010}", "24"), ("${eval10:010}", "10"), ("${eval:1<<4|1}", "17"),
    ("${hash{4}{3}{hello world}}", "ccca"), ("${nhash_8_64:hello}", "5/12"),
    ("${md5:abc}", "900150983cd24fb0d6963f7d28e17f72"),
    ("${base64:hello}", "aGVsbG8="), ("${base62:123456}", "000W7E"),
    ("${mask:192.168.10.206/28}", "192.168.10.192/28"),
    ("${reverse_ip:1.2.3.4}", "4.3.2.1"), ("${time_interval:90061}", "1d1h1m1s"),
    ("${time_eval:1h30m}", "5400"), ("${address:Joe <joe@ex.test>}", "joe@ex.test"),
    ("${domain:joe@ex.test}", "ex.test"), ("${local_part:joe@ex.test}", "joe"),
    ("${listcount:a:b::c}", "2"), ("${quote:a b}", '"a b"'),
    ("${sg{a.b.c}{\\\\.}{-}}", "a-b-c"), ("${tr{abcdea}{ac}{13}}", "1b3de1"),
])
def test_operators_and_items(expr, out):
    assert x(expr) == out


def test_eval_errors():
    for bad in ("${eval:abc}", "${eval:1/0}", "${eval:(1}", "${eval:9223372036854775807+1}"):
        with pytest.raises(ExpandError):
            x(bad)


def test_list_items_map_filter_reduce_sort():
    assert x("${map{a:b}{<$item>}}") == "<a>:<b>"
    assert x("${filter{1:2:3:4}{>{$item}{2}}}") == "3:4"
    assert x("${reduce{1:2:3}{0}{${eval:$value+$item}}}") == "6"
    assert x("${sort{10:9:100}{<}{$item}}") == "9:10:100"
    assert x("${filter{<; a;b}{eq{$item}{b}}}") == "b"


def test_extract_forms():
    assert x("${extract{b}{a=1 b=\"x y\"}}") == "x y"
    assert x("${extract{2}{,}{a,b,c}}") == "b"
    assert x("${extract{z}{a=1}{found}{absent}}") == "absent"
    assert x("${extract{a}{a=1}{<$value>}}") == "<1>"


# -- taint --------------------------------------------------------------------------

def test_tainted_variable_taints_result():
    r = x("user=$local_part", local_part=Tainted("joe"))
    assert r == "user=joe" and is_tainted(r)
    r = x("${uc:$local_part}", local_part=Tainted("joe"))
    assert r == "JOE" and is_tainted(r)


def test_untainted_result_stays_clean():
    r = x("user=$local_part", local_part="joe")
    assert not is_tainted(r)


# -- eval_condition -----------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("${if eq{a}{a}}", True), ("", False), ("0", False), ("no", False),
    ("false", False), ("yes", True), ("1", True), ("${if eq{a}{b}}", False),
])
def test_eval_condition(text, expected):
    assert eval_condition(text, make_ctx()) is expected


@pytest.mark.parametrize("cond,expected", [
    ("crypteq{abc}{\\{md5\\}900150983CD24FB0D6963F7D28E17F72}", True),
    ("crypteq{abc}{\\{md5\\}kAFQmDzST7DWlj99KOF/cg==}", True),
    ("crypteq{abc}{\\{sha1\\}qZk+NkcGgWq6PiVxeFDCbJzQ2J0=}", True),
    ("crypteq{abd}{\\{sha1\\}a9993e364706816aba3e25717850c26c9cd0d89d}", False),
    ("crypteq{abc}{abFZSxKKdq5s6}", True),
    ("crypteq{abc}{\\{crypt\\}abFZSxKKdq5s6}", True),
])
def test_crypteq(cond, expected):
    assert x("${if " + cond + "{T}{F}}") == ("T" if expected else "F")


def test_crypteq_unknown_mechanism():
    with pytest.raises(ExpandError, match="unknown encryption mechanism"):
        x("${if crypteq{abc}{\\{nope\\}x}{y}{n}}")
