"""Option value parsing and -bP formatting (pymta.config.options)."""
import pytest

from pymta.config.model import ConfigError
from pymta.config.options import (
    OptionSpec,
    format_time,
    format_value,
    parse_int,
    parse_time,
    parse_value,
)


@pytest.mark.parametrize("text,value", [
    ("10", 10), ("0", 0), ("4K", 4096), ("2M", 2 * 1024 ** 2), ("1G", 1024 ** 3),
    ("0x1F", 31), ("017", 15), ("-5", -5), ("1k", 1024),
])
def test_parse_int(text, value):
    assert parse_int(text) == value
    assert parse_value(OptionSpec("n", "int"), text) == value


@pytest.mark.parametrize("text,seconds", [
    ("5s", 5), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("90", 90), ("0s", 0),
    ("1d2h3m4s", 93784),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (3600, "1h"), (5400, "1h30m"), (86400 * 7, "1w"), (93784, "1d2h3m4s"),
])
def test_format_time(seconds, text):
    assert format_time(seconds) == text


def test_kint_is_kilobytes():
    assert parse_value(OptionSpec("k", "kint"), "10M") == 10240
    assert parse_value(OptionSpec("k", "kint"), "16") == 16


def test_mode_and_fixed():
    assert parse_value(OptionSpec("m", "mode"), "0600") == 0o600
    assert parse_value(OptionSpec("m", "mode"), "022") == 0o22
    assert parse_value(OptionSpec("f", "fixed"), "1.5") == 1500
    assert parse_value(OptionSpec("f", "fixed"), "2") == 2000
    assert parse_value(OptionSpec("f", "fixed"), "0.25") == 250


@pytest.mark.parametrize("text,value", [("true", True), ("yes", True), ("false", False),
                                        ("no", False), ("TRUE", True)])
def test_bool(text, value):
    assert parse_value(OptionSpec("b", "bool"), text) is value


def test_strings_are_kept_raw():
    assert parse_value(OptionSpec("s", "expand"), "${if eq{a}{b}{x}}") == "${if eq{a}{b}{x}}"
    assert parse_value(OptionSpec("l", "list"), "<; a ; b") == "<; a ; b"


def test_uid_gid():
    assert parse_value(OptionSpec("u", "uid"), "0") == 0
    assert parse_value(OptionSpec("u", "uid"), "root") == 0
    assert parse_value(OptionSpec("g", "gid"), "root") == 0
    # a user that does not exist (yet) is kept by name
    assert parse_value(OptionSpec("u", "uid"), "no-such-user-xyz") == "no-such-user-xyz"


@pytest.mark.parametrize("typ,text,message", [
    ("int", "12x", "extra characters follow integer value for opt"),
    ("int", "abc", "integer expected for opt"),
    ("time", "5q", "invalid time value for opt"),
    ("time", "30", "invalid time value for opt"),
    ("bool", "maybe", '"maybe" is not a valid value for the "opt" option'),
    ("mode", "0999", "octal integer expected for opt"),
    ("fixed", "x.5", "fixed-point number expected for opt"),
])
def test_errors_carry_file_and_line(typ, text, message):
    with pytest.raises(ConfigError) as e:
        parse_value(OptionSpec("opt", typ), text, "/etc/x.conf", 17)
    assert e.value.file == "/etc/x.conf" and e.value.line == 17
    assert e.value.message == message
    assert str(e.value) == f"/etc/x.conf line 17: {message}"


@pytest.mark.parametrize("spec,value,line", [
    (OptionSpec("accept_8bitmime", "bool"), True, "accept_8bitmime"),
    (OptionSpec("allow_mx_to_ip", "bool"), False, "no_allow_mx_to_ip"),
    (OptionSpec("auto_thaw", "time"), 0, "auto_thaw = 0s"),
    (OptionSpec("callout_negative_expire", "time"), 7200, "callout_negative_expire = 2h"),
    (OptionSpec("bounce_return_size_limit", "size"), 102400, "bounce_return_size_limit = 100K"),
    (OptionSpec("smtp_accept_max", "int"), 20, "smtp_accept_max = 20"),
    (OptionSpec("mode", "mode"), 0o600, "mode = 0600"),
    (OptionSpec("queue_only_load", "fixed"), 1500, "queue_only_load = 1.5"),
    (OptionSpec("queue_only_load", "fixed"), 2000, "queue_only_load = 2.0"),
    (OptionSpec("queue_only_load", "fixed"), 125, "queue_only_load = 0.125"),
    (OptionSpec("check_spool_space", "kint"), 16, "check_spool_space = 16K"),
    (OptionSpec("check_spool_space", "kint"), 10240, "check_spool_space = 10M"),
    (OptionSpec("acl_smtp_rcpt", "expand"), None, "acl_smtp_rcpt = "),
    (OptionSpec("message_suffix", "expand"), "\n", "message_suffix = \\n"),
])
def test_format_value(spec, value, line):
    assert format_value(spec, value) == line


def test_format_hidden():
    assert format_value(OptionSpec("x", "string"), "secret", hidden=True) == \
        "x = <value not displayable>"
