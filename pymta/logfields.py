"""The TLS and AUTH fields of Exim's ``<=`` and ``=>`` log lines, in one place.

Both the arrival line (:mod:`pymta.message.receive`) and the delivery line
(:mod:`pymta.delivery.deliver`) describe a session with a :class:`SessionLogFacts` and
render it with :func:`session_fields`, so the fields have one format and one set of
log_selector rules: ``X=`` (tls_cipher; ``*`` appended for a resumed session with
tls_resumption), ``CV=yes|no|dane`` (tls_certificate_verified), ``DN="..."``
(tls_peerdn), ``SNI=`` (tls_sni, arrivals only), then ``A=name[:id]`` (always, when the
session was authenticated; with smtp_mailauth the value of MAIL's accepted AUTH= follows
after a colon, as the client wrote it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymta.log import log_selected


@dataclass(frozen=True)
class SessionLogFacts:
    """What a log line says about one SMTP session's TLS and authentication."""

    cipher: str = ""                   # empty: no TLS
    certificate_verified: bool = False
    dane: bool = False
    peerdn: str = ""
    sni: str = ""
    resumed: bool = False
    authenticator: str = ""
    auth_id: str = ""
    mail_auth: str = ""                # MAIL's accepted AUTH= sender (smtp_mailauth)


def session_fields(config: Any, facts: SessionLogFacts) -> list[str]:
    """The fields, in Exim's order, that log_selector selects."""
    out = []
    if facts.cipher:
        if log_selected(config, "tls_cipher"):
            star = "*" if facts.resumed and log_selected(config, "tls_resumption") else ""
            out.append(f"X={facts.cipher}{star}")
        if log_selected(config, "tls_certificate_verified"):
            out.append("CV=dane" if facts.dane
                       else "CV=yes" if facts.certificate_verified else "CV=no")
        if facts.peerdn and log_selected(config, "tls_peerdn"):
            out.append(f'DN="{facts.peerdn}"')
        if facts.sni and log_selected(config, "tls_sni"):
            out.append(f"SNI={facts.sni}")
    if facts.authenticator:
        out.append(f"A={facts.authenticator}" + (f":{facts.auth_id}" if facts.auth_id else "")
                   + (f":{facts.mail_auth}" if facts.mail_auth
                      and log_selected(config, "smtp_mailauth") else ""))
    return out
