"""Taint rules of Exim 4.96 (checked with exim4 -bem): tainted file names and commands
are refused, lookups de-taint their results, ``exists`` accepts a tainted name."""
from __future__ import annotations

import io
import socket
import threading
import types

import pytest

from pymta.config.model import Config
from pymta.expand import ExpandContext, ExpandError, expand_string
from pymta.expand.be import run_be
from pymta.taint import Tainted, is_tainted


def x(text: str, **variables) -> str:
    return expand_string(text, ExpandContext(variables=dict(variables)))


def test_readfile_tainted_name(tmp_path):
    f = tmp_path / "f"
    f.write_text("data")
    assert x("${readfile{%s}}" % f) == "data"
    with pytest.raises(ExpandError, match="Tainted .* not permitted"):
        x("${readfile{$v}}", v=Tainted(str(f)))


def test_run_tainted_command_but_tainted_argument_ok():
    with pytest.raises(ExpandError, match="tainted"):
        x("${run{$v hi}}", v=Tainted("/bin/echo"))
    ctx = ExpandContext(variables={"v": Tainted("hi")})
    assert expand_string("${run{/bin/echo $v}}", ctx) == "hi\n"
    assert ctx.variables["runrc"] == "0"


@pytest.mark.parametrize("ltype", ["lsearch", "wildlsearch", "nwildlsearch", "iplsearch",
                                   "cdb", "lmdb", "dbm", "json"])
def test_lookup_tainted_file_name(tmp_path, ltype):
    f = tmp_path / "file"
    f.write_text("k: v\n")
    with pytest.raises(ExpandError, match="Tainted .* not permitted"):
        x("${lookup{k}%s{$v}}" % ltype, v=Tainted(str(f)))


def test_dsearch_tainted_directory(tmp_path):
    with pytest.raises(ExpandError, match="Tainted"):
        x("${lookup{k}dsearch{$v}}", v=Tainted(str(tmp_path)))


def test_tainted_key_is_fine_and_result_is_clean(tmp_path):
    f = tmp_path / "file"
    f.write_text("k: v\n")
    r = x("${lookup{$k}lsearch{%s}}" % f, k=Tainted("k"))
    assert r == "v" and not is_tainted(r)
    r = x("${lookup{$k}lsearch{%s}{$value}}" % f, k=Tainted("k"))
    assert r == "v" and not is_tainted(r)


def test_readsocket_tainted_path(tmp_path):
    path = str(tmp_path / "s")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def serve():
        c, _ = srv.accept()
        c.recv(100)
        c.sendall(b"answer")
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert x("${readsocket{%s}{q}}" % path) == "answer"
    t.join(2)
    srv.close()
    with pytest.raises(ExpandError, match="Tainted .* not permitted"):
        x("${readsocket{$v}{q}}", v=Tainted(path))
    with pytest.raises(ExpandError, match="Tainted .* not permitted"):
        x("${readsocket{inet:$v:25}{q}}", v=Tainted("127.0.0.1"))


def test_exists_accepts_tainted_name(tmp_path):
    assert x("${if exists{$v}{y}{n}}", v=Tainted(str(tmp_path))) == "y"


def test_bem_headers_are_tainted_and_refused_as_file_names(tmp_path):
    msg = tmp_path / "msg"
    msg.write_text("From: a@b.c\nSubject: /etc/hostname\nX-Cmd: /bin/echo\n\nbody\n")
    main = types.SimpleNamespace(primary_hostname="h.test", qualify_domain="h.test")
    out = io.StringIO()
    run_be(Config(filename="/x", main=main),
           io.StringIO("${readfile{$h_subject:}}\n${run{$h_x-cmd: hi}}\n"
                       "${lookup{a}lsearch{$h_subject:}}\n$h_subject:\n"),
           out, message_file=str(msg))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Failed: Tainted")
    assert lines[1].startswith("Failed:") and "tainted" in lines[1]
    assert lines[2].startswith("Failed: Tainted")
    assert lines[3] == "/etc/hostname"


@pytest.mark.parametrize("text", [
    "${if match{$v}{^(.*)\\$}{$1}}",                       # the match condition
    "${sg{$v}{^(.*)\\$}{\\$1}}",                            # sg's replacement
    "${if match_local_part{$v}{^(.*)\\$}{$1}}",             # a local-part list's regex
    "${if match_address{$v@x.example}{^(.*)@}{$1}}",       # an address list's regex
    "${if match_domain{$v.example}{^(.*)\\.example\\$}{$1}}",
])
def test_regex_captures_of_tainted_data_are_tainted(tmp_path, text):
    """$0, $1 ... copied out of a tainted subject are tainted (Exim: "Tainted filename for
    search" when one names a lookup file), so a piece of a client's address can never
    name a file."""
    f = tmp_path / "john"
    f.write_text("k: v\n")
    ctx = ExpandContext(variables={"v": Tainted("john")})
    captured = expand_string(text, ctx)
    assert captured == "john" and is_tainted(captured)
    with pytest.raises(ExpandError, match="Tainted .* not permitted"):
        expand_string("${lookup{k}lsearch{%s/%s}}" % (tmp_path, text), ctx)
    # untainted data gives untainted captures, as before
    clean = ExpandContext(variables={"v": "john"})
    assert expand_string("${lookup{k}lsearch{%s/%s}}" % (tmp_path, text), clean) == "v"


@pytest.mark.parametrize("text,tainted", [
    # exim4 -bem: a digest, a count or a number is made afresh, untainted ...
    ("${md5:$v}", False), ("${sha1:$v}", False), ("${sha256:$v}", False),
    ("${sha2_512:$v}", False), ("${sha3:$v}", False), ("${nhash_5:$v}", False),
    ("${strlen:$v}", False), ("${listcount:$v}", False), ("${eval:$n+1}", False),
    ("${time_interval:$n}", False), ("${base62d:$n}", False),
    ("${substr_0_2:${md5:$v}}", False),
    # ... what is copied out of the argument stays tainted
    ("${hash_3:$v}", True), ("${length_3:$v}", True), ("${lc:$v}", True),
    ("${base64:$v}", True), ("${quote:$v}", True),
])
def test_operator_results_made_afresh_are_untainted(text, tainted):
    """As in Exim 4.96, /var/mail/${md5:$local_part} is a usable file name."""
    ctx = ExpandContext(variables={"v": Tainted("john"), "n": Tainted("12")})
    assert is_tainted(expand_string(text, ctx)) is tainted
    assert is_tainted(x("/var/mail/%s" % text, v=Tainted("john"), n=Tainted("12"))) is tainted
