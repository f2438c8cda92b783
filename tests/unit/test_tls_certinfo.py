"""pymta.tls.certinfo: ${certextract} fields and DNs in Exim's format.

The expected strings were produced by the installed Exim 4.96 (``exim4 -bd``
with a STARTTLS client presenting a certificate built exactly as
:func:`oracle_cert` builds it, the fields printed from the DATA ACL with
``${certextract{...}{$tls_in_peercert}}``).
"""
from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from pymta.tls import TLSConfigError
from pymta.tls.certinfo import certextract, distinguished_name


@pytest.fixture(scope="module")
def oracle_cert() -> x509.Certificate:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pymta test CA")])
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime(2026, 1, 5, 3, 4, 5, tzinfo=datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex, Org"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "c2.example.test")])
    sans = [x509.DNSName("c2.example.test"), x509.DNSName("*.w.example.test"),
            x509.RFC822Name("a@b.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    aia = [x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                  x509.UniformResourceIdentifier("http://ocsp.example.test/"))]
    cdp = [x509.DistributionPoint([x509.UniformResourceIdentifier(
        "http://crl.example.test/ca.crl")], None, None, None)]
    return (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(0x1234abcd)
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=800))
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .add_extension(x509.AuthorityInformationAccess(aia), False)
            .add_extension(x509.CRLDistributionPoints(cdp), False)
            .sign(ca_key, hashes.SHA256()))


@pytest.mark.parametrize("field, expected", [
    ("subject", "C=DE,O=Ex\\, Org,CN=c2.example.test"),
    ("issuer", "CN=pymta test CA"),
    ("notbefore", "Jan  5 03:04:05 2026 UTC"),
    ("notafter", "Mar 15 03:04:05 2028 UTC"),
    ("serial_number", "1234abcd"),
    ("sig_algorithm", "RSA-SHA256"),
    ("subj_altname", "DNS=c2.example.test\nDNS=*.w.example.test\nMAIL=a@b.test"),
    ("version", "3"),
    ("ocsp_uri", "http://ocsp.example.test/"),
    ("crl_uri", "http://crl.example.test/ca.crl"),
    ("subject,CN", "c2.example.test"),
    ("subj_altname,>;dns", "DNS=c2.example.test;DNS=*.w.example.test;MAIL=a@b.test"),
])
def test_fields_match_exim(oracle_cert, field, expected):
    assert certextract(field, oracle_cert) == expected


def test_modifiers_from_the_spec(oracle_cert):
    assert certextract("subj_altname,dns,>;", oracle_cert) == "c2.example.test;*.w.example.test"
    assert certextract("subj_altname,mail", oracle_cert) == "a@b.test"
    assert certextract("notbefore,int", oracle_cert) == str(int(datetime.datetime(
        2026, 1, 5, 3, 4, 5, tzinfo=datetime.UTC).timestamp()))
    assert certextract("subject,O", oracle_cert) == "Ex, Org"
    # a separator inside an element is doubled
    assert certextract("subject,O,> ", oracle_cert) == "Ex,  Org"


def test_time_zone_and_signature(oracle_cert):
    tz = datetime.timezone(datetime.timedelta(hours=2), "CEST")
    assert certextract("notbefore", oracle_cert, tz) == "Jan  5 05:04:05 2026 CEST"
    sig = certextract("signature", oracle_cert)
    assert sig == " ".join(f"{b:02x}" for b in oracle_cert.signature)


def test_serial_keeps_the_der_sign_byte():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x80ff)
            .not_valid_before(now).not_valid_after(now).sign(key, hashes.SHA256()))
    assert certextract("serial_number", cert) == "0080ff"
    assert certextract("sig_algorithm", cert) == "ECDSA-SHA256"
    assert certextract("subj_altname", cert) is None
    assert certextract("ocsp_uri", cert) is None


def test_unknown_field_is_an_error(oracle_cert):
    with pytest.raises(TLSConfigError):
        certextract("nosuchfield", oracle_cert)


def test_distinguished_name_keeps_certificate_order(oracle_cert):
    assert distinguished_name(oracle_cert.subject) == "C=DE,O=Ex\\, Org,CN=c2.example.test"


def test_certextract_expansion_item(oracle_cert):
    """${certextract} in the expansion language, on a certificate variable (PEM)."""
    from pymta.expand import ExpandContext, expand_string
    from pymta.taint import taint
    from pymta.tls.certinfo import pem_text
    ctx = ExpandContext(variables={"tls_in_peercert": taint(pem_text(oracle_cert))})
    assert expand_string("${certextract{subject,CN}{$tls_in_peercert}}", ctx) == \
        "c2.example.test"
    assert expand_string("${certextract{issuer}{$tls_in_peercert}{<$value>}{none}}", ctx) \
        == "<CN=pymta test CA>"
    # no certificate (a connection without one): the "no" string
    assert expand_string("${certextract{subject}{$tls_in_ourcert}{yes}{none}}", ctx) == "none"
    with pytest.raises(Exception, match="unrecognised field"):
        expand_string("${certextract{colour}{$tls_in_peercert}}", ctx)
