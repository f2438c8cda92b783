"""cram_md5: the RFC 2195 example, Exim's challenge format, server and client drivers."""
from __future__ import annotations

import base64

import pytest

from pymta.auth.base import ClientError
from pymta.auth.cram_md5 import (
    CramMd5Authenticator,
    CramMd5ServerExchange,
    cram_challenge,
    cram_digest,
    split_cram_response,
)
from pymta.auth.expand_adapter import ContextExpander
from pymta.auth.results import AuthResult, Challenge
from pymta.expand import ExpandContext

RFC_CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"


def _expander() -> ContextExpander:
    return ContextExpander(ExpandContext(variables={"primary_hostname": "mx.example.test"}))


def test_rfc2195_example() -> None:
    assert cram_digest(b"tanstaaftanstaaf", RFC_CHALLENGE) == "b913a602c7eda7a495b4e6e7334d3890"
    assert cram_challenge("postoffice.reston.mci.net", 1896, 697170952.9) == RFC_CHALLENGE


def test_rfc2195_example_through_the_driver() -> None:
    auth = CramMd5Authenticator("cram", {
        "public_name": "CRAM-MD5",
        "server_secret": "${if eq{$auth1}{tim}{tanstaaftanstaaf}fail}",
        "server_set_id": "$auth1"})
    ctx = ExpandContext(variables={"primary_hostname": "postoffice.reston.mci.net"})
    ex = CramMd5ServerExchange(auth, ContextExpander(ctx), now=lambda: 697170952, pid=1896)
    step = ex.start(None)
    assert isinstance(step, Challenge) and step.data == RFC_CHALLENGE
    assert step.reply == "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    result = ex.respond("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
    assert isinstance(result, AuthResult) and result.ok and result.set_id == "tim"


def test_user_names_with_spaces_and_upper_case_digest() -> None:
    assert split_cram_response(b"John Smith 0123") == ("John Smith", "0123")
    assert split_cram_response(b"alone") == ("alone", "")
    auth = CramMd5Authenticator("cram", {"server_secret": "s3"})
    ex = auth.server_exchange(_expander())
    challenge = ex.start(None).data
    digest = cram_digest(b"s3", challenge).upper()
    assert ex.respond(base64.b64encode(f"John Smith {digest}".encode()).decode()).ok


def test_server_secret_expansion_error_defers() -> None:
    auth = CramMd5Authenticator("cram", {"server_secret": "${if eq{$auth1}}"})
    ex = auth.server_exchange(_expander())
    ex.start(None)
    result = ex.respond(base64.b64encode(b"alice 00").decode())
    assert result.reply == "435 Unable to authenticate at present"
    assert result.log_message and "eq" in result.log_message


def test_server_condition_applies_after_the_digest() -> None:
    auth = CramMd5Authenticator("cram", {"server_secret": "pw",
                                         "server_condition": "${if eq{$auth1}{ok}}"})
    for user, reply in (("ok", "235"), ("nope", "535")):
        ex = auth.server_exchange(_expander())
        challenge = ex.start(None).data
        line = base64.b64encode(f"{user} {cram_digest(b'pw', challenge)}".encode()).decode()
        assert ex.respond(line).reply.startswith(reply)


def test_client() -> None:
    secret = "${if eq{$host}{smart}{tanstaaftanstaaf}fail}"
    auth = CramMd5Authenticator("cram", {"client_name": "tim", "client_secret": secret})
    client = auth.client_exchange(_expander(), {"host": "smart"})
    assert client.initial() is None
    reply = client.challenge(base64.b64encode(RFC_CHALLENGE).decode())
    assert base64.b64decode(reply) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert client.challenge("!!") == "*"


def test_client_name_defaults_to_primary_hostname_and_forced_fail_moves_on() -> None:
    auth = CramMd5Authenticator("cram", {"client_secret": "x"})
    client = auth.client_exchange(_expander())
    assert base64.b64decode(client.challenge("PGE+")).startswith(b"mx.example.test ")
    auth = CramMd5Authenticator("cram", {"client_secret": "${if eq{$host}{a}{x}fail}"})
    with pytest.raises(ClientError) as e:       # forced: try the next authenticator
        auth.client_exchange(_expander(), {"host": "b"})
    assert e.value.forced
