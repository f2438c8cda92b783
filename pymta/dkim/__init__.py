"""DKIM (RFC 6376): verification of incoming signatures (``verify*`` modules)."""
