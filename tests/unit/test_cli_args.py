"""Exim-style command-line parsing."""
import pytest

from pymta.cli.args import UsageError, parse_args, parse_time


def test_daemon_with_queue_interval_either_order():
    for argv in (["-bd", "-q30m"], ["-q30m", "-bd"]):
        o = parse_args(argv)
        assert o.action == "bd" and o.queue_interval == 1800 and o.queue_flags == ""


def test_bdf_and_forced_interval():
    o = parse_args(["-bdf", "-qff1h30m"])
    assert o.action == "bdf" and o.queue_interval == 5400 and o.queue_flags == "ff"


def test_plain_queue_run_flags():
    assert parse_args(["-q"]).action == "q"
    assert parse_args(["-q"]).queue_interval is None
    assert parse_args(["-qf"]).queue_flags == "f"
    assert parse_args(["-qff"]).queue_flags == "ff"


def test_submission_defaults_to_bm_with_recipients():
    o = parse_args(["-t", "-i", "-fme@example.com", "-F", "Me Myself", "x@y"])
    assert o.action == "bm" and o.extract and not o.dot_ends
    assert o.sender == "me@example.com" and o.fullname == "Me Myself"
    assert o.args == ["x@y"]


def test_detached_and_separate_arguments():
    o = parse_args(["-f", "a@b", "-Fname", "-C", "/tmp/c", "-DFOO=bar baz", "-DX", "r@s"])
    assert o.sender == "a@b" and o.fullname == "name" and o.config_path == "/tmp/c"
    assert o.macros == {"FOO": "bar baz", "X": ""}
    assert o.args == ["r@s"]


def test_oi_variants_and_delivery_modes():
    assert not parse_args(["-oi"]).dot_ends
    assert not parse_args(["-oitrue"]).dot_ends
    assert parse_args(["-odq"]).delivery_mode == "q"
    assert parse_args(["-odi"]).delivery_mode == "i"
    assert parse_args(["-oem"]).error_mode == "m"
    assert parse_args(["-oep"]).error_mode == "p"


def test_M_family_takes_ids():
    o = parse_args(["-Mrm", "1abcde-000000-AA", "1abcde-000000-AB"])
    assert o.action == "Mrm" and len(o.args) == 2
    assert parse_args(["-Mvh", "x"]).action == "Mvh"
    assert parse_args(["-M", "x"]).action == "M"


def test_oX_oP_and_queue_listing():
    o = parse_args(["-bd", "-oX", "127.0.0.1.2525", "-oP", "/tmp/p"])
    assert o.oX == "127.0.0.1.2525" and o.pid_file == "/tmp/p"
    assert parse_args(["-bpc"]).action == "bpc"
    assert parse_args(["-bP", "spool_directory"]).args == ["spool_directory"]


@pytest.mark.parametrize("argv", [["-y"], ["-bz"], ["-C"], ["-f"], ["-bt", "-bd"]])
def test_bad_options_rejected_like_exim(argv):
    with pytest.raises(UsageError) as exc:
        parse_args(argv)
    assert "unknown, malformed, or incomplete option" in str(exc.value)


@pytest.mark.parametrize("argv, text", [
    (["-q0"], "bad time value -q0: abandoned"), (["-qx"], "bad time value -qx: abandoned"),
    (["-D", "lower=1"], "macro name set by -D must start with an upper case letter")])
def test_bad_option_arguments_rejected_like_exim(argv, text):
    with pytest.raises(UsageError) as exc:
        parse_args(argv)
    assert str(exc.value) == text and exc.value.line() == f"pymta: {text}"


def test_double_dash_ends_options():
    assert parse_args(["--", "-weird@x"]).args == ["-weird@x"]


def test_parse_time():
    assert parse_time("30m") == 1800
    assert parse_time("1h30m") == 5400
    assert parse_time("45") == 45
    assert parse_time("2d") == 172800
    assert parse_time("x") is None


def test_macro_form_the_help_shows_is_the_one_that_parses():
    # as in Exim, the definition is one argument: -DNAME=value; "-D NAME=value" is refused
    from pymta.cli.usage import PYMTA
    assert "-DNAME=value" in PYMTA
    assert parse_args(["-DSPOOL=/tmp/x", "-bV"]).macros == {"SPOOL": "/tmp/x"}
    with pytest.raises(UsageError):
        parse_args(["-D", "SPOOL=/tmp/x", "-bV"])
