"""Fuzz the expansion parser/evaluator: bad input raises ExpandError, nothing else."""
from __future__ import annotations

import types

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymta.config.model import Config
from pymta.expand import ExpandContext, ExpandError, expand_string

_ALPHABET = st.sampled_from(list("${}:\\Nabcdeilfqu0123456789 _-<>=!,;^*.@") +
                            ["${if ", "${lc:", "eq", "{a}", "${eval:", "${lookup{",
                             "lsearch", "${sg{", "${extract{", "${map{", "${length_",
                             "def:", "match", "and{", "fail", "\\N", "$item",
                             "${substr_", "${hash{", "${tr{", "bool{", "${filter{",
                             "${reduce{", "${sort{", "${listextract{", "${mask:",
                             "${base64d:", "${addresses:", "${time_eval:", "inlist{"])


def _ctx() -> ExpandContext:
    main = types.SimpleNamespace(primary_hostname="h.test", qualify_domain="h.test")
    return ExpandContext(config=Config(filename="/x", main=main),
                         variables={"a": "1", "b": "x"})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=25).map("".join))
def test_random_expansions_only_raise_expand_error(text):
    try:
        result = expand_string(text, _ctx())
    except ExpandError:
        return
    assert isinstance(result, str)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_expand_error(text):
    try:
        expand_string(text, _ctx())
    except ExpandError:
        pass


_OPERATORS = """address addresses base32 base32d base62 base62d base64 base64d domain escape
escape8bit eval eval10 expand from_utf8 hash_3 hash_3_5 hex2b64 hexquote ipv6denorm
ipv6norm lc length_2 listcount listnamed local_part mask mask_n md5 nhash_5 nhash_5_5
quote quote_local_part quote_lsearch randint reverse_ip rfc2047 rfc2047d rxquote sha1
sha2 sha256 sha2_384 sha3 sha3_224 stat str2b64 strlen substr_1 substr_-1_2 time_eval
time_interval uc utf8clean utf8_domain_to_alabel utf8_domain_from_alabel
utf8_localpart_to_alabel utf8_localpart_from_alabel s l h_2 nh_3""".split()
_NASTY = ["", " ", "0", "-1", "1.2", "99999999999999999999999999", "-9223372036854775809",
          "1.2.3.4/99", "::1/200", "a@", "@", "<>", "\\x00", "\\xff\\xfe", "=?x?q?=ZZ?=",
          "((((", "1/0", "%", "xn--", "xn--!!", ".", "a..b", "\"unterminated",
          "\udcff\udcfe", "9" * 400]


def test_every_operator_with_nasty_arguments():
    """Each operator on awkward input gives a result or an ExpandError, nothing else."""
    ctx = _ctx()
    for op in _OPERATORS:
        for arg in _NASTY:
            try:
                assert isinstance(expand_string("${%s:%s}" % (op, arg), ctx), str)
            except ExpandError:
                pass


_ITEMS = ["${hash{%s}{%s}}", "${nhash{%s}{%s}}", "${length{%s}{%s}}", "${substr{%s}{%s}}",
          "${listextract{%s}{%s}}", "${extract{%s}{%s}}", "${extract json{%s}{%s}}",
          "${extract jsons{%s}{%s}}", "${sg{%s}{%s}{x}}", "${tr{%s}{%s}{x}}",
          "${hmac{%s}{k}{%s}}", "${listquote{%s}{%s}}", "${sort{%s}{%s}{$item}}",
          "${if forall_json{%s}{eq{$item}{%s}}}", "${if match{%s}{%s}}",
          "${if <{%s}{%s}}", "${if isip{%s%s}}", "${if bool{%s%s}}",
          "${if match_ip{%s}{%s}}", "${if match_domain{%s}{%s}}",
          "${if crypteq{%s}{%s}}", "${map{%s}{%s}}", "${reduce{%s}{%s}{$value}}",
          "${prvscheck{%s}{%s}}", "${srs_encode{%s}{%s}{x}}", "${imapfolder{%s}{%s}}"]


def test_items_and_conditions_with_nasty_arguments():
    ctx = _ctx()
    for template in _ITEMS:
        for a in _NASTY[:14]:
            for b in ("", "x", "(", "[1,", "{\\\"a\\\":1}", "-5", "1e999"):
                try:
                    assert isinstance(expand_string(template % (a, b), ctx), str)
                except ExpandError:
                    pass


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)) | st.sampled_from(
    ["\udcff", "\udc80", "{", "}", "$", "\\", ":", "@", "=", "?", "\x00", "é"]), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["${%s:%%s}%%s" % op for op in _OPERATORS] + _ITEMS), _TEXT, _TEXT)
def test_operators_and_items_on_random_text(template, a, b):
    try:
        assert isinstance(expand_string(template % (a, b), _ctx()), str)
    except ExpandError:
        pass
