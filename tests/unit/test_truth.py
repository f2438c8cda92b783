"""pymta.truth: Exim's reading of an expanded value as a boolean."""
from pymta.truth import exim_true


def test_false_values():
    for value in (None, "", "  ", "0", "no", "NO", " False ", "false"):
        assert not exim_true(value), value


def test_true_values():
    for value in ("1", "yes", "true", "anything", "00", " y "):
        assert exim_true(value), value
