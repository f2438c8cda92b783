"""The DKIM ACL items: the dkim_signers and dkim_status conditions (only in the DKIM
ACL, as Exim), "set dkim_verify_status/_reason", and the dkim_verify_* options."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pymta.acl import run_acl
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.smtp.dkim_glue import _has_signature_header, verify_options

BASE = """\
primary_hostname = test.example
{main}
begin acl
dkim:
  deny    dkim_signers = example.org : *@sub.example.net
          dkim_status = fail : invalid
          message = no ($dkim_cur_signer $dkim_verify_status)
  warn    dkim_status = pass
          dkim_signers = override.example
          set dkim_verify_status = fail
          set dkim_verify_reason = policy
  accept
rcpt:
  accept  dkim_status = pass
"""


def _config(tmp_path, main: str = ""):
    path = tmp_path / "configure"
    path.write_text(BASE.format(main=main))
    return load_config(str(path))


def _run(cfg, where: str, **variables):
    ctx = ExpandContext(config=cfg, variables=dict(variables))
    return run_acl(cfg, "dkim" if where == "dkim" else "rcpt", where, ctx), ctx


@pytest.mark.parametrize("signer,status,verdict", [
    ("example.org", "fail", "deny"),
    ("EXAMPLE.ORG", "invalid", "deny"),
    ("example.org", "pass", "accept"),
    ("other.example", "fail", "accept"),
    ("joe@sub.example.net", "fail", "deny"),
    ("joe@other.example", "fail", "accept"),
])
def test_dkim_signers_and_status_conditions(tmp_path, signer, status, verdict):
    res, _ = _run(_config(tmp_path), "dkim", dkim_cur_signer=signer,
                  dkim_verify_status=status)
    assert res.verdict == verdict
    if verdict == "deny":
        assert res.message == f"no ({signer} {status})"


def test_set_overrules_status_and_reason(tmp_path):
    res, ctx = _run(_config(tmp_path), "dkim", dkim_cur_signer="override.example",
                    dkim_verify_status="pass", dkim_verify_reason="")
    assert res.verdict == "accept"
    assert (ctx.variables["dkim_verify_status"], ctx.variables["dkim_verify_reason"]) == \
        ("fail", "policy")


def test_conditions_outside_the_dkim_acl_are_an_acl_error(tmp_path):
    res, _ = _run(_config(tmp_path), "rcpt", dkim_verify_status="pass")
    assert (res.verdict, res.error) == ("defer", True)
    assert "cannot test dkim_status condition in RCPT ACL" in res.log_message


def test_verify_options(tmp_path):
    default = verify_options(_config(tmp_path))
    assert (default.hashes, default.keytypes) == (("sha256", "sha512"), ("ed25519", "rsa"))
    assert (default.min_bits("rsa"), default.min_bits("ed25519")) == (1024, 250)
    assert not default.minimal
    custom = verify_options(_config(tmp_path, "dkim_verify_hashes = sha1 : sha256\n"
                                    "dkim_verify_keytypes = rsa\n"
                                    "dkim_verify_min_keysizes = rsa=2048\n"
                                    "dkim_verify_minimal = true\n"))
    assert (custom.hashes, custom.keytypes) == (("sha1", "sha256"), ("rsa",))
    assert (custom.min_bits("rsa"), custom.minimal) == (2048, True)


@pytest.mark.parametrize("headers,has", [
    (["Subject: x\n", "From: a@b.example\n"], False),
    (["Subject: x\n", "DKIM-Signature: v=1; a=rsa-sha256\n"], True),
    (["dkim-signature:v=1\n"], True),
    (["DKIM-Signature \t: v=1\n"], True),                  # space before the colon
    (["DKIM-Signatures: v=1\n", "X-DKIM-Signature: v=1\n"], False),
])
def test_signature_header_seen(headers, has):
    """Verification is skipped only for a message without any DKIM-Signature header."""
    prepared = SimpleNamespace(spool=SimpleNamespace(
        headers=[SimpleNamespace(flag=" ", text=t) for t in headers]))
    assert _has_signature_header(prepared) is has
