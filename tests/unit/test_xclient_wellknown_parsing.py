"""The XCLIENT argument parser, the WELLKNOWN reply encoding and ${xtextd:}."""
import pytest

from pymta.acl.wellknown import WellknownFailed, encode_response, wellknown_response
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError
from pymta.smtp.xclient import XclientSyntaxError, parse_xclient
from pymta.taint import taint


def test_xclient_values_are_xtext_and_checked():
    cmd = parse_xclient("addr=IPv6:2001:DB8::7 PORT=0040 NAME=[TEMPUNAVAIL] "
                        "LOGIN=a+2Bb DESTPORT=25", first=True)
    assert cmd.values == {"ADDR": "2001:db8::7", "PORT": "40", "NAME": None,
                          "LOGIN": "a+b", "DESTPORT": "25"}
    assert parse_xclient("LOGIN=[UNAVAILABLE]", first=False).values == {"LOGIN": None}


@pytest.mark.parametrize("arg, error", [
    ("", "XCLIENT must have at least one operand"),
    ("ADDR", "XCLIENT: missing value for parameter 'ADDR'"),
    ("ADDR= PORT=1", "XCLIENT: zero-length value for param"),
    ("PROTO=ESMTP", "XCLIENT: unrecognised parameter 'PROTO'"),
    ("ADDR=192.0.2.1 PORT=70000", "XCLIENT: invalid port '70000'"),
    ("ADDR=192.0.2.1 PORT=1x", "XCLIENT: invalid port '1x'"),
    ("ADDR=host.example PORT=1", "XCLIENT: invalid address 'host.example'"),
    ("ADDR=[UNAVAILABLE] PORT=1", "XCLIENT: ADDR must be given"),
    ("ADDR=192.0.2.1 PORT=1 NAME=a+zz", "failed xtext decode for XCLIENT: 'a+zz'"),
    ("PORT=1", "missing ADDR for XCLIENT"),
])
def test_xclient_syntax_errors(arg, error):
    with pytest.raises(XclientSyntaxError) as e:
        parse_xclient(arg, first=True)
    assert str(e.value) == error


def test_wellknown_encoding():
    assert encode_response(b"") == "SIZE=0"
    assert encode_response(b"a b\n\nc") == "SIZE=6\na+20b+0A\n+0A\nc"
    assert encode_response(b"=" * 30).splitlines() == ["SIZE=30", "+3D" * 25, "+3D" * 5]


def test_wellknown_file_checks(tmp_path):
    f = tmp_path / "ok.txt"
    f.write_bytes(b"hello\n")
    assert wellknown_response(str(f)) == "SIZE=6\nhello+0A"
    with pytest.raises(WellknownFailed, match="tainted"):
        wellknown_response(taint(str(f)))
    with pytest.raises(WellknownFailed, match="not a regular file"):
        wellknown_response(str(tmp_path))
    with pytest.raises(WellknownFailed, match="failed to open"):
        wellknown_response(str(tmp_path / "missing"))


def test_xtextd_operator():
    ctx = ExpandContext()
    assert expand_string("${xtextd:security.txt+2Bx}", ctx) == "security.txt+x"
    with pytest.raises(ExpandError, match="not valid xtext"):
        expand_string("${xtextd:a=b}", ctx)
