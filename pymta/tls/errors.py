"""Errors raised by the TLS package."""
from __future__ import annotations


class TLSConfigError(Exception):
    """A TLS option has a value that cannot be used (bad name, unreadable file, ...).

    The SMTP server answers STARTTLS with 454 when this is raised while building
    the context, as Exim does for a server configuration problem.
    """
