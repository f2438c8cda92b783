"""DKIM verification of an SMTP session's message, as Exim 4.96 does it after the data
and before the MIME and DATA ACLs: verify every signature (:mod:`pymta.dkim.verify`),
publish ``$dkim_signers``, run ``acl_smtp_dkim`` once per item of ``dkim_verify_signers``
and per matching signature with the ``$dkim_*`` variables of that signature, and log the
results (``dkim_verbose``; "failed key import"; ``DKIM=`` on the arrival line).

Only SMTP input is verified (also ``-bs``), as in Exim: non-SMTP submissions are not.
``control = dkim_disable_verify`` in an earlier ACL turns it off for the message.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from pymta.config.values import main_option
from pymta.dkim.verify import Signature, VerifyOptions, verify_message
from pymta.dkim.verify_report import (
    EMPTY_VARIABLES,
    key_failure_line,
    matches,
    signature_line,
    signature_variables,
    signers,
)
from pymta.dkim.verify_report import authres as dkim_authres
from pymta.expand import expand_string
from pymta.expand.errors import ExpandFail
from pymta.expand.extra_items import AUTHRES_DKIM
from pymta.expand.lists import split_list
from pymta.log import log_selected
from pymta.message.body import FileBody
from pymta.message.envelope import Envelope
from pymta.message.headers import header_name
from pymta.message.receive import PreparedMessage
from pymta.smtp.server import Reply
from pymta.taint import taint

_BLOCK = 1 << 16

#: Variables that describe the message's signatures as a whole.
_MESSAGE_VARIABLES = ("dkim_signers", "dkim_cur_signer")


def verify_options(config: Any) -> VerifyOptions:
    """The dkim_verify_* main options (lists of words; sizes as "type=bits")."""
    sizes = []
    for item in _words(main_option(config, "dkim_verify_min_keysizes", "rsa=1024 ed25519=250")):
        name, _, bits = item.partition("=")
        if bits.strip().isdigit():
            sizes.append((name.strip().lower(), int(bits)))
    return VerifyOptions(
        hashes=tuple(w.lower() for w in _words(
            main_option(config, "dkim_verify_hashes", "sha256:sha512"))),
        keytypes=tuple(w.lower() for w in _words(
            main_option(config, "dkim_verify_keytypes", "ed25519:rsa"))),
        min_keysizes=tuple(sizes),
        minimal=bool(main_option(config, "dkim_verify_minimal", False)))


def _words(value: Any) -> list[str]:
    return [w for w in str(value or "").replace(":", " ").split() if w]


def message_parts(prepared: PreparedMessage) -> tuple[bytes, Iterator[bytes]]:
    """The header block and the body pieces of the message as it was received."""
    data, start = prepared.data, prepared.body_start
    if isinstance(data, FileBody):
        head, _ = data.header_block()
        return head[:start], data.blocks(start)
    view = memoryview(data)
    # in blocks, so a large message is not copied whole
    return bytes(view[:start]), (bytes(view[i:i + _BLOCK])
                                 for i in range(start, len(view), _BLOCK))


def _has_signature_header(prepared: PreparedMessage) -> bool:
    """Whether the message has a DKIM-Signature header at all (most have none; without
    one there is nothing to parse and no body to hash)."""
    return any(header_name(h.text).lower() == "dkim-signature"
               for h in prepared.spool.headers)


class DkimVerification:
    """Mixin for :class:`~pymta.smtp.session.SmtpSession`: DKIM after the data."""

    config: Any
    log: Any
    ctx: Any
    msgid: str | None
    controls: set[str]
    message_controls: set[str]
    host_ident: Callable[..., str]                   # PeerFacts
    _run: Callable[[str, str], Any]                  # AclChecks
    _reply: Callable[[Any, str], Reply]
    _log_reject: Callable[..., None]
    _add_headers: Callable[[Any], None]

    def dkim_verify(self, env: Envelope, prepared: PreparedMessage) -> Reply | None:
        """Verify the message's signatures and run the DKIM ACL; a reply when the ACL
        refused the message (or discarded it: 250 without keeping it), else None."""
        v = self.ctx.variables
        for name in _MESSAGE_VARIABLES:
            v[name] = ""
        v.update(EMPTY_VARIABLES)
        v["dkim_verify_status"] = ""
        self.dkim_signatures: list[Any] = []        # for DMARC
        v.pop(AUTHRES_DKIM, None)
        if "dkim_disable_verify" in self.message_controls | self.controls:
            return None
        sigs = []
        try:
            if _has_signature_header(prepared):
                head, body = message_parts(prepared)
                sigs = verify_message(head, body, verify_options(self.config),
                                      key_failed=lambda s: self.log.main(
                                          key_failure_line(s), self.msgid))
        except Exception as exc:
            # A fault in verifying must not cost the message: it goes on unverified.
            self.log.panic(f"DKIM verification failed: {exc!r}", self.msgid)
            sigs = []
        self.dkim_signatures = sigs
        v[AUTHRES_DKIM] = taint(dkim_authres(sigs))
        v["dkim_signers"] = taint(":".join(signers(sigs)))
        acl = main_option(self.config, "acl_smtp_dkim")
        items = self._dkim_signer_items() if acl else []
        if not items:
            for each in sigs:
                self._dkim_logged(env, each, None, None)
            return None
        results: list[str] = []
        for item in items:
            v["dkim_cur_signer"] = taint(item)
            found: list[Signature | None] = [s for s in sigs if matches(s, item)]
            for sig in found or [None]:
                v.update(EMPTY_VARIABLES if sig is None else
                         {k: taint(x) for k, x in signature_variables(sig).items()})
                res = self._run("acl_smtp_dkim", "dkim")
                status, why = v.get("dkim_verify_status", ""), v.get("dkim_verify_reason", "")
                if sig is not None:
                    self._dkim_logged(env, sig, str(status), str(why))
                if res.verdict == "discard":
                    return Reply(250, "OK")
                if res.verdict != "accept":
                    self._log_reject("DKIM ", res, with_sender=False, msgid=self.msgid)
                    return self._reply(res, "data")
                self._add_headers(res)
                results.append(str(status))
        v["dkim_verify_status"] = ":".join(results)
        return None

    def _dkim_signer_items(self) -> list[str]:
        """dkim_verify_signers expanded: its items, each once, in order."""
        text = main_option(self.config, "dkim_verify_signers", "$dkim_signers")
        try:
            value = expand_string(str(text), self.ctx)
        except ExpandFail:
            return []
        except Exception as exc:
            self.log.main(f"expansion of dkim_verify_signers option failed: {exc}",
                          self.msgid)
            return []
        out: list[str] = []
        for item in split_list(str(value)):
            if item and item not in out:
                out.append(item)
        return out

    def _dkim_logged(self, env: Envelope, sig: Signature, status: str | None,
                     why: str | None) -> None:
        """Note a passing signature's domain for DKIM= and write its dkim_verbose line;
        an ACL's own verdict (``status``) counts instead of the verifier's."""
        if env.dkim_domain is None and (status or sig.status) == "pass":
            env.dkim_domain = sig.domain
        if log_selected(self.config, "dkim_verbose"):
            self.log.main(signature_line(sig, status, why), self.msgid)
