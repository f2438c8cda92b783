"""TLS for pymta: one library used by the SMTP server and the smtp transport.

Built on pyOpenSSL (``from OpenSSL import SSL``), so it follows the OpenSSL
variant of Exim's options (Exim 4.96 chapter "Encrypted SMTP connections using
TLS/SSL").  Modules, each with one job:

- :mod:`.expander` -- the expansion callable the package takes (no SMTP imports)
  and an adapter to :mod:`pymta.expand`.
- :mod:`.options` -- ``openssl_options``, ``tls_dhparam``, ``tls_eccurve``,
  ``tls_verify_certificates``/``tls_crl`` applied to a context.
- :mod:`.server` -- server contexts: certificates (RSA and EC lists), SNI
  re-expansion, client-certificate verification, OCSP stapling, ALPN.
- :mod:`.client` -- client contexts for the smtp transport, host name checks,
  stapled OCSP response checks.
- :mod:`.tickets` -- session-ticket key generations rotated by the master.
- :mod:`.session` -- the facts of an established session: ``$tls_in_*`` /
  ``$tls_out_*`` values, log fields (X=, CV=, DN=, SNI=) and the Received: phrase.
- :mod:`.certinfo` -- ``${certextract}`` fields and Distinguished Names.
"""
from __future__ import annotations

from .errors import TLSConfigError

__all__ = ["TLSConfigError"]
