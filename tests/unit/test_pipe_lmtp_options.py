"""pipe and lmtp transports, driven directly: command checks, output, config errors."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from pymta.address import Address
from pymta.config.model import ConfigError, DriverInstance
from pymta.delivery.job import DeliveryJob
from pymta.drivers import get_driver
from pymta.expand.context import ExpandContext
from pymta.spool.model import SpoolHeader, SpoolMessage
from pymta.taint import Tainted

MSGID = "1tAbCd-000042-Zz"


class Log:
    def __init__(self):
        self.lines = []

    def main(self, text, msgid=None):
        self.lines.append(text)


def make_job(tmp_path, body=b"body\n"):
    data = tmp_path / f"{MSGID}-D"
    data.write_bytes(f"{MSGID}-D\n".encode() + body)
    msg = SpoolMessage(MSGID, "sender", 1000, 1000, "s@src.example", 1700000000,
                       headers=[SpoolHeader(" ", "Subject: hello\n")])
    addrs = [Address("user@dst.example")]
    cfg = SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example"))
    ctx = ExpandContext(config=cfg, variables={"local_part": Tainted("user"),
                                               "domain": Tainted("dst.example")})
    return DeliveryJob(msg, str(tmp_path), str(data), addrs, ctx, Log(), cfg)


def make(**options):
    if os.geteuid() == 0:
        options.setdefault("user", "nobody")
    inst = DriverInstance("transport", "p", "pipe", options=options)
    cfg = SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example"))
    return get_driver("transport", "pipe")(inst, cfg)


def test_output_beyond_max_output_kills_the_command(tmp_path):
    job = make_job(tmp_path)
    make(command='/bin/sh -c "yes | head -c 100000; sleep 30"', max_output=1000).deliver(job)
    a = job.addresses[0]
    assert a.result == "fail" and "output exceeded 1000" in a.message


def test_allow_commands_and_restrict_to_path(tmp_path):
    job = make_job(tmp_path)
    make(command="/bin/true", allow_commands="/usr/bin/vacation").deliver(job)
    assert job.addresses[0].result == "fail"
    assert job.addresses[0].message == '"/bin/true" command not permitted by p transport'
    job = make_job(tmp_path)
    make(command="true", restrict_to_path=True).deliver(job)    # found on the path
    assert job.addresses[0].result == "ok", job.addresses[0].message
    job = make_job(tmp_path)
    make(command="/bin/true", restrict_to_path=True).deliver(job)
    assert job.addresses[0].result == "fail"


def test_expansion_failure_defers_with_exims_wording(tmp_path):
    job = make_job(tmp_path)
    make(command="/bin/echo ${nosuchop:x}").deliver(job)
    a = job.addresses[0]
    assert a.result == "defer" and a.basic_errno == 0
    assert a.message.startswith('Expansion of "${nosuchop:x}" from command '
                                '"/bin/echo ${nosuchop:x}" in p transport failed: ')


def test_command_that_does_not_read_its_input_is_judged_by_its_status(tmp_path):
    job = make_job(tmp_path, body=b"x" * 1_000_000 + b"\n")
    make(command="/bin/true").deliver(job)
    assert job.addresses[0].result == "ok", job.addresses[0].message


@pytest.mark.parametrize("options", [
    {"return_output": True, "return_fail_output": True},
    {"log_output": True, "log_fail_output": True},
    {"use_shell": True, "restrict_to_path": True},
])
def test_contradictory_options_are_configuration_errors(options):
    with pytest.raises(ConfigError):
        make(command="/bin/true", **options)


@pytest.mark.parametrize("options", [{}, {"socket": "/s", "command": "/bin/cat"}])
def test_lmtp_needs_exactly_one_of_socket_and_command(options):
    inst = DriverInstance("transport", "l", "lmtp", options=options)
    cfg = SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example"))
    with pytest.raises(ConfigError):
        get_driver("transport", "lmtp")(inst, cfg)


def test_lmtp_socket_that_is_not_there_defers(tmp_path):
    job = make_job(tmp_path)
    inst = DriverInstance("transport", "l", "lmtp", options={"socket": f"{tmp_path}/none"})
    cfg = SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example"))
    get_driver("transport", "lmtp")(inst, cfg).deliver(job)
    a = job.addresses[0]
    assert a.result == "defer"
    assert a.message == (f"Failed to connect to socket {tmp_path}/none for l transport: "
                         "No such file or directory")


@pytest.mark.parametrize("options", [{"command": "/bin/true"}, {"command_user": "nobody"}])
def test_queryprogram_needs_command_and_command_user(options):
    inst = DriverInstance("router", "q", "queryprogram", options=options)
    cfg = SimpleNamespace(main=SimpleNamespace(primary_hostname="test.example"))
    with pytest.raises(ConfigError):
        get_driver("router", "queryprogram")(inst, cfg)
