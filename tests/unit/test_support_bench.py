"""Tests for the benchmark driver's pieces (bench/run.py, bench/sink.py) that run without an MTA."""

import importlib.util
import smtplib
import sys
from pathlib import Path

import pytest

from tests.support import SmtpTestClient

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


run = _load("run")
sink = _load("sink")


def test_fast_sink_counts_pipelined_messages():
    with sink.FastSink("127.0.0.1", 0) as s:
        with SmtpTestClient(s.port) as c:
            c.ehlo()
            assert "PIPELINING" in c.extensions()
            c.send_raw(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
            assert [c.read_reply()[0] for _ in range(3)] == [250, 250, 354]
            c.send_raw(b"..dot\r\nbody\r\n.\r\n")
            assert c.read_reply()[0] == 250
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as smtp:
            smtp.sendmail("a@x", ["b@y"], b"Subject: 2\r\n\r\nx\r\n")
        assert s.count == 2
        assert s.last_time > 0


def test_render_config_replaces_all_placeholders(tmp_path):
    out = tmp_path / "bench.conf"
    values = {"SPOOL": "/s", "MAILDIR": "/m/inbox", "SMTP_PORT": "2525",
              "SINK_HOST": "127.0.0.2", "SINK_PORT": "2526", "RUN_USER": "u",
              "RUN_GROUP": "g", "QUEUE_ONLY_MACRO": "QUEUE_ONLY = yes",
              "DELIVERY_USER_MACRO": "", "TLS_MACRO": "", "ANTISPAM_MACRO": "",
              "DKIM_MACRO": ""}
    run.render_config(BENCH / "bench.conf.in", out, values)
    text = out.read_text()
    assert "SPOOL = /s\n" in text and "SINK_PORT = 2526\n" in text
    assert "QUEUE_ONLY = yes" in text
    assert "@" not in "".join(ln for ln in text.splitlines() if not ln.startswith("#"))


def test_render_config_rejects_missing_value(tmp_path):
    with pytest.raises(ValueError, match="SINK_PORT"):
        run.render_config(BENCH / "bench.conf.in", tmp_path / "c",
                          {"SPOOL": "/s", "MAILDIR": "/m", "SMTP_PORT": "1",
                           "SINK_HOST": "h", "RUN_USER": "u", "RUN_GROUP": "g",
                           "QUEUE_ONLY_MACRO": "", "DELIVERY_USER_MACRO": "",
                           "TLS_MACRO": "", "ANTISPAM_MACRO": "", "DKIM_MACRO": ""})


@pytest.mark.parametrize("delivery_user", ["", "nobody"])
def test_bench_config_loads_in_pymta(tmp_path, delivery_user):
    """pymta's reader loads the bench configuration; the delivery user is named only
    when it is not root (root is always on never_users)."""
    from pymta.config import load_config
    out = tmp_path / "bench.conf"
    run.render_config(BENCH / "bench.conf.in", out, {
        "SPOOL": str(tmp_path / "spool"), "MAILDIR": str(tmp_path / "md"), "SMTP_PORT": "2525",
        "SINK_HOST": "127.0.0.2", "SINK_PORT": "2526", "RUN_USER": "root", "RUN_GROUP": "root",
        "QUEUE_ONLY_MACRO": "QUEUE_ONLY = yes",
        "DELIVERY_USER_MACRO": f"DELIVERY_USER = {delivery_user}" if delivery_user else "",
        "TLS_MACRO": "", "ANTISPAM_MACRO": "", "DKIM_MACRO": ""})
    config = load_config(str(out))
    assert config.main.queue_only is True
    assert config.main.spool_directory == str(tmp_path / "spool")
    import pwd
    user = config.transports["local_maildir"].options.get("user")
    expected = pwd.getpwnam(delivery_user).pw_uid if delivery_user else None
    assert (user if user not in ("", None) else None) == expected


def test_relay_dkim_mode_signs_in_the_smtp_transport(tmp_path):
    from pymta.config import load_config
    out = tmp_path / "bench.conf"
    key = run.make_dkim_key(tmp_path)
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    run.render_config(BENCH / "bench.conf.in", out, {
        "SPOOL": str(tmp_path / "spool"), "MAILDIR": str(tmp_path / "md"), "SMTP_PORT": "2525",
        "SINK_HOST": "127.0.0.2", "SINK_PORT": "2526", "RUN_USER": "root", "RUN_GROUP": "root",
        "QUEUE_ONLY_MACRO": "", "DELIVERY_USER_MACRO": "", "TLS_MACRO": "",
        "ANTISPAM_MACRO": "", "DKIM_MACRO": f"DKIM_KEY = {key}"})
    options = load_config(str(out)).transports["remote_smtp"].options
    assert options["dkim_private_key"] == str(key)
    assert options["dkim_domain"] == "bench.test"


def test_markdown_table_gives_the_signing_cost():
    s = run.Settings(sessions=2, per_session=3, size=100, smtpload=Path("x"), timeout=1,
                     keep=False, pymta_cmd=["p"], exim_cmd="e", run_user="u", run_group="g")
    results = [run.RunResult("pymta", "relay", 6, rate=100.0),
               run.RunResult("pymta", "relay_dkim", 6, rate=80.0)]
    assert ("pymta: relay_dkim/relay = 0.80 (signing costs 20% of relay throughput)"
            in run.markdown_table(results, s).splitlines())


def test_count_files_by_suffix(tmp_path):
    (tmp_path / "input").mkdir()
    for name in ("a-H", "a-D", "b-H"):
        (tmp_path / "input" / name).write_text("")
    assert run.count_files(tmp_path / "input", "-H") == 2
    assert run.count_files(tmp_path / "input") == 3
    assert run.count_files(tmp_path / "missing") == 0


def test_markdown_table_has_ratios():
    s = run.Settings(sessions=2, per_session=3, size=100, smtpload=Path("x"), timeout=1,
                     keep=False, pymta_cmd=["p"], exim_cmd="e", run_user="u", run_group="g")
    results = [run.RunResult("pymta", "accept", 6, rate=50.0),
               run.RunResult("exim", "accept", 6, rate=100.0),
               run.RunResult("pymta", "local", 6, rate=10.0, note="timed out"),
               run.RunResult("exim", "local", 6, rate=40.0)]
    table = run.markdown_table(results, s)
    lines = table.splitlines()
    assert lines[0] == "| mode | pymta msg/s | exim msg/s | pymta/exim |"
    assert "| accept | 50.0 | 100.0 | 0.50 |" in lines
    assert "| local | 10.0* | 40.0 | 0.25 |" in lines
    assert not any(ln.startswith("| relay") for ln in lines)


def test_daemon_command_uses_exim_flags():
    s = run.Settings(sessions=1, per_session=1, size=1, smtpload=Path("x"), timeout=1,
                     keep=False, pymta_cmd=["python", "-m", "pymta"], exim_cmd="/usr/sbin/exim4",
                     run_user="u", run_group="g")
    assert run.daemon_command("exim", s, Path("/c"), 2525) == \
        ["/usr/sbin/exim4", "-C", "/c", "-bdf", "-oX", "2525"]
    assert run.daemon_command("pymta", s, Path("/c"), 1)[:3] == ["python", "-m", "pymta"]


def test_antispam_mode_daemon_sees_the_benchmark_resolver(tmp_path):
    """The antispam mode runs each daemon with the benchmark's resolv.conf bind-mounted
    over /etc/resolv.conf in a private mount namespace (Exim has no resolver option)."""
    resolv = tmp_path / "resolv.conf"
    s = run.Settings(sessions=1, per_session=1, size=10, smtpload=BENCH / "smtpload.py",
                     timeout=1, keep=False, pymta_cmd=["pymta"], exim_cmd="exim4",
                     run_user="u", run_group="g")
    plain = run.daemon_command("exim", s, tmp_path / "c", 25)
    assert plain == ["exim4", "-C", str(tmp_path / "c"), "-bdf", "-oX", "25"]
    wrapped = run.daemon_command("exim", s, tmp_path / "c", 25, resolv)
    assert wrapped[:2] == ["unshare", "--mount"]
    assert wrapped[-len(plain):] == plain and str(resolv) in wrapped
