"""write_message through a real transport filter command: the transport's conversions
(check/escape strings, CRLF, dot-stuffing, the final dot line) apply to the filter's
output, and a failing or silent filter raises TransportFilterFailed."""
from __future__ import annotations

import io
import os
import time

import pytest

from pymta.transports.content import write_message
from pymta.transports.filter import TransportFilter, TransportFilterFailed

HEADER = b"Subject: hi\n\n"


def _filter(*argv: str, timeout: float = 10) -> TransportFilter:
    return TransportFilter(list(argv), {"PATH": "/bin:/usr/bin"}, None, None, timeout)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "x-D"
    path.write_bytes(b"x-D\nfirst line\nxrom here\n.dot\n")
    return str(path)


def test_filter_sees_lf_message_and_its_output_is_escaped(data):
    out = io.BytesIO()
    n = write_message(out, HEADER, data, check_string=b"From ", escape_string=b">From ",
                      prefix=b"P\n", suffix=b"S\n",
                      transport_filter=_filter("/bin/sed", "s/^xrom /From /"))
    # the filter made the "From " line; the escape applies to what it wrote; prefix
    # and suffix are not filtered
    assert out.getvalue() == (b"P\nSubject: hi\n\nfirst line\n>From here\n.dot\nS\n")
    assert n == len(out.getvalue())


def test_smtp_form_is_crlf_dot_stuffed_with_a_final_newline(data):
    out = io.BytesIO()
    write_message(out, HEADER, data, use_crlf=True, dot_stuff=True, end_dot=True,
                  transport_filter=_filter("/usr/bin/tr", "a-z", "A-Z"))
    assert out.getvalue() == b"SUBJECT: HI\r\n\r\nFIRST LINE\r\nXROM HERE\r\n..DOT\r\n.\r\n"
    out = io.BytesIO()
    write_message(out, HEADER, data, use_crlf=True, dot_stuff=True, end_dot=True,
                  transport_filter=_filter("/usr/bin/head", "-c", "20"))
    assert out.getvalue() == b"Subject: hi\r\n\r\nfirst l\r\n.\r\n"


def test_non_zero_exit_raises(data):
    with pytest.raises(TransportFilterFailed) as e:
        write_message(io.BytesIO(), HEADER, data,
                      transport_filter=_filter("/bin/sh", "-c", "cat >/dev/null; exit 3"))
    assert e.value.status == 3 and not e.value.timed_out
    assert e.value.text(" while writing to f") == \
        "transport filter process failed (3) while writing to f"
    assert e.value.errno == -24


def test_a_command_that_cannot_run_is_127(data):
    with pytest.raises(TransportFilterFailed) as e:
        write_message(io.BytesIO(), HEADER, data,
                      transport_filter=_filter("/nonexistent/filter"))
    assert e.value.status == 127
    assert e.value.text().endswith("(127): unable to execute command")


def test_silence_beyond_the_timeout_kills_the_group(data, tmp_path):
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(TransportFilterFailed) as e:
        write_message(io.BytesIO(), HEADER, data, transport_filter=_filter(
            "/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait", timeout=0.5))
    assert time.monotonic() - started < 10
    assert e.value.timed_out and e.value.errno == 110
    # the filter's own child (the sleep) went with it
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the filter's child survived the timeout")
