"""plaintext: server prompts, PLAIN and LOGIN with real Exim conditions, and client_send."""
from __future__ import annotations

import base64

import pytest

from pymta.auth.base import ClientError
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.plaintext import (
    PlaintextAuthenticator,
    PromptsMechanism,
    circumflex_to_nul,
)
from pymta.auth.results import AuthResult, Challenge
from pymta.expand import ExpandContext


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _expander(**variables: str) -> ContextExpander:
    return ContextExpander(ExpandContext(variables={"primary_hostname": "mx.example.test",
                                                    **variables}))


def _plain(condition: str) -> PlaintextAuthenticator:
    return PlaintextAuthenticator("plain", {"public_name": "PLAIN", "server_prompts": ":",
                                            "server_condition": condition,
                                            "server_set_id": "$auth2"})


def run(auth: PlaintextAuthenticator, initial: str | None, *responses: str) -> list[str]:
    ex = auth.server_exchange(_expander())
    replies = [ex.start(initial).reply]
    for r in responses:
        replies.append(ex.respond(r).reply)
    return replies


def test_prompts_mechanism_counts_strings() -> None:
    mech = PromptsMechanism(["Username:", "Password:"])
    assert mech.feed(None) == Challenge(b"Username:")
    assert mech.feed(b"alice") == Challenge(b"Password:")
    assert mech.feed(b"secret") == ("alice", "secret", "")
    assert PromptsMechanism([""]).feed(b"a\0b\0c\0d") == ("a", "b", "c")


def test_plain_with_eq_condition() -> None:
    auth = _plain("${if and {{eq{$auth2}{alice}}{eq{$auth3}{secret}}}}")
    assert run(auth, b64(b"\0alice\0secret")) == ["235 Authentication succeeded"]
    assert run(auth, b64(b"\0alice\0nope")) == ["535 Incorrect authentication data"]
    assert run(auth, None, b64(b"\0alice\0secret")) == ["334 ", "235 Authentication succeeded"]


def test_plain_with_crypteq_condition() -> None:
    # {md5} of "secret", and a {sha1} one; crypteq fails on an empty second argument.
    auth = _plain("${if crypteq{$auth3}{\\{md5\\}5ebe2294ecd0e0f08eab7690d2a6ee69}}")
    assert run(auth, b64(b"\0alice\0secret")) == ["235 Authentication succeeded"]
    assert run(auth, b64(b"\0alice\0Secret")) == ["535 Incorrect authentication data"]
    auth = _plain("${if crypteq{$auth3}{\\{sha1\\}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4}}")
    assert run(auth, b64(b"\0alice\0secret")) == ["235 Authentication succeeded"]


def test_set_id_and_auth_vars_are_tainted_values_from_the_client() -> None:
    auth = _plain("${if eq{$auth1}{boss}}")
    ex = auth.server_exchange(_expander())
    result = ex.start(b64(b"boss\0alice\0pw"))
    assert isinstance(result, AuthResult) and result.ok
    assert result.auth_vars == ("boss", "alice", "pw") and result.set_id == "alice"


def test_numbered_variables_for_old_configurations() -> None:
    auth = _plain("${if eq{$2:$3}{alice:pw}}")
    assert run(auth, b64(b"\0alice\0pw")) == ["235 Authentication succeeded"]


def test_login_prompts() -> None:
    auth = PlaintextAuthenticator("login", {
        "public_name": "LOGIN", "server_prompts": "Username:: : Password::",
        "server_condition": "${if and {{eq{$auth1}{alice}}{eq{$auth2}{secret}}}}",
        "server_set_id": "$auth1"})
    assert run(auth, None, b64(b"alice"), b64(b"secret")) == [
        "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 Authentication succeeded"]


