"""The DSN parameters of MAIL (RET=, ENVID=) and RCPT (NOTIFY=, ORCPT=), read as Exim 4.96
reads them.

Exim takes ESMTP parameters off the end of the command one at a time, right to left, and
stops at the first word it does not know: that word and everything before it are then
left to the address parser, which calls them "malformed address: ... may not follow".
These functions do the same for the DSN parameters and hand back the words they did not
consume (in order) for the server's own parameter loop:

- MAIL: RET= and ENVID= are consumed.  When DSN was not advertised to the client they
  are ignored (Exim accepts and drops them); a RET= or ENVID= with an empty value ends
  the scan and is dropped.
- RCPT: NOTIFY= and ORCPT= are consumed only when DSN was advertised; otherwise they
  stop the scan and the client gets the "may not follow" reply.

A repeated or invalid parameter raises :class:`DsnSyntaxError` with Exim's reply text.

:func:`rcpt_argument_as_exim_leaves_it` copies a slip of Exim's RCPT option loop that
clients see: when the last word it stops at has no "=", the white space before that word
is left as "=" (so "<a b@c>" is taken as "<a=b@c>", and "<a@c> FOO" is refused as
"<a@c>=FOO").
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pymta.dsn import notify_text, parse_notify, parse_ret, ret_text


class DsnSyntaxError(Exception):
    """A DSN parameter Exim answers with 501 (the message is the reply text)."""


@dataclass
class MailDsn:
    """MAIL's DSN parameters: ``ret`` is Exim's number (0 unset, 1 FULL, 2 HDRS);
    ``envid`` the ENVID= value as sent (xtext), None when absent.  ``dropped`` counts the
    words at the end of the command that an empty RET=/ENVID= cut off: Exim's "may not
    follow" reply then quotes the command without them."""

    ret: int = 0
    envid: str | None = None
    dropped: int = 0


@dataclass
class RcptDsn:
    """RCPT's DSN parameters: NOTIFY= as Exim's bits, ORCPT= as sent (None if absent)."""

    flags: int = 0
    notify_given: bool = False
    orcpt: str | None = None


def extract_option(word: str) -> tuple[str, str] | None:
    """One ``NAME=value`` word as Exim splits it: at the last "=", the name all letters
    (else None: Exim stops there).  A word without "=" is both name and value."""
    eq = word.rfind("=")
    if eq < 0:
        return word, word
    name = word[:eq]
    if not name or not name.isascii() or not name.isalpha():
        return None
    return name, word[eq + 1:]


def split_mail_dsn(words: list[str], advertised: bool,
                   known: Collection[str]) -> tuple[list[str], MailDsn]:
    """Consume RET=/ENVID= from the end of MAIL's parameter words.  ``known`` names the
    other parameters the server accepts (upper case): they are passed over and kept."""
    dsn = MailDsn()
    kept: list[str] = []
    i = len(words)
    while i > 0:
        word = words[i - 1]
        opt = extract_option(word)
        if opt is None:
            break
        name, value = opt[0].upper(), opt[1]
        if name in ("RET", "ENVID"):
            i -= 1
            if value == "":
                # Exim: an empty value ends the scan; it and what followed are cut off
                dsn.dropped = len(words) - i
                break
            if advertised:
                _mail_option(dsn, name, value)
            continue
        if name not in known:
            break
        kept.insert(0, word)
        i -= 1
    return words[:i] + kept, dsn


def _mail_option(dsn: MailDsn, name: str, value: str) -> None:
    if name == "RET":
        if dsn.ret:
            raise DsnSyntaxError("RET can be specified once only")
        ret = parse_ret(value)
        if ret is None:
            raise DsnSyntaxError("Value for RET is invalid")
        dsn.ret = ret
    else:
        if dsn.envid is not None:
            raise DsnSyntaxError("ENVID can be specified once only")
        dsn.envid = value


def split_rcpt_dsn(words: list[str], advertised: bool) -> tuple[list[str], RcptDsn]:
    """Consume NOTIFY=/ORCPT= from the end of RCPT's parameter words."""
    dsn = RcptDsn()
    i = len(words)
    while i > 0 and advertised:
        opt = extract_option(words[i - 1])
        if opt is None:
            break
        name, value = opt[0].upper(), opt[1]
        if name == "ORCPT":
            if dsn.orcpt is not None:
                raise DsnSyntaxError("ORCPT can be specified once only")
            dsn.orcpt = value
        elif name == "NOTIFY":
            if dsn.flags:
                raise DsnSyntaxError("NOTIFY can be specified once only")
            bits = parse_notify(value)
            if bits is None:
                raise DsnSyntaxError("Invalid value for NOTIFY parameter")
            dsn.flags |= bits
            dsn.notify_given = True
        else:
            break
        i -= 1
    return words[:i], dsn


def mail_dsn_params(dsn: MailDsn) -> dict[str, str | None]:
    """The MAIL parameters the server hands on for ``dsn`` (RET= as FULL/HDRS)."""
    out: dict[str, str | None] = {}
    if dsn.ret:
        out["RET"] = ret_text(dsn.ret)
    if dsn.envid is not None:
        out["ENVID"] = dsn.envid
    return out


def rcpt_dsn_params(dsn: RcptDsn) -> dict[str, str | None]:
    """The RCPT parameters the server hands on for ``dsn`` (NOTIFY= in canonical form)."""
    out: dict[str, str | None] = {}
    if dsn.notify_given:
        out["NOTIFY"] = notify_text(dsn.flags)
    if dsn.orcpt is not None:
        out["ORCPT"] = dsn.orcpt
    return out


C_SPACE = " \t\n\r\v\f"            # C's isspace (the SMTP code shares it)


def rcpt_argument_as_exim_leaves_it(arg: str, advertised: bool) -> str:
    """RCPT's argument after Exim 4.96 has looked for NOTIFY=/ORCPT= at its end (only
    after EHLO; ``advertised``: DSN was offered).  Exim scans back from the end for
    "=" or white space (over quoted strings); an option it knows is taken off and the
    scan goes on before it.  Where it stops at an unknown option it puts the text back,
    but when that option had no "=" the white space before it comes back as "=" (the
    two restoring writes hit the same byte).  The string is otherwise unchanged: the
    known options are read again by :func:`split_rcpt_dsn`."""
    end = len(arg.rstrip(C_SPACE))
    while True:
        v = end - 1
        while v > 0 and arg[v] != "=" and arg[v] not in C_SPACE:
            if arg[v] == '"':
                v -= 1
                while v > 0 and arg[v] != '"':
                    v -= 1
                if v <= 0:
                    return arg
            v -= 1
        if v <= 0:
            return arg
        if arg[v] == "=":
            n = v
            while n > 0 and arg[n - 1].isascii() and arg[n - 1].isalpha():
                n -= 1
            if n <= 0 or arg[n - 1] not in C_SPACE:
                return arg
            if not (advertised and arg[n:v].upper() in ("ORCPT", "NOTIFY")):
                return arg
            end = len(arg[:n - 1].rstrip(C_SPACE))
            continue
        if advertised and arg[v + 1:end].upper() in ("ORCPT", "NOTIFY"):
            end = len(arg[:v].rstrip(C_SPACE))       # a bare ORCPT/NOTIFY is taken too
            continue
        return arg[:v] + "=" + arg[v + 1:]
