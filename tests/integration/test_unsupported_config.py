"""The daemon refuses to start when its configuration names a feature pymta lacks.

The error names the file and line and says "not supported in this version", and no port is
left listening: an unsupported feature is never loaded and then silently ignored.
"""
from __future__ import annotations

import socket

import pytest

from tests.integration.conftest import BASE_CONFIG
from tests.support.daemon import PymtaDaemon

# (where to insert, text inserted after that line, the line the error names, message start)
CASES = {
    "main option": ("qualify_domain = test.example\n", "keep_malformed = 1d\n",
                    "keep_malformed = ", 'main option "keep_malformed"'),
    "authenticator": ("*  *  F,1h,1s\n", "begin authenticators\nNTLM:\n"
                      "  driver = spa\n  public_name = NTLM\n",
                      "NTLM:", 'authenticator NTLM: authenticator driver "spa"'),
    "transport option": ("  driver = smtp\n", "  hosts_try_fastopen = *\n",
                         "  hosts_try_fastopen",
                         'transport remote_smtp: option "hosts_try_fastopen"'),
}


def _config(case: str) -> tuple[str, int, str]:
    after, insert, marker, start = CASES[case]
    text = BASE_CONFIG
    assert after in text
    text = text.replace(after, after + insert, 1)
    line = next(n for n, ln in enumerate(text.split("\n"), 1) if ln.startswith(marker))
    return text, line, start


@pytest.mark.parametrize("case", sorted(CASES))
def test_daemon_refuses_to_start(tmp_path, case):
    text, _line, start = _config(case)
    marker = CASES[case][2]
    d = PymtaDaemon(text, tmp_path, macros={"SINK_PORT": "1"})
    try:
        with pytest.raises(RuntimeError) as exc:
            d.start()
        # the harness may put lines (exim_user) in front: count in the file it wrote
        written = d.config_path.read_text().split("\n")
        line = next(n for n, ln in enumerate(written, 1) if ln.startswith(marker))
        out = str(exc.value)
        assert "pymta daemon exited with 1" in out
        assert (f"error in configuration file {d.config_path} line {line}: "
                f"{start} is not supported in this version of pymta") in out
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
    finally:
        d.stop()
