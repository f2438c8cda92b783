"""pymta: a mail transfer agent that behaves like Exim 4.96."""

__version__ = "0.1.0"
#: The Exim release whose behaviour pymta follows.
EXIM_COMPAT_VERSION = "4.96"