def test_condition_results() -> None:
    assert run(_plain("maybe"), b64(b"\0a\0b")) == ["435 Unable to authenticate at present: maybe"]
    assert run(_plain("${if eq{a}{b}{yes}fail}"), b64(b"\0a\0b")) == [
        "535 Incorrect authentication data"]
    for false in ("", "0", "no", "FALSE"):
        assert run(_plain(false), b64(b"\0a\0b")) == ["535 Incorrect authentication data"]
    for true in ("1", "yes", "True"):
        assert run(_plain(true), b64(b"\0a\0b")) == ["235 Authentication succeeded"]


def test_no_server_condition_fails() -> None:
    auth = PlaintextAuthenticator("p", {"server_prompts": ":"})
    assert not auth.is_server
    assert run(auth, b64(b"\0a\0b")) == ["535 Incorrect authentication data"]


def test_server_prompts_expansion_failure_defers() -> None:
    auth = PlaintextAuthenticator("p", {"server_prompts": "${if eq{x}}",
                                        "server_condition": "yes"})
    result = auth.server_exchange(_expander()).start(None)
    assert result.reply == "435 Unable to authenticate at present" and result.log_message


def test_bad_input() -> None:
    auth = _plain("yes")
    assert run(auth, "!!!!") == ["501 Invalid base64 data"]
    assert run(auth, None, "*") == ["334 ", "501 Authentication cancelled"]
    assert run(auth, "=") == ["235 Authentication succeeded"]      # "yes" accepts anything


def test_circumflex() -> None:
    assert circumflex_to_nul("^user^pw") == "\0user\0pw"
    assert circumflex_to_nul("a^^b") == "a^b"


def test_client_plain_in_one_go() -> None:
    auth = PlaintextAuthenticator("p", {"public_name": "PLAIN",
                                        "client_send": "^${lc::ALICE}^se^^cret"})
    client = auth.client_exchange(_expander())
    assert base64.b64decode(client.initial()) == b"\0alice\0se^cret"
    assert client.challenge("") == "*"          # nothing more to send


def test_client_login_uses_prompts_as_auth_vars() -> None:
    send = ": alice : ${if eq{$auth2}{Password::}{pw}fail}"
    auth = PlaintextAuthenticator("p", {"public_name": "LOGIN", "client_send": send})
    client = auth.client_exchange(_expander())
    assert client.initial() is None
    assert client.challenge(b64(b"Username:")) == b64(b"alice")
    assert client.challenge(b64(b"Password:")) == b64(b"pw")


def test_client_invalid_base64_prompt() -> None:
    auth = PlaintextAuthenticator("p", {"client_send": ": x : $auth1"})
    assert auth.client_exchange(_expander()).challenge("!!!") == "*"
    auth = PlaintextAuthenticator("p", {"client_send": ": x : <$auth1>",
                                        "client_ignore_invalid_base64": True})
    client = auth.client_exchange(_expander())
    client.initial()
    assert client.challenge("!!!") == b64(b"x")
    assert client.challenge(b64(b"p2")) == b64(b"<>")


def test_client_expansion_failures() -> None:
    auth = PlaintextAuthenticator("p", {"client_send": "${if eq{$host}{a}{x}fail}"})
    with pytest.raises(ClientError) as forced:
        auth.client_exchange(_expander(host="b")).initial()
    assert forced.value.forced
    auth = PlaintextAuthenticator("p", {"client_send": "${if eq{x}}"})
    with pytest.raises(ClientError) as error:
        auth.client_exchange(_expander()).initial()
    assert not error.value.forced


def test_client_against_server() -> None:
    server = _plain("${if and {{eq{$auth2}{alice}}{eq{$auth3}{secret}}}}")
    client = PlaintextAuthenticator("p", {"client_send": ":^alice^secret"})
    c = client.client_exchange(_expander())
    s = server.server_exchange(_expander())
    step = s.start(c.initial())
    while isinstance(step, Challenge):
        step = s.respond(c.challenge(step.reply[4:]))
    assert step.reply == "235 Authentication succeeded"
