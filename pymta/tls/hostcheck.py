"""tls_verify_cert_hostnames: does a server certificate name the host we connected to?

Rules (Exim 4.96 with OpenSSL): the subjectAltName dNSName entries are used, the
subject's CN only when the certificate has no dNSName; an IP address is compared
with the iPAddress entries.  A wildcard is allowed only as the whole first label
of a name with three or more labels and stands for exactly one label.
Comparison ignores case and a trailing dot.
"""
from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID


def _labels(name: str) -> list[str]:
    return name.rstrip(".").lower().split(".")


def name_matches(pattern: str, host: str) -> bool:
    """True when certificate name ``pattern`` covers ``host``."""
    p, h = _labels(pattern), _labels(host)
    if len(p) != len(h) or not all(h):
        return False
    if p[0] == "*":
        if len(p) < 3:
            return False
        return p[1:] == h[1:]
    if any("*" in label for label in p):
        return False            # partial or embedded wildcards are not accepted
    return p == h


def certificate_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses a certificate is for (CN only without DNS SANs)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    if not dns:
        dns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return dns, ips


def hostname_matches(cert: x509.Certificate, host: str) -> bool:
    """True when ``cert`` is valid for ``host`` (a DNS name or an IP address)."""
    dns, ips = certificate_names(cert)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return any(name_matches(pattern, host) for pattern in dns)
    return any(ipaddress.ip_address(ip) == address for ip in ips)
