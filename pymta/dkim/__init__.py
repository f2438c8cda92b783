"""DomainKeys Identified Mail (RFC 6376, RFC 8463): signing (:mod:`pymta.dkim.sign`) and
verification of incoming signatures (the ``verify*`` modules)."""
