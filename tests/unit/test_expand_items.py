"""Tests for the less common expansion items and operators (checked against exim -be)."""
from __future__ import annotations

import re

import pytest

from pymta.clock import FixedClock
from pymta.expand import ExpandContext, ExpandError, ExpandFail, expand_string
from pymta.taint import Tainted


def x(text: str, clock=None, **variables) -> str:
    ctx = ExpandContext(variables=dict(variables))
    if clock is not None:
        ctx.clock = clock
    return expand_string(text, ctx)


def test_prvs_sign_and_check_roundtrip():
    signed = x("${prvs{user@b.test}{secret}{1}}")
    assert re.fullmatch(r"prvs=1\d{3}[0-9a-f]{6}=user@b\.test", signed)
    ctx = ExpandContext(variables={"a": signed})
    assert expand_string("${prvscheck{$a}{secret}}", ctx) == "user@b.test"
    assert ctx.variables["prvscheck_result"] == "1"
    assert expand_string("${prvscheck{$a}{wrong}{r=$prvscheck_result}}", ctx) == "r="
    assert x("${prvscheck{not-prvs@b.test}{secret}}") == ""


def test_prvs_hash_matches_exim_for_known_day():
    # Exim 4.96 gave prvs=17853f6613=user@b.test on day 20778 (+7 -> 785)
    day = FixedClock(20778 * 86400 + 100)
    assert x("${prvs{user@b.test}{secret}{1}}", day) == "prvs=17853f6613=user@b.test"


@pytest.mark.parametrize("expr,out", [
    ("${imapfolder{Foo/Bar}}", "Foo.Bar"),
    ("${imapfolder{Foo/Bar}{.}{/}}", "Foo&AC8-Bar"),
    ("${imapfolder{R\u00e4ksm\u00f6rg\u00e5s}}", "R&AOQ-ksm&APY-rg&AOU-s"),
    ("${hexquote:a\\x01b c}", "a\\x01b\\x20c"),
    ("${utf8_domain_to_alabel:b\u00fccher.de}", "xn--bcher-kva.de"),
    ("${utf8_domain_from_alabel:xn--bcher-kva.de}", "b\u00fccher.de"),
    ("${quote_ldap:two * two}", "two%20%5C2A%20two"),
    ("${quote_ldap_dn: a b }", "%5C%20a%20b%5C%20"),
    ("${nhash{8}{64}{supercalifragilisticexpialidocious}}", "6/33"),
    ("${length_2:h\u00e9llo}", "h\udcc3"),          # bytes, like Exim
    ("${strlen:h\u00e9llo}", "6"),
    ("${sha1:abc}", "A9993E364706816ABA3E25717850C26C9CD0D89D"),
    ("${extract json{a}{\\{\"a\":\\{\"b\":[1,2]\\}\\}}}", '{"b":[1,2]}'),
    ("${if match{abc}{(?<x>b)}{$1}}", "b"),
    ("${map{<\\n a\\n b}{x}}", "x\nx"),
    ("${listquote{:}{}}", " "),
    ("${eval:9223372036854775807*2}", "-2"),
    ("${eval:1<<64}", "1"),
])
def test_operator_results(expr, out):
    assert x(expr) == out


def test_run_item():
    assert x("${run{/bin/echo hi}}") == "hi\n"
    assert x("${run{/bin/sh -c \"exit 3\"}{y}{n:$runrc}}") == "n:3"
    assert x("${run{/nonexistent/cmd}{y}{n}}") == "n"
    with pytest.raises(ExpandFail):
        x("${run{/bin/false}{y}fail}")
    ctx = ExpandContext()
    expand_string("${run{/bin/echo kept}{ok}}", ctx)
    assert ctx.variables["value"] == "kept\n"        # $value persists after run


def test_run_refuses_tainted_command():
    with pytest.raises(ExpandError, match="tainted"):
        x("${run{$c}}", c=Tainted("/bin/echo"))


