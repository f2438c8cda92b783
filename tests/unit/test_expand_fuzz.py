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
