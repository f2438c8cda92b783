"""Re-export of :mod:`pymta.address` for callers not yet moved (pymta/smtp/session.py)."""
from pymta.address import Address, Host

__all__ = ["Address", "Host"]