def test_readfile_and_eol(tmp_path):
    f = tmp_path / "f"
    f.write_text("a\nb\n")
    assert x(f"${{readfile{{{f}}}{{|}}}}") == "a|b|"
    with pytest.raises(ExpandError):
        x("${readfile{/nonexistent/file}}")
    with pytest.raises(ExpandError, match="Tainted"):
        x("${readfile{$f}}", f=Tainted(str(f)))


def test_acl_item_uses_runner():
    calls = []

    def runner(name, args, ctx):
        calls.append((name, list(args), ctx.variables.get("acl_arg1")))
        return type("R", (), {"verdict": "accept", "message": "hello"})()
    ctx = ExpandContext(acl_runner=runner)
    assert expand_string("${acl{check}{one}}", ctx) == "hello"
    assert calls == [("check", ["one"], "one")]
    with pytest.raises(ExpandError):
        x("${acl{nosuchacl}}")


def test_env_respects_keep_environment(monkeypatch):
    import types

    from pymta.config.model import Config
    monkeypatch.setenv("PYMTA_TEST_VAR", "v")
    cfg = Config(filename="x", main=types.SimpleNamespace(keep_environment=""))
    ctx = ExpandContext(config=cfg)
    assert expand_string("${env{PYMTA_TEST_VAR}{$value}{unset}}", ctx) == "unset"
    assert x("${env{PYMTA_TEST_VAR}{$value}{unset}}") == "v"


def test_run_allows_tainted_arguments_after_literal_command():
    assert x("${run{/bin/echo $a}}", a=Tainted("arg")) == "arg\n"


def test_srs_encode_and_inbound_srs():
    day = FixedClock(20778 * 86400 + 5)     # Exim gave "jk" on day 20778
    assert x("${srs_encode{secret}{Other.Person@Example.COM}{orig.test}}", day) == \
        "SRS0=6195=jk=Example.COM=Other.Person@orig.test"
    assert x("${srs_encode{secret}{}{orig.test}}", day) == ""
    assert x("${if inbound_srs{SRS0=12a9=jk=b.test=user}{secret}{$srs_recipient}{n}}",
             day) == "user@b.test"
    assert x("${if inbound_srs{SRS0=12a9=jk=b.test=usex}{secret}{$srs_recipient}{n}}",
             day) == "n"
    assert x("${if inbound_srs{SRS0=ffff=jk=b.test=usex}{}{$srs_recipient}{n}}", day) == \
        "usex@b.test"


def test_acl_condition_and_verdicts():
    class R:
        def __init__(self, verdict, message=None):
            self.verdict, self.message = verdict, message

    def runner(name, args, ctx):
        return {"ok": R("accept", "m:" + ctx.variables["acl_arg1"]), "no": R("deny", "den"),
                "later": R("defer")}[name]
    ctx = ExpandContext(acl_runner=runner)
    assert expand_string("${if acl{{ok}{a}}{y:$value}{n}}", ctx) == "y:m:a"
    assert expand_string("${if acl{{no}}{y}{n:$value}}", ctx) == "n:den"
    assert expand_string("${acl{no}}", ctx) == "den"
    with pytest.raises(ExpandFail):
        expand_string("${acl{later}}", ctx)
    assert "acl_arg1" not in ctx.variables      # restored after the call


def test_readsocket_unix(tmp_path):
    import socket
    import threading
    path = str(tmp_path / "s")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            data = b""
            while chunk := conn.recv(100):
                data += chunk
            conn.sendall(b"got " + data + b"\nline2\n")
    t = threading.Thread(target=serve)
    t.start()
    try:
        assert x(f"${{readsocket{{{path}}}{{ping}}{{2s}}{{|}}}}") == "got ping|line2|"
    finally:
        t.join(5)
        srv.close()
    assert x(f"${{readsocket{{{tmp_path}/none}}{{x}}{{1s}}{{}}{{fallback}}}}") == "fallback"
    with pytest.raises(ExpandError):
        x(f"${{readsocket{{{tmp_path}/none}}{{x}}}}")
