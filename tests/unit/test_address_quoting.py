"""Quoted local parts: routers and ACLs see them without the quotes (exim4 4.96's
$local_part for RCPT TO:<"a b"@x> is 'a b'), and an address made from one again gets
them back where they are needed."""
import pytest

from pymta.address import Address, dequote_local_part, quote_local_part


@pytest.mark.parametrize("written,local_part", [
    ('"a b"', "a b"), ('"ab"', "ab"), ('"a\\\\b"', "a\\b"), ('"a\\"b"', 'a"b'),
    ("plain", "plain"), ('x."y z"', "x.y z"),
])
def test_local_part_is_dequoted(written, local_part):
    assert dequote_local_part(written) == local_part
    address = Address(f"{written}@Test.Example")
    assert address.local_part == local_part and address.domain == "test.example"
    assert address.address == f"{written}@Test.Example"      # kept as it was written


@pytest.mark.parametrize("local_part,written", [
    ("a b", '"a b"'), ("ab", "ab"), ("a.b", "a.b"), (".a", '".a"'), ('a"b', '"a\\"b"'),
    ("a\\b", '"a\\\\b"'), ("", '""'),
])
def test_quoted_again_only_when_needed(local_part, written):
    assert quote_local_part(local_part) == written
    assert dequote_local_part(quote_local_part(local_part)) == local_part
