"""Printing characters (pymta.printing, print_topbitchars) and RFC 2047 encoding
(pymta.rfc2047.encode): the expected texts are what Debian's exim4 4.96 printed for
the same input (exim4 -be, and the From: line of exim4 -odq -F)."""
from __future__ import annotations

import re

import pytest

from pymta import rfc2047
from pymta.config import load_config
from pymta.expand import ExpandContext, expand_string
from pymta.printing import configure_printing, string_printing
from tests.support.daemon import run_pymta


@pytest.fixture()
def topbit():
    configure_printing(True)
    yield
    configure_printing(False)


# (as the expansion gets it: the backslash of exim4 -be's "q\\z" already read)
SAMPLE = 'a\tb\bc\vd\fe\x80\xff\x01"q\\z'


def _escape(tmp_path, text: str, extra: str = "") -> str:
    conf = tmp_path / "c.conf"
    conf.write_text(f"primary_hostname = x.test\n{extra}")
    ctx = ExpandContext(load_config(str(conf)), variables={"sample": text})
    return expand_string("${escape:$sample}", ctx)


def test_escape_as_exim(tmp_path):
    # exim4 -be '${escape:a\tb\bc\vd\fe\x80\xff\x01"q\\z}': tab kept, C escapes for the
    # control characters that have one, octal for the rest, no escape for "\"
    sample = SAMPLE.replace("\x80", "\udc80").replace("\xff", "\udcff")   # raw bytes
    assert _escape(tmp_path, sample) == 'a\tb\\bc\\vd\\fe\\200\\377\\001"q\\z'


def test_escape_with_print_topbitchars(tmp_path, topbit):
    sample = SAMPLE.replace("\x80", "\udc80").replace("\xff", "\udcff")
    assert _escape(tmp_path, sample) == 'a\tb\\bc\\vd\\fe\udc80\udcff\\001"q\\z'
    assert string_printing("caf\u00e9\n") == "caf\u00e9\\n"


def test_string_printing_variants():
    assert string_printing("caf\u00e9\t") == "caf\\303\\251\t"
    assert string_printing("a\tb", tab=False) == "a\\tb"
    assert string_printing("a\nb", c_escapes=False) == "a\\012b"
    assert string_printing('say "x\\y"', escaped='"\\') == 'say \\"x\\\\y\\"'
    assert string_printing("\xe9", encoding="latin-1") == "\\351"


@pytest.mark.parametrize("text,exim", [
    ("a.b", "=?UTF-8?Q?a=2Eb?="),
    ("a=?b", "=?UTF-8?Q?a=3D=3Fb?="),
    ("a b", "a b"),
    ("a_b", "=?UTF-8?Q?a=5Fb?="),
    ("a\x01b", "=?UTF-8?Q?a=01b?="),
    ("Jos\u00e9 X Y Z Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa " + "b" * 63,
     "=?UTF-8?Q?Jos=C3=A9_X_Y_Z_Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbb?= "
     "=?UTF-8?Q?bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb?="),
    ("\u00e9" * 40, " ".join("=?UTF-8?Q?" + "=C3=A9" * n + "?=" for n in (12, 10, 10, 8))),
    ("." * 40, "=?UTF-8?Q?" + "=2E" * 24 + "?= =?UTF-8?Q?" + "=2E" * 16 + "?="),
    ("\u20ac" * 20,        # split inside a character after an even run, as Exim does
     "=?UTF-8?Q?" + "=E2=82=AC" * 8 + "?= =?UTF-8?Q?" + "=E2=82=AC" * 6 + "=E2=82?= "
     "=?UTF-8?Q?=AC" + "=E2=82=AC" * 5 + "?="),
    ("a" * 100 + "x\u00e9",
     "=?UTF-8?Q?" + "a" * 68 + "?= =?UTF-8?Q?" + "a" * 32 + "x=C3=A9?="),
])
def test_rfc2047_words_as_exim(text, exim):
    assert rfc2047.encode(text, "UTF-8") == exim


def test_full_name_with_eight_bit_text_is_encoded_in_from(tmp_path):
    """exim4 -odq -F 'José X' wrote From: =?UTF-8?Q?Jos=C3=A9_X?= <...>; a name of
    printable ASCII is quoted when it needs to be."""
    spool = tmp_path / "spool"
    conf = tmp_path / "c.conf"
    conf.write_text(f"primary_hostname = mx.test.example\nspool_directory = {spool}\n"
                    f"log_file_path = {spool}/%slog\nqueue_only = true\n")
    for name in ("Jos\u00e9 X", "Jo.Q X"):
        proc = run_pymta(["-odq", "-F", name, "u@d.example"], conf,
                         input="Subject: t\n\nbody\n")
        assert proc.returncode == 0, proc.stderr
    froms = sorted(re.search(r"^\d{3}F From: (.*?) <", p.read_text(), re.M).group(1)
                   for p in spool.glob("input/*-H"))
    assert froms == ['"Jo.Q X"', "=?UTF-8?Q?Jos=C3=A9_X?="]
