"""DMARC (RFC 7489): policy records, organizational domains, evaluation, history."""
