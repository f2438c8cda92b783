"""The pymta command: dispatch, error reporting and exit codes (in-process)."""
import io
import os
import sys

import pytest

from pymta.cli.main import mailq_main, main


@pytest.fixture
def conf(cli_conf):
    return cli_conf


def test_unknown_option_message_and_status(capsys):
    assert main(["-y"]) == 1
    assert capsys.readouterr().err == \
        "pymta abandoned: unknown, malformed, or incomplete option -y\n"


def test_broken_config_reported_with_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.conf"
    bad.write_text("# comment\nno_such_option = 1\n")
    assert main(["-C", str(bad), "-bV"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pymta: error in configuration file {bad} line 2: ")


def test_config_from_environment(conf, capsys, monkeypatch):
    monkeypatch.setenv("PYMTA_CONFIG", conf)
    assert main(["-bP", "qualify_domain"]) == 0
    assert capsys.readouterr().out == "qualify_domain = test.example\n"


def test_bV_ok(conf, capsys):
    assert main(["-C", conf, "-bV"]) == 0
    assert "pymta version 0.1.0" in capsys.readouterr().out


def test_bP_unknown_name_exits_1(conf, capsys):
    assert main(["-C", conf, "-bP", "qualify_domain", "bogus_thing"]) == 1
    out = capsys.readouterr().out
    assert "qualify_domain = test.example" in out and "bogus_thing" in out


def test_macro_override_with_D(tmp_path, capsys):
    path = tmp_path / "m.conf"
    path.write_text("DOM = one.example\nqualify_domain = DOM\n")
    assert main(["-C", str(path), "-DDOM=two.example", "-bP", "qualify_domain"]) == 0
    assert capsys.readouterr().out == "qualify_domain = two.example\n"


def test_bt_exit_codes(conf, capsys):
    assert main(["-C", conf, "-bt", "alice@test.example"]) == 0
    assert "router = local_users" in capsys.readouterr().out
    assert main(["-C", conf, "-bt", "zed@nowhere.example"]) == 2


def test_submission_queue_only_then_bp_and_Mrm(conf, tmp_path, capsys, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(b"Subject: hi\n\nbody\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["-C", conf, "-odq", "-fsomeone@else.example", "bob"]) == 0
    ids = os.listdir(tmp_path / "spool" / "input")
    msgid = [n[:-2] for n in ids if n.endswith("-H")][0]
    capsys.readouterr()
    assert main(["-C", conf, "-bpc"]) == 0
    assert capsys.readouterr().out == "1\n"
    assert mailq_main(["-C", conf]) == 0
    out = capsys.readouterr().out
    assert msgid in out and "bob@test.example" in out and "<someone@else.example>" in out
    assert main(["-C", conf, "-Mvh", msgid]) == 0
    assert f"{msgid}-H" in capsys.readouterr().out
    assert main(["-C", conf, "-Mf", msgid]) == 0
    assert "frozen" in capsys.readouterr().out
    main(["-C", conf, "-bp"])
    assert "*** frozen ***" in capsys.readouterr().out
    assert main(["-C", conf, "-Mrm", msgid]) == 0
    capsys.readouterr()
    main(["-C", conf, "-bpc"])
    assert capsys.readouterr().out == "0\n"


def test_submission_odi_delivers_now(conf, tmp_path, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(b"Subject: now\n\nbody\n.\nafter\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["-C", conf, "-odi", "alice@test.example"]) == 0
    mbox = (tmp_path / "mbox").read_bytes()
    assert b"Subject: now" in mbox and b"after" not in mbox


def test_no_recipients_is_an_error(conf, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Subject: x\n\nb\n")))
    assert main(["-C", conf, "-t"]) == 1
    assert "no recipients" in capsys.readouterr().err


def test_bP_user_and_group_lists_as_exim_shows_them(tmp_path, capsys):
    # exim4 -bP (4.96) on the same file: names joined by bare colons, ids by their
    # names, and nothing after "=" for an unset list
    path = tmp_path / "ids.conf"
    path.write_text("trusted_users = 0 : mail\ntrusted_groups = adm\nnever_users = root : daemon\n")
    names = ["trusted_users", "trusted_groups", "never_users", "admin_groups"]
    assert main(["-C", str(path), "-bP", *names]) == 0
    assert capsys.readouterr().out == ("trusted_users = root:mail\ntrusted_groups = adm\n"
                                       "never_users = root:daemon\nadmin_groups =\n")


def test_bP_shows_where_logs_and_pid_file_are_when_unset(tmp_path, capsys):
    # as exim4 -bP shows its compiled-in paths (exicyclog asks for log_file_path)
    path = tmp_path / "paths.conf"
    path.write_text(f"spool_directory = {tmp_path}/spool\n")
    assert main(["-C", str(path), "-bP", "log_file_path", "pid_file_path"]) == 0
    assert capsys.readouterr().out == (f"log_file_path = {tmp_path}/spool/log/%slog\n"
                                       f"pid_file_path = {tmp_path}/spool/pymta-daemon.pid\n")
    path.write_text(f"spool_directory = {tmp_path}/spool\nlog_file_path = syslog\n")
    assert main(["-C", str(path), "-bP", "log_file_path"]) == 0
    assert capsys.readouterr().out == "log_file_path = syslog\n"


def test_bP_exim_group_unset_is_exim_users_own_group(tmp_path, capsys):
    import grp
    import pwd
    user = pwd.getpwnam("nobody")
    path = tmp_path / "ids.conf"
    path.write_text("exim_user = nobody\n")
    assert main(["-C", str(path), "-bP", "exim_group"]) == 0
    assert capsys.readouterr().out == f"exim_group = {grp.getgrgid(user.pw_gid).gr_name}\n"
