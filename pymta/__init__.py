"""pymta: a mail transfer agent that behaves like Exim 4.96."""

# Imported first so that the test-only PYMTA_TEST_CLOCK_OFFSET moves the whole process's
# clock before any other module reads the time (see pymta/clock.py).
from pymta import clock as _clock  # noqa: F401

__version__ = "0.1.0"
#: The Exim release whose behaviour pymta follows.
EXIM_COMPAT_VERSION = "4.96"
