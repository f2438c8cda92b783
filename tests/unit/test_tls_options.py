"""pymta.tls.options, dhprimes and expander: option parsing and the expansion adapter."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from OpenSSL import SSL

from pymta.config.reader import load_config
from pymta.expand import ExpandContext
from pymta.taint import is_tainted
from pymta.tls import TLSConfigError
from pymta.tls.dhprimes import dh_pem_bits, named_dh_pem, named_prime
from pymta.tls.expander import ContextExpander, expand_option
from pymta.tls.options import (
    apply_dhparam,
    apply_eccurve,
    apply_verify_certificates,
    parse_openssl_options,
)
from pymta.tls.serverconf import server_options


def test_default_openssl_options():
    flags = parse_openssl_options(None)
    assert flags & SSL.OP_NO_TICKET and flags & SSL.OP_NO_RENEGOTIATION
    assert flags & SSL.OP_NO_SSLv3


def test_unset_openssl_options_in_a_configuration_is_exims_default(tmp_path):
    # The table's default is what the server reads when the option is unset: it was
    # "+no_sslv2" alone, which left renegotiation allowed.
    conf = tmp_path / "conf"
    conf.write_text("primary_hostname = x.example\ntls_certificate = /nonexistent.pem\n")
    options = server_options(load_config(str(conf))).openssl_options
    assert parse_openssl_options(options) == parse_openssl_options(None)


def test_openssl_options_add_and_subtract_in_order():
    assert parse_openssl_options("+all -all") == 0
    flags = parse_openssl_options("+no_tlsv1 +no_tlsv1_1 +cipher_server_preference")
    assert flags == SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1 | SSL.OP_CIPHER_SERVER_PREFERENCE
    assert parse_openssl_options("+all -dont_insert_empty_fragments") == \
        SSL.OP_ALL & ~SSL.OP_DONT_INSERT_EMPTY_FRAGMENTS
    # names of flags OpenSSL dropped are accepted and do nothing
    assert parse_openssl_options("+microsoft_sess_id_bug +single_dh_use") == 0
    assert parse_openssl_options("") == 0


@pytest.mark.parametrize("text", ["+no_such_thing", "no_ticket", "+"])
def test_bad_openssl_options(text):
    with pytest.raises(TLSConfigError, match="openssl_options"):
        parse_openssl_options(text)


def _is_probable_prime(n: int) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.mark.parametrize("name, head", [
    ("ffdhe2048", "ffffffffffffffffadf85458a2bb4a9aafdc5620273d3cf1"),
    ("ike14", "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd1"),
])
def test_named_primes_are_the_rfc_safe_primes(name, head):
    p = named_prime(name)
    assert p.bit_length() == 2048 and hex(p)[2:].startswith(head)
    assert hex(p).endswith("ffffffffffffffff")
    assert _is_probable_prime(p) and _is_probable_prime((p - 1) // 2)
    assert dh_pem_bits(named_dh_pem(name)) == 2048


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_recognises_the_named_group(tmp_path):
    path = tmp_path / "dh.pem"
    path.write_bytes(named_dh_pem("ffdhe3072"))
    out = subprocess.run(["openssl", "pkeyparam", "-in", str(path), "-text", "-noout"],
                         capture_output=True, text=True, check=True).stdout
    assert "GROUP: ffdhe3072" in out


def test_dhparam_values(tmp_path):
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    for value in (None, "", "none", "default", "ffdhe2048"):
        apply_dhparam(ctx, value)
    path = tmp_path / "dh.pem"
    path.write_bytes(named_dh_pem("ffdhe3072"))
    apply_dhparam(ctx, str(path))
    apply_dhparam(ctx, str(path), max_bits=2236)     # too large: ignored, no error
    with pytest.raises(TLSConfigError, match="cannot open"):
        apply_dhparam(ctx, str(tmp_path / "missing.pem"))
    with pytest.raises(TLSConfigError, match="unknown"):
        apply_dhparam(ctx, "ike99")
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n")
    with pytest.raises(TLSConfigError):
        apply_dhparam(ctx, str(junk))


def test_eccurve_values():
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_eccurve(ctx, "auto")
    apply_eccurve(ctx, "P-384")
    with pytest.raises(TLSConfigError, match="tls_eccurve"):
        apply_eccurve(ctx, "brainpool-nope")


def test_verify_certificates_missing_file():
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_verify_certificates(ctx, "system")
    with pytest.raises(TLSConfigError, match="tls_verify_certificates"):
        apply_verify_certificates(ctx, "/nonexistent/ca.pem")


def test_context_expander_sets_tainted_sni():
    expand = ContextExpander(ExpandContext())
    assert expand("/certs/${tls_in_sni}.pem", {"tls_in_sni": "a.test"}) == "/certs/a.test.pem"
    seen = []
    ctx = ExpandContext()
    ctx.child = lambda **v: (seen.append(v), ExpandContext.child(ctx, **v))[1]
    ContextExpander(ctx)("$tls_in_sni", {"tls_in_sni": "b.test", "host": "h"})
    assert is_tainted(seen[0]["tls_in_sni"]) and not is_tainted(seen[0]["host"])


def test_forced_failure_means_unset():
    expand = ContextExpander(ExpandContext())
    assert expand_option(expand, "${if eq{a}{b}{x}fail}", {}) is None
    assert expand_option(expand, None, {}) is None
    assert expand_option(expand, "/x", {}) == "/x"
