"""Top-level pytest configuration.

Makes the repository root importable (``import tests.support``, ``import pymta``
without installing the package) and, when the suite runs as root, gives it a temporary
directory of its own outside ``/tmp/pytest-of-root``.  Daemons started as root run as an
unprivileged exim_user that must be able to reach their test directories; every new
pytest session resets ``/tmp/pytest-of-root`` to mode 0700, which would lock out the
daemons of another session running at the same time.
"""

import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import settings

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support.daemon import RUNNING  # noqa: E402  (needs the path above)

_OWN_BASETEMP: list[str] = []

# Property tests draw the same examples on every run, so a result does not depend on the
# day; HYPOTHESIS_PROFILE=explore draws new ones (to hunt for counterexamples).
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True)
def _stop_leftover_daemons():
    """Stop the daemons a test started and left running (a daemon and its receivers
    must not outlive the test that made them)."""
    yield
    for daemon in list(RUNNING):
        daemon.stop()


def pytest_configure(config):
    if os.geteuid() == 0 and not config.option.basetemp:
        base = tempfile.mkdtemp(prefix="pymta-tests-")
        os.chmod(base, 0o711)
        config.option.basetemp = base
        _OWN_BASETEMP.append(base)


def pytest_sessionfinish(session, exitstatus):
    # kept after a failure, for the diagnostics; removed after a clean run
    if exitstatus == 0:
        for base in _OWN_BASETEMP:
            shutil.rmtree(base, ignore_errors=True)
    else:
        for base in _OWN_BASETEMP:
            session.config.pluginmanager.get_plugin("terminalreporter").write_line(
                f"test directories kept in {base}")
