"""Internationalised mail addresses (RFC 6530-6533): A-label conversion.

Exim converts a UTF-8 domain to its IDNA A-label form ("xn--" + punycode per label)
and, for local parts, applies the same punycode encoding to the whole local part
(there is no standard for that; it is what Exim's utf8_localpart_to_alabel does).
The smtp transport uses these to "downconvert" the envelope of an SMTPUTF8 message
for a server that does not offer SMTPUTF8.
"""

from __future__ import annotations


def label_to_alabel(label: str) -> str:
    """One DNS label (or a whole local part) in A-label form; ASCII is unchanged."""
    if label.isascii():
        return label
    return "xn--" + label.encode("punycode").decode("ascii")


def domain_to_alabel(domain: str) -> str:
    """A domain with every non-ASCII label in A-label form (labels lower-cased)."""
    return ".".join(label_to_alabel(lab.lower()) for lab in domain.split("."))


def address_to_alabel(address: str) -> str:
    """``local@domain`` with both halves converted; "" (the null sender) stays ""."""
    local, at, domain = address.rpartition("@")
    if not at:
        return label_to_alabel(address)
    return f"{label_to_alabel(local)}@{domain_to_alabel(domain)}"


def first_non_ascii(text: str) -> int:
    """The index of the first non-ASCII character of ``text``, or -1."""
    if text.isascii():
        return -1
    for i, c in enumerate(text):
        if ord(c) > 127:
            return i
    return -1
