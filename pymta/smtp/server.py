"""Sans-IO SMTP server protocol engine (Exim 4.96 dialogue).

:class:`SmtpServer` takes the bytes a client sent (:meth:`SmtpServer.feed`) and returns the
reply bytes to send.  Decisions that need policy (ACLs, routing, spooling) are delegated to
a :class:`SmtpHandler`; syntax errors, sequence errors, size and recipient limits, the
PIPELINING synchronisation check and the DATA terminator are handled here, with Exim's
reply codes and texts.  Nothing here touches a socket or a clock, so the whole dialogue can
be tested with byte strings.

:meth:`SmtpServer.receive` returns :mod:`actions <pymta.smtp.actions>` for the I/O layer
(send these bytes, read a line, read N bytes, start TLS, close); :meth:`SmtpServer.feed`
is the same for callers that only send.  Replies for a pipelined group of commands
accumulate into one :class:`~pymta.smtp.actions.SendReply`, so the caller writes them
with a single ``send``.  Extensions registered in ``extra_commands`` can run a
multi-step exchange (:meth:`SmtpServer.send_challenge`), read exactly N bytes
(:meth:`SmtpServer.read_bytes`) and switch to TLS (:meth:`SmtpServer.start_tls`).
"""
from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from pymta.debuglog import debug
from pymta.i18n import first_non_ascii
from pymta.message.body import FileBody
from pymta.smtp.actions import (
    Action,
    Challenge,
    Close,
    ReadBytes,
    ReadLine,
    SendReply,
    StartTls,
    reply_bytes,
)
from pymta.smtp.dsn_params import (
    C_SPACE,
    DsnSyntaxError,
    mail_dsn_params,
    rcpt_argument_as_exim_leaves_it,
    rcpt_dsn_params,
    split_mail_dsn,
    split_rcpt_dsn,
)
from pymta.smtp.header_progress import HeaderProgress

# Exim reads a command into a 16k buffer; longer lines are rejected.
SMTP_CMD_BUFFER_SIZE = 16384
# RFC 5321 4.5.3.1.3: a path is at most 256 octets.  Exim refuses a longer address
# (measured inside the <>, source route included) and shows its first 64 characters.
ADDRESS_MAXLENGTH = 256
_ADDRESS_SHOWN = 64
_JUNK_SHOWN = 32            # of what follows an address, Exim's errors show this much


@dataclass
class Reply:
    """An SMTP reply: ``code``, text (lines separated by "\\n"), and whether to close after."""

    code: int
    text: str
    close: bool = False
    #: replies sent just before this one (PRDR's per-recipient replies after DATA)
    leading: tuple["Reply", ...] = ()
    #: an ACL's own words in ``text`` (None: all of it), without the sender-verify lines
    #: before them: what DATA's "All RCPT commands were rejected" repeats
    own_text: str | None = None

    def render(self) -> bytes:
        return b"".join(r.render() for r in self.leading) + format_reply(self.code, self.text)


def format_reply(code: int | str, text: str) -> bytes:
    """Format a possibly multi-line reply as ``code-line`` ... ``code line``."""
    if "\n" not in text:           # one line: most replies
        return f"{code} {text}\r\n".encode("utf-8", "surrogateescape")
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{line}\r\n")
    return "".join(out).encode("utf-8", "surrogateescape")


@dataclass
class SmtpEvent:
    """Something the session should log or act on (``name`` plus details)."""

    name: str
    info: dict[str, Any] = field(default_factory=dict)


class SmtpHandler:
    """Policy callbacks.  Returning ``None`` means "go ahead with the default success reply".

    The session subclasses this to run ACLs, verify and spool.  Every method may return a
    :class:`Reply` to replace the default; a 2xx reply counts as acceptance.
    """

    def on_helo(self, verb: str, name: str) -> Reply | None:
        return None

    def on_mail_command(self, count: int) -> Reply | None:
        """The ``count``-th MAIL command of the connection, before its address is read
        (smtp_accept_max_per_connection, smtp_ratelimit_mail)."""
        return None

    def on_mail(self, address: str, params: dict[str, str | None]) -> Reply | None:
        return None

    def on_rcpt(self, address: str, params: dict[str, str | None]) -> Reply | None:
        return None

    def on_predata(self) -> Reply | None:
        return None

    def on_message(self, data: bytes | FileBody) -> Reply:
        """The message (LF line endings, dot-stuffing undone; a BDAT message may be in a
        :class:`~pymta.message.body.FileBody`). Must return the reply."""
        return Reply(250, "OK")

    def on_rset(self) -> None:
        return None

    def on_vrfy(self, arg: str) -> Reply:
        return Reply(252, "Administrative prohibition")

    def on_expn(self, arg: str) -> Reply:
        return Reply(550, "Administrative prohibition")

    def on_etrn(self, arg: str) -> Reply | None:
        """None when the handler already answered (through ``synprot_error``)."""
        return Reply(458, "Administrative prohibition")

    def on_quit(self) -> Reply | None:
        """QUIT: may return a 221 reply with other text (the QUIT ACL's message)."""
        return None

    def on_wellknown(self, arg: str) -> Reply:
        """WELLKNOWN <key>: the reply (acl_smtp_wellknown decides)."""
        return Reply(554, "not permitted")

    def on_xclient(self, arg: str) -> Reply | None:
        """XCLIENT (offered, after HELO/EHLO, outside a transaction): 220 when the
        client was replaced; None when the handler already answered (``synprot_error``)."""
        return Reply(550, "XCLIENT command used when not advertised")

    def should_stop(self) -> bool:
        """True when the daemon is shutting down: the next command gets 421."""
        return False

    def on_event(self, event: SmtpEvent) -> None:
        """Protocol incidents to be logged (sync errors, too many errors, ...)."""
        return None


# Commands Exim recognises; "MAIL FROM:" and "RCPT TO:" include their keyword.
_COMMANDS = [
    (b"mail from:", "MAIL"), (b"rcpt to:", "RCPT"), (b"helo", "HELO"), (b"ehlo", "EHLO"),
    (b"data", "DATA"), (b"rset", "RSET"), (b"noop", "NOOP"), (b"quit", "QUIT"),
    (b"help", "HELP"), (b"vrfy", "VRFY"), (b"expn", "EXPN"), (b"etrn", "ETRN"),
    (b"starttls", "STARTTLS"), (b"auth", "AUTH"), (b"bdat", "BDAT"),
    (b"wellknown", "WELLKNOWN"), (b"xclient", "XCLIENT"),
]
#: The same by their first four letters (each is unique), for one dictionary lookup.
_COMMANDS_BY_HEAD = {key[:4]: (key, name) for key, name in _COMMANDS}


def _verb(line: bytes) -> tuple[str | None, bytes]:
    """The command's name and what follows its keyword; (None, b"") if unknown.  A
    keyword must be followed by a space or the end of the line ("MAIL FROM:" and
    "RCPT TO:" by anything): Exim takes "NOOP<tab>" for an unknown command."""
    found = _COMMANDS_BY_HEAD.get(line[:4].lower())
    if found is None:
        return None, b""
    key, name = found
    if line[:len(key)].lower() != key:
        return None, b""
    rest = line[len(key):]
    if key.endswith(b":") or not rest or rest[:1] == b" ":
        return name, rest
    return None, b""

def valid_helo(name: str, allow_chars: str = "") -> bool:
    """Exim's HELO syntax check: letters, digits, "-" and "." (plus helo_allow_chars), or
    an address literal ``[1.2.3.4]`` / ``[IPv6:...]`` holding a valid address."""
    if not name:
        return False
    if name.startswith("["):
        if not name.endswith("]"):
            return False
        inner = name[1:-1]
        if inner[:5].lower() == "ipv6:":
            inner = inner[5:]
        try:
            ipaddress.ip_address(inner)
        except ValueError:
            return False
        return True
    if _HELO_NAME_RE.fullmatch(name):
        return True
    return bool(allow_chars) and all(c.isascii() and (c.isalnum() or c in "-.")
                                     or c in allow_chars for c in name)


_HELO_NAME_RE = re.compile(r"[A-Za-z0-9.-]+")
#: A control character (C0 or DEL): never in an envelope address.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: EHLO keywords Exim lists before PIPELINING (after DSN), in its order.
_BEFORE_PIPELINING = ("ETRN", "VRFY", "EXPN")
#: ... and after PIPELINING; keywords Exim 4.96 does not have come last
_AFTER_PIPELINING = ("AUTH", "CHUNKING", "STARTTLS", "PRDR", "SMTPUTF8")


def _after_pipelining_rank(keyword: str) -> int:
    name = keyword.split()[0].upper()
    return _AFTER_PIPELINING.index(name) if name in _AFTER_PIPELINING \
        else len(_AFTER_PIPELINING)

_ESMTP_PARAM_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9\-]*)(?:=(\S*))?$")


@dataclass
class _FixedRead:
    """A fixed-size read in progress (:meth:`SmtpServer.read_bytes`)."""

    wanted: int
    done: Callable[[bytes], None]
    piece: Callable[[bytes], None] | None
    got: bytearray = field(default_factory=bytearray)


@dataclass
class ParsedPath:
    """An envelope path from MAIL/RCPT/VRFY: ``address`` (source route removed, None on
    a syntax error), ``raw`` (the text it came from), the ESMTP ``params`` after it and
    ``error`` (Exim's text for a bad address; an over-long one keeps its ``address``)."""

    address: str | None
    raw: str
    params: list[str]
    error: str | None = None


#: The end of the error for a bare local part where a whole address is needed.
MISSING_DOMAIN = "address must contain a domain"


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_PHRASE_WITHOUT_ANGLE = 'missing or malformed local part (expected word or "<")'
_UNMATCHED_QUOTE = "unmatched doublequote in local part"


def _scan_words(text: str) -> tuple[int, str]:
    """Read the words (and quoted strings) at the start of ``text`` in one pass, as far as
    the first "<", "@" or ">" outside quotes: where it stopped and on what ("" at the end,
    '"' at a quoted string that never closes).  A client's text must never cost more
    than its length."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            m = _QUOTED.match(text, i)
            if m is None:
                return i, '"'
            i = m.end()
            continue
        if c in "<@>":
            return i, c
        i += 1
    return n, ""


def _leading_phrase(text: str) -> str:
    """The phrase in front of ``<address>`` (words or quoted strings, and the white
    space after them), or "" when there is none (an address, not a phrase)."""
    if "<" not in text or text.startswith("<"):
        return ""
    stop, on = _scan_words(text)
    return text[:stop] if on == "<" else ""


def _unmatched_quote(text: str) -> str | None:
    """Exim's complaint about a quoted word that never closes in the words before an
    address (``"Joe <j@x>``), or None: in the first word it is a bad local part, after
    it a bad phrase word."""
    stop, on = _scan_words(text)
    if on != '"':
        return None
    in_phrase = any(ch in " \t" for ch in text[:stop])
    return _UNMATCHED_QUOTE + (' (expected word or "<")' if in_phrase else "")


def _split_bare(text: str) -> tuple[str, str] | None:
    """A bare (unbracketed) address and what follows it: it ends at white space outside
    a leading quoted part.  None when there is white space in its local part: a phrase,
    which Exim wants followed by "<"."""
    local = _QUOTED.sub('""', text).partition("@")[0]
    if any(c in local.strip() for c in " \t"):
        return None
    quoted = _QUOTED.match(text)
    space = next((i for i in range(quoted.end() if quoted else 0, len(text))
                  if text[i] in " \t"), len(text))
    return text[:space], text[space:]


# RFC 822's specials, which end an atom (with white space and control characters)
_SPECIALS = '()<>@,;:\\".[]'


def _local_part_end(text: str) -> int:
    """Where an unquoted local part at the start of ``text`` ends as Exim reads it:
    atoms (a backslash takes the next character into the atom, "a\\@b") joined by
    dots, white space allowed round them."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        while i < n and (text[i] == "\\" or not (
                text[i] in _SPECIALS or text[i] in " \t" or _CONTROL_RE.match(text[i]))):
            i += 2 if text[i] == "\\" else 1
        i = min(i, n)
        end = i
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != ".":
            return end if i >= n or text[i] != "@" else i
        while i < n and text[i] == ".":
            i += 1


def _exim_words(text: str) -> str:
    """A local part as Exim copies it: without the white space round its words (a
    backslash keeps the character after it, even a space)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append(text[i:i + 2])
            i += 2
            continue
        if text[i] not in " \t":
            out.append(text[i])
        i += 1
    return "".join(out)


def parse_path(arg: str, role: str = "recipient", allow_domain_literals: bool = False,
               qualify_domain: str | None = None,
               allow_utf8_domains: bool = True, qualify_bare: str | None = None,
               strip_excess_angle_brackets: bool = False,
               strip_trailing_dot: bool = False) -> ParsedPath:
    """Parse ``<addr> PARAM=x ...`` (or a bare ``addr``) like Exim's SMTP address parser.

    ``role`` ("sender"/"recipient") words the missing-domain error; an unqualified
    ``postmaster`` recipient is qualified with ``qualify_domain`` when one is given, and
    any bare local part with ``qualify_bare`` (a client in sender_unqualified_hosts or
    recipient_unqualified_hosts).
    Without ``allow_utf8_domains`` (an SMTPUTF8 transaction, or the main option) a
    domain stops at its first non-ASCII character, and what follows is refused as
    trailing junk, as Exim words it.
    ``strip_excess_angle_brackets`` and ``strip_trailing_dot`` are the main options:
    ``<<a@b>>`` is read as ``<a@b>``, ``a@b.`` as ``a@b``.
    """
    arg = arg.strip()
    if arg.startswith("("):
        arg = skip_comments(arg)
    # a phrase before "<" is passed over, as in Exim ("Name <a@b>", "Name <>")
    phrase = _leading_phrase(arg)
    body = arg[len(phrase):]
    bracketed = body.startswith("<")
    extra = 0
    if bracketed:
        # Exim reads a second "<" as the start of the local part (an error), unless
        # strip_excess_angle_brackets allows redundant pairs round the address.
        while body[1 + extra:2 + extra] == "<":
            if not strip_excess_angle_brackets:
                return ParsedPath(None, arg, [], "missing or malformed local part")
            extra += 1
        end, quoted, i = -1, False, 1 + extra
        if '"' not in body:          # no quoting: the first ">" closes (the usual case)
            end, i = body.find(">", i), len(body)
        while i < len(body):
            c = body[i]
            if c == "\\" and quoted:
                i += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == ">" and not quoted:
                end = i
                break
            i += 1
        if end < 0:
            return ParsedPath(None, arg, [], _unclosed_error(body[1 + extra:]))
        close, opened = end + 1, 1 + extra
        while extra and body[close:close + 1] == ">":
            close, extra = close + 1, extra - 1
        if extra and close >= len(body):
            return ParsedPath(None, arg, [], "'>' missing at end of address")
        inner, raw, rest = body[opened:end], phrase + body[:close], body[close:]
        masked = _QUOTED.sub('""', inner) if '"' in inner else inner
        nested = masked.split("<", 1)[0]
        if "<" in masked and "@" not in nested and nested.split():
            # a phrase inside the brackets: Exim read its first word as a local part
            return ParsedPath(None, arg, [], f'"@" or "." expected after "{nested.split()[0]}"')
        if rest and (extra or not (rest[0].isspace() or rest[0] == "(")):
            # what follows the address without a space is junk, not parameters
            return ParsedPath(None, arg, [],
                              f"malformed address: {rest} may not follow {raw}")
    else:
        split = _split_bare(arg)
        if split is None:
            return ParsedPath(None, arg, [], _unmatched_quote(arg) or _PHRASE_WITHOUT_ANGLE)
        inner, rest = split
        raw = inner
    params = (skip_comments(rest) if "(" in rest else rest).split()
    too_long = address_too_long(inner)
    if _CONTROL_RE.search(inner):
        return ParsedPath(None, raw, params, "malformed address")
    route = ""
    if inner.startswith("@"):
        # A source route (@a,@b:user@domain) is obsolete: Exim checks it and drops it.
        route, route_error = _source_route(inner, allow_domain_literals, allow_utf8_domains)
        if route_error is not None:
            return ParsedPath(None, raw, params, route_error)
        inner = inner[len(route):].lstrip(" \t")
        if not inner:
            return ParsedPath(None, raw, params, "missing or malformed local part")
    if inner == "":
        return ParsedPath("", raw, params)
    if inner.startswith('"'):
        j, k = 1, -1
        while j < len(inner):
            if inner[j] == "\\":
                j += 2
                continue
            if inner[j] == '"':
                k = j
                break
            j += 1
        if k < 0:
            return ParsedPath(None, raw, params, _UNMATCHED_QUOTE)
        local, remainder = inner[:k + 1], inner[k + 1:]
    else:
        if "(" in inner or not bracketed:
            stop = _local_part_end(inner) if "(" not in inner else len(inner)
            if stop < len(inner) and inner[stop] == ";":
                # the end of a group: Exim takes the bare local part, then the junk
                return ParsedPath(None, raw, params, f"malformed address: "
                                  f"{inner[stop:][:_JUNK_SHOWN]} may not follow {inner[:stop]}")
            if stop < len(inner) and inner[stop] != "@":
                # a bare address's local part ends at a special ("a:b@c"): Exim then
                # reads a phrase, and finds no word there
                return ParsedPath(None, raw, params, _PHRASE_WITHOUT_ANGLE)
            local, at, dom = inner.partition("@")
            local, dom = local.strip(" \t"), dom.lstrip(" \t")
            if any(c in local for c in " \t"):
                # words of a local part are joined by dots, never by white space
                return ParsedPath(None, raw, params,
                                  f'"@" or "." expected after "{local.split()[0]}"')
        else:
            stop = _local_part_end(inner)
            local = _exim_words(inner[:stop])
            if not local and inner[stop:stop + 1] == "@":
                return ParsedPath(None, raw, params, "missing or malformed local part")
            if stop < len(inner) and inner[stop] != "@":
                # Exim's local part ends at a special character ("a:b", "a,b") or
                # white space between words: it wants "@" or "." there
                return ParsedPath(None, raw, params, f'"@" or "." expected after "{local}"')
            at, dom = inner[stop:stop + 1], inner[stop + 1:].lstrip(" \t")
        remainder = at + dom
    if not remainder:
        if route:
            return ParsedPath(None, raw, params, "domain missing in source-routed address")
        if too_long:
            return _too_long(local, raw, params)
        if qualify_bare and local:
            return ParsedPath(f"{local}@{qualify_bare}", raw, params)
        if role == "recipient" and local.lower() == "postmaster" and qualify_domain:
            return ParsedPath(f"{local}@{qualify_domain}", raw, params)
        return ParsedPath(None, raw, params, f"{role} {MISSING_DOMAIN}")
    if not remainder.startswith("@"):
        return ParsedPath(None, raw, params, "malformed address")
    domain = remainder[1:]
    if "(" in domain and not domain.lstrip(" \t(").startswith("["):
        # Exim passes over comments round the labels of a domain ("a@(c)b.example")
        domain = _without_comments(domain)
    if strip_trailing_dot and domain.endswith(".") and not domain.endswith(".."):
        domain = domain[:-1]
    cut = -1 if allow_utf8_domains or domain.startswith("[") else first_non_ascii(domain)
    # Exim's domain ends at an angle bracket: what follows is trailing junk, or, with
    # nothing before it, no domain at all ("0@>", "a@<b").
    angle = min((i for i in (domain.find("<"), domain.find(">")) if i >= 0), default=-1)
    if angle == 0 and not domain.startswith("["):
        return ParsedPath(None, raw, params, "domain missing or malformed")
    if angle > 0 and not domain.startswith("[") and (cut < 0 or angle < cut):
        cut = angle
    if cut >= 0 and (cut == 0 or domain[cut - 1] == ".") and not domain.startswith("["):
        return ParsedPath(None, raw, params, "domain missing or malformed")   # no label
    if cut >= 0:
        lead = f"{phrase}<{route}" if bracketed else route
        tail = ">" if bracketed else ""
        return ParsedPath(None, raw, params, f"malformed address: {domain[cut:]}{tail} may not "
                          f"follow {lead}{local}@{domain[:cut]}")
    if "@" in domain:
        cut = domain.index("@")
        if not domain.startswith("["):
            # the domain ends before the "@" where it has junk before it ("x,y@z")
            early = _domain_end(domain[:cut], allow_utf8_domains)
            if early is not None:
                cut = early
        lead = f"{phrase}<{route}" if bracketed else route
        tail = ">" if bracketed else ""
        return ParsedPath(None, raw, params, f"malformed address: {domain[cut:]}{tail} may not "
                          f"follow {lead}{local}@{domain[:cut]}")
    if not local:
        return ParsedPath(None, raw, params, "missing or malformed local part")
    if domain.startswith("["):
        if not allow_domain_literals:
            return ParsedPath(None, raw, params, "domain literals not allowed")
        lit = domain[1:-1] if domain.endswith("]") else ""
        if lit[:5].lower() == "ipv6:":
            lit = lit[5:]
        try:
            ipaddress.ip_address(lit)
        except ValueError:
            return ParsedPath(None, raw, params, "domain missing or malformed")
    else:
        domain_end = _domain_end(domain, allow_utf8_domains)
        if domain_end is None:
            return ParsedPath(None, raw, params, "domain missing or malformed")
        if domain_end < len(domain):
            lead = f"{phrase}<{route}" if bracketed else route
            tail = ">" if bracketed else ""
            return ParsedPath(None, raw, params, f"malformed address: {domain[domain_end:]}"
                              f"{tail} may not follow {lead}{local}@{domain[:domain_end]}")
        domain = domain.rstrip(" \t")
    if too_long:
        return _too_long(f"{local}@{domain}", raw, params)
    return ParsedPath(f"{local}@{domain}", raw, params)




def parse_command_address(arg: str, **options: Any) -> tuple[str | None, str | None]:
    """The address a VRFY names, read as Exim reads it: :func:`parse_path`'s reading (a
    phrase may come first, as in ``Name <a@b>``; ``options`` are its keyword options),
    but what follows the address is junk, not parameters; or the error text of its 501
    reply."""
    text = arg.strip(" \t")
    if not text:
        return None, "empty address"
    address = skip_comments(text)          # (a comment before it has no say)
    path = parse_path(address, "recipient", **options)
    if path.error is not None:
        error = path.error
        return None, f"{arg}: {error}" if error.endswith(MISSING_DOMAIN) else error
    if path.params:
        junk = skip_comments(address[len(path.raw):])
        return None, (f"malformed address: {junk[:_JUNK_SHOWN]} may not follow "
                      f"{text[:len(text) - len(junk)]}")
    if not path.address:
        return None, "missing or malformed local part"     # "<>" names nobody
    return path.address, None


def skip_comments(text: str) -> str:
    """``text`` from its first character that is neither white space nor inside an
    RFC 822 comment (``(...)``, nested, ``\\`` quoting); an unclosed comment runs to
    the end.  Exim's address parser passes over them (``<a@b> (home)``)."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "(":
            return text[i:]
        level = 1
        i += 1
        while i < n and level:
            c = text[i]
            if c == "(":
                level += 1
            elif c == ")":
                level -= 1
            elif c == "\\" and i + 1 < n:
                i += 1
            i += 1


def _without_comments(text: str) -> str:
    """``text`` with its RFC 822 comments (and the white space round them) taken out;
    ``text`` as it is when a comment splits a word ("te(c)st": Exim's domain ends at
    the comment, so taking it out would join what Exim keeps apart)."""
    out, rest = [], text
    while rest:
        at = rest.find("(")
        if at < 0:
            out.append(rest)
            break
        before = rest[:at].rstrip(" \t")
        rest = skip_comments(rest[at:])
        if before[-1:] not in ("", ".") and rest[:1] not in ("", "."):
            return text
        out.append(before)
    return "".join(out)


def _domain_end(domain: str, utf8: bool) -> int | None:
    """Where a domain ends, read as Exim reads one: labels of letters, digits and
    hyphens (8-bit characters too with ``utf8``), each starting with a letter or digit,
    joined by dots; white space after it belongs to it.  None when a label is missing
    or starts wrongly ("domain missing or malformed"); what follows the end is junk."""
    i, n = 0, len(domain)
    while True:
        if i >= n or not _label_char(domain[i], utf8) or domain[i] == "-":
            return None
        while i < n and _label_char(domain[i], utf8):
            i += 1
        if i < n and domain[i] == ".":
            i += 1
            continue
        while i < n and domain[i] in " \t":
            i += 1
        return i


def _source_route(inner: str, allow_domain_literals: bool,
                  utf8: bool) -> tuple[str, str | None]:
    """The obsolete source route at the start of ``inner`` (``@a,@b:``, colon included),
    checked as Exim checks it; or the error text of a malformed one."""
    i, n, listed = 0, len(inner), False
    while True:
        i += 1                                   # past the "@"
        while i < n and inner[i] in " \t":
            i += 1
        if inner[i:i + 1] == "[":
            if not allow_domain_literals:
                return "", "domain literals not allowed"
            close = inner.find("]", i)
            if close < 0:                        # (its address is not checked)
                return "", "malformed domain literal"
            i = close + 1
            while i < n and inner[i] in " \t":
                i += 1
        else:
            end = _domain_end(inner[i:], utf8)
            if end is None:
                return "", "domain missing or malformed"
            i += end                             # white space after it included
        if inner[i:i + 1] == ":":
            return inner[:i + 1], None
        if inner[i:i + 1] != ",":
            return "", "colon expected after route list" if listed else "no local part"
        listed = True
        i += 1
        while i < n and inner[i] in " \t":
            i += 1
        if inner[i:i + 1] != "@":
            return "", "colon expected after route list"


def _label_char(c: str, utf8: bool) -> bool:
    return c.isascii() and (c.isalnum() or c == "-") or (utf8 and not c.isascii())


def _unclosed_error(text: str) -> str:
    """Exim's complaint about ``<...`` with no closing bracket: about the address
    when it is incomplete, else about the bracket."""
    if text.startswith('"') and not re.match(r'"(?:[^"\\]|\\.)*"', text):
        return _UNMATCHED_QUOTE
    local, at, domain = text.partition("@")
    if not at and local and not local.startswith('"'):
        return f'"@" or "." expected after "{local.split()[0] if local.split() else local}"'
    if at and not domain.strip():
        return "domain missing or malformed"
    return "'>' missing at end of address"


def address_too_long(text: str) -> bool:
    """Is ``text`` (an address, or the inside of <> with its route) over 256 octets?"""
    return len(text.encode("utf-8", "surrogateescape")) > ADDRESS_MAXLENGTH


def too_long_message(address: str) -> str:
    """Exim's error text for an over-long address."""
    return f"address is ridiculously long: {address[:_ADDRESS_SHOWN]}..."


def _too_long(address: str, raw: str, params: list[str]) -> ParsedPath:
    """An over-long path: the address is kept (so trailing junk is still reported
    first, as Exim does) but ``error`` makes MAIL/RCPT refuse it with 501."""
    return ParsedPath(address, raw, params, too_long_message(address))



#: The largest SIZE= Exim keeps (its int); bigger or negative values become this.
SIZE_PARAM_MAX = 2**31 - 1
_SIZE_VALUE = re.compile(r"([+-]?)([0-9]+)")


def size_param(params: dict[str, str | None]) -> int:
    """The byte count of MAIL's SIZE= parameter, read as Exim reads it (an unsigned
    number, so "-1" is huge; anything over SIZE_PARAM_MAX is SIZE_PARAM_MAX); 0 when
    absent or not a number (int() alone would take "\u0662", "1_000" or " 12")."""
    return size_value(params.get("SIZE") or "") or 0


def size_value(text: str) -> int | None:
    """SIZE='s ``text`` as a number (see size_param), or None when it is not one."""
    m = _SIZE_VALUE.fullmatch(text)
    if m is None:
        return None
    n = int(m.group(2))
    if m.group(1) == "-" and n:
        return SIZE_PARAM_MAX
    return min(n, SIZE_PARAM_MAX)

class SmtpServer:
    """One SMTP dialogue from the server side.

    Parameters mirror Exim main options: ``size_limit`` (message_size_limit, 0 = none),
    ``recipients_max`` (0 = none), ``max_synprot_errors``, ``max_unknown_commands``,
    ``enforce_sync``, ``pipelining`` (whether PIPELINING may be advertised).
    ``extensions`` lists extra EHLO keywords (STARTTLS, AUTH ..., CHUNKING, ...).
    ``dsn_offered`` (the client matches dsn_advertise_hosts) puts DSN in the EHLO reply,
    which enables the RFC 3461 parameters (see :mod:`pymta.smtp.dsn_params`).
    """

    def __init__(self, hostname: str, handler: SmtpHandler | None = None, *,
                 host_address: str = "", size_limit: int = 0, recipients_max: int = 0,
                 max_synprot_errors: int = 3, max_unknown_commands: int = 3,
                 enforce_sync: bool = True, pipelining: bool = True,
                 extensions: list[str] | None = None, helo_required: bool = True,
                 max_nonmail: int = 10) -> None:
        self.hostname = hostname
        self.handler = handler or SmtpHandler()
        self.host_address = host_address
        self.size_limit = size_limit
        self.recipients_max = recipients_max
        self.max_synprot_errors = max_synprot_errors
        self.max_unknown_commands = max_unknown_commands
        self.enforce_sync = enforce_sync
        self.pipelining_allowed = pipelining
        self.extensions = list(extensions or [])
        self.helo_required = helo_required
        # STARTTLS/AUTH/BDAT are recognised only when a module registers a handler here:
        # handler(server, argument) replying through send_reply()/synprot_error().
        self.extra_commands: dict[str, Callable[["SmtpServer", str], None]] = {}
        self.max_nonmail = max_nonmail          # smtp_accept_max_nonmail (0 = no check)
        # smtp_accept_max_nonmail_hosts, asked (as Exim asks) at the first command
        # that counts; None: every client is counted
        self.nonmail_hosts: Callable[[], bool] | None = None
        self.nonmail_count = 0
        self._free_rset = self._free_helo = True
        # helo_allow_chars / helo_accept_junk_hosts (the session decides the host match).
        self.helo_allow_chars = ""
        self.helo_accept_junk = False
        self.recipients_max_reject = False     # 552 instead of 452 beyond recipients_max
        self.allow_domain_literals = False      # allow_domain_literals
        # the domains bare local parts get from a client in sender_unqualified_hosts /
        # recipient_unqualified_hosts (None: the client must send whole addresses)
        self.unqualified_sender: str | None = None
        self.unqualified_recipient: str | None = None
        self.allow_utf8_domains = False         # allow_utf8_domains
        self.strip_excess_angle_brackets = False  # main options of the same names
        self.strip_trailing_dot = False
        # pipelining_connect_advertise_hosts matched: PIPECONNECT is offered, input
        # before the banner is no error, and HELO/EHLO are no synchronisation points.
        self.pipe_connect = False
        self.qualify_domain: str | None = hostname   # for RCPT TO:<postmaster>
        # rewrite rules with the S flag: (command argument, is MAIL) -> argument to use
        self.smtp_rewrite: Callable[[str, bool], str] | None = None
        self.dsn_offered = False                # dsn_advertise_hosts matched the client
        # accept_8bitmime: advertise 8BITMIME and read BODY=; without it, as in Exim,
        # a BODY= parameter of any value is taken off MAIL and ignored
        self.accept_8bitmime = True
        self.tls_remember_esmtp = False         # tls_remember_esmtp (see tls_started)
        self.dsn_advertised = False             # ... and this session said EHLO

        self.greeted = False
        self.closed = False
        self.helo_name: str | None = None
        self.esmtp = False
        self.pipelining_advertised = False
        # A reply was held back because the next command was already there (the client
        # pipelined), and the client spoke before the banner (PIPECONNECT): the L field.
        self.pipelining_used = False
        self.pipe_connect_used = False
        self.data_started: float | None = None     # time.monotonic() at DATA/first BDAT
        # how far the message's header section has come (for the log line if the client
        # goes away meanwhile); DATA and BDAT feed it
        self.data_progress: HeaderProgress | None = None
        self.sender: str | None = None
        self.mail_params: dict[str, str | None] = {}
        self.smtputf8 = False                  # MAIL had SMTPUTF8 (RFC 6531)
        self.recipients: list[str] = []
        self.rcpt_count = 0
        self.rcpt_response: str | None = None
        self.rcpt_response_same = True
        self.discard_message = False
        self.synprot_errors = 0
        self.unknown_commands = 0
        self.messages_received = 0
        self.mail_commands = 0                # every MAIL, refused or not (Exim's count)
        self.last_command = ""
        self.history: list[str] = []          # recognised verbs, for C= in log lines
        self._last_was_rcpt = False
        # the previous command was a MAIL that failed, or a RCPT answered "sender not yet
        # given" after one: such RCPTs are not counted as protocol errors when PIPELINING
        # was offered (the client may have sent them with the MAIL), as in Exim
        self._mail_refused = False
        self._after_refused_mail = False
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._in_data = False
        self._data = bytearray()
        self._data_scan = 0
        self._data_size = 0
        self._data_too_big = False
        self._skip_long_line = False
        self._exchange: Challenge | None = None        # AUTH-style exchange in progress
        # BDAT-style fixed-size read: bytes still wanted, the callback at the end, and
        # either the bytes so far or (streaming) the callback each piece goes to.
        self._want_bytes: _FixedRead | None = None
        # Called whenever the transaction is reset (RSET, HELO/EHLO, TLS, end of data):
        # extensions with their own message state (BDAT) forget it there.
        self.reset_hooks: list[Callable[[], None]] = []
        # Consulted before a recognised command runs: True means it was answered
        # (BDAT refuses most commands in the middle of a chunked message).
        self.command_gate: Callable[[str, str], bool] | None = None
        self.message_chunked = False      # the message in progress came by BDAT
        self._tls_pending = False        # StartTls asked for; input is discarded until done
        self.tls_active = False
        self.plaintext_discarded = 0     # bytes thrown away at STARTTLS (for logging)
        self._refusal: str | None = None  # after a TLS failure: every command but QUIT gets 554
        self._refusal_code = 554

    # ------------------------------------------------------------------ public API
    @property
    def input_waiting(self) -> bool:
        """Is there received input not processed yet (early pipelined commands)?"""
        return bool(self._buf)

    def greet(self, banner: str) -> bytes:
        """Send the banner; if input already arrived, that is a synchronisation error
        (unless the client may pipeline from the start: PIPECONNECT)."""
        if self.enforce_sync and self._buf and not self.pipe_connect:
            self._event("sync_error", reason="input sent without waiting for greeting",
                        input=bytes(self._buf[:100]))
            self.closed = True
            return format_reply(554, "SMTP synchronization error")
        self.pipe_connect_used = self.pipe_connect and bool(self._buf)
        self.greeted = True
        return format_reply(220, banner)

    def take_output(self) -> bytes:
        """The replies gathered so far in this round, handed over to be sent at once
        (before an ACL delay, as Exim flushes); the rest follow as usual."""
        out = b"".join(self._out)
        self._out = []
        return out

    def reject_connection(self, reply: Reply) -> bytes:
        """The connect ACL refused: send its reply and close."""
        self.closed = True
        return reply.render()

    def feed(self, data: bytes) -> bytes:
        """Process received bytes; return the replies to send (possibly empty).

        For callers that only ever send: other actions (TLS, close) are left out."""
        return reply_bytes(self.receive(data))

    def receive(self, data: bytes) -> list[Action]:
        """Process received bytes; return what the I/O layer must do next, in order:
        at most one :class:`SendReply` (all replies of a pipelined group), then
        :class:`Close`, :class:`StartTls`, or what to read next."""
        if self.closed:
            return [Close()]
        if self._tls_pending:
            # Plaintext after STARTTLS never reaches the TLS session (CVE-2011-0411).
            self.plaintext_discarded += len(data)
            return [StartTls()]
        self._buf += data
        if not self.greeted:
            return [ReadLine(SMTP_CMD_BUFFER_SIZE)]
        self._out = []
        while not self.closed and not self._tls_pending:
            if self._in_data:
                if not self._process_data():
                    break
                continue
            if self._want_bytes is not None:
                if not self._process_bytes():
                    break
                continue
            line = self._take_line()
            if line is None:
                break
            if not line:
                continue
            if self._out:
                self.pipelining_used = True
            if self._exchange is not None:
                self._exchange_line(line)
            else:
                self._command(line)
        return self._actions()

    def _actions(self) -> list[Action]:
        """The replies gathered so far, then the next thing the I/O layer must do."""
        out = b"".join(self._out)
        self._out = []
        actions: list[Action] = [SendReply(out)] if out else []
        if self.closed:
            actions.append(Close())
        elif self._tls_pending:
            actions.append(StartTls())
        elif self._want_bytes is not None:
            actions.append(ReadBytes(self._want_bytes.wanted))
        else:
            actions.append(ReadLine(SMTP_CMD_BUFFER_SIZE))
        return actions

    def _take_line(self) -> bytes | None:
        """The next complete line from the buffer (None: need more input; b"": a line
        that was dropped as too long)."""
        nl = self._buf.find(b"\n")
        if self._exchange is not None and not self._skip_long_line and (
                nl > SMTP_CMD_BUFFER_SIZE or (nl < 0 and len(self._buf) > SMTP_CMD_BUFFER_SIZE)):
            # An over-long response is cut short, as Exim's buffer does (AUTH answers
            # "501 Invalid base64 data"); unlike Exim, the rest of the line is thrown
            # away, never read as the next command.
            head = bytes(self._buf[:SMTP_CMD_BUFFER_SIZE])
            if nl > SMTP_CMD_BUFFER_SIZE:
                del self._buf[:nl + 1]
            else:
                del self._buf[:]
                self._skip_long_line = True
            return head
        if nl < 0:
            if len(self._buf) > SMTP_CMD_BUFFER_SIZE:
                # Drop the oversized part; the rest of the line is skipped too (and
                # refused once, however long it is).
                del self._buf[:]
                if not self._skip_long_line:
                    self._skip_long_line = True
                    self._synprot(500, "line too long")
            return None
        line = bytes(self._buf[:nl + 1])
        del self._buf[:nl + 1]
        if self._skip_long_line:
            self._skip_long_line = False
            return b""
        if len(line) > SMTP_CMD_BUFFER_SIZE:
            self._synprot(500, "line too long")
            return b""
        return line

    def connection_lost(self) -> None:
        """The client went away (EOF): log as Exim does."""
        if not self.closed:
            if self.receiving_message:
                progress = self.data_progress
                self._event("lost", where="reading message data",
                            stage=progress.lost_at() if progress else "",
                            first_line_read=bool(progress and progress.first_line_read))
            else:
                self._event("lost", where="reading SMTP command")
            self.closed = True

    def timeout_reply(self) -> bytes:
        """smtp_receive_timeout expired: the 421 to send before closing."""
        self.closed = True
        if self.in_data:
            self._event("data_timeout")
            return format_reply(
                421, f"{self.hostname} SMTP incoming data timeout - closing connection")
        self._event("command_timeout")
        return format_reply(421, f"{self.hostname} SMTP command timeout - closing connection")

    def data_deadline_reply(self, seconds: float) -> bytes:
        """smtp_data_deadline passed while the message was still arriving: the 421 to
        send before closing (the message is abandoned)."""
        self.closed = True
        self._event("data_deadline", seconds=seconds)
        return format_reply(
            421, f"{self.hostname} SMTP data deadline passed - closing connection")

    @property
    def reading_bytes(self) -> bool:
        """Is a fixed-size read (BDAT) in progress?  Its data has no lines."""
        return self._want_bytes is not None

    def shutdown_reply(self) -> bytes:
        """The daemon is stopping: the 421 to send before closing."""
        self.closed = True
        return format_reply(421, f"{self.hostname} Service not available - closing connection")

    @property
    def receiving_message(self) -> bool:
        """Is a message arriving: its data is being read, or a BDAT message waits for
        its next chunk (Exim is still reading the message then: the client going away
        loses message data, not a command)."""
        return self.in_data or self.message_chunked

    @property
    def in_data(self) -> bool:
        """Is message data being read (after DATA, or a BDAT chunk)?"""
        return self._in_data or self._want_bytes is not None

    # ------------------------------------------------------------------ helpers
    def _event(self, name: str, **info: Any) -> None:
        self.handler.on_event(SmtpEvent(name, info))

    def _reply(self, code: int, text: str) -> None:
        self._out.append(format_reply(code, text))

    def _send(self, reply: Reply) -> None:
        self._out.append(reply.render())
        if reply.close:
            self.closed = True

    def _address_error(self, error: str, arg: str) -> None:
        """501 for a MAIL or RCPT address that cannot be used.  A bare local part
        ("must contain a domain") is refused without counting as a syntax error, as
        Exim does; every other address error counts towards smtp_max_synprot_errors."""
        if error.endswith(MISSING_DOMAIN):
            self._reply(501, f"{arg}: {error}")
        else:
            self._synprot(501, error, data=arg)

    def _synprot(self, code: int, text: str, data: str | None = None) -> None:
        """A syntax or protocol error: counts towards smtp_max_synprot_errors."""
        self.synprot_errors += 1
        msg = f"{data}: {text}" if data is not None else text
        # the log line has the error without the argument the reply starts with (Exim)
        self._event("synprot_error", code=code, text=msg, error=text,
                    command=self.last_command)
        if self.max_synprot_errors and self.synprot_errors > self.max_synprot_errors:
            self._out.append(format_reply(code, msg + "\nToo many syntax or protocol errors"))
            self._event("too_many_synprot", command=self.last_command)
            self.closed = True
        else:
            self._reply(code, msg)

    def _sync_ok(self, always: bool) -> bool:
        """Exim's check_sync: no further input may be waiting at a synchronisation point."""
        if not self.enforce_sync or not self._buf:
            return True
        if not always and self.pipelining_advertised:
            return True
        self._event("sync_error", reason="next input sent too soon: pipelining was "
                    + ("advertised" if self.pipelining_advertised else "not advertised"),
                    command=self.last_command, input=bytes(self._buf[:150]))
        self._reply(554, "SMTP synchronization error")
        self.closed = True
        return False

    def _reset_transaction(self) -> None:
        self.message_chunked = False
        self.data_progress = None
        self.pipelining_used = False
        self.data_started = None
        for hook in self.reset_hooks:
            hook()
        self.sender = None
        self.mail_params = {}
        self.smtputf8 = False
        self.recipients = []
        self.rcpt_count = 0
        self.rcpt_response = None
        self.rcpt_response_same = True
        self.discard_message = False

    def _record_rcpt_failure(self, text: str) -> None:
        if self.rcpt_response is None:
            self.rcpt_response = text
        elif self.rcpt_response != text:
            self.rcpt_response_same = False

    # ------------------------------------------------------------------ commands
    def _command(self, raw: bytes) -> None:
        # Exim drops all white space at the end of a command line ("NOOP<tab>" is NOOP)
        line = raw.rstrip(b" \t\r\n\v\f")
        bare_cr = b"\r" in line
        if bare_cr:
            line = line.replace(b"\r", b"")       # never into a log line or a reply
        self.last_command = line.decode("utf-8", "surrogateescape")
        if debug.receive:
            debug.printf("SMTP<< " + _without_secret(self.last_command))
        was_rcpt, self._last_was_rcpt = self._last_was_rcpt, False
        self._after_refused_mail, self._mail_refused = self._mail_refused, False
        if self.handler.should_stop():
            self._out.append(self.shutdown_reply())
            return
        if b"\0" in line:
            self._synprot(501, "NUL characters are not allowed in SMTP commands")
            return
        if bare_cr:
            # a CR inside a command (a quoted local part, a HELO name, a parameter)
            # would reach log lines, headers and the next server raw
            self._synprot(501, "bare CR characters are not allowed in SMTP commands")
            return
        verb, arg = _verb(line)
        # 8-bit bytes that are not UTF-8 are kept as they came (Exim is 8-bit clean in
        # commands): surrogate escapes carry them to the spool and the next server
        text_arg = arg.decode("utf-8", "surrogateescape").strip()
        if self._refusal is not None and verb != "QUIT":
            self._reply(self._refusal_code, self._refusal)
            return
        if verb is None or (verb in ("STARTTLS", "AUTH", "BDAT")
                            and verb not in self.extra_commands):
            self._unknown()
            return
        self.history.append(verb)
        if self._nonmail_exceeded(verb):
            return
        if self.command_gate is not None and self.command_gate(verb, text_arg):
            return
        extra = self.extra_commands.get(verb)
        if extra is not None:
            extra(self, text_arg)
        else:
            getattr(self, "_cmd_" + verb.lower())(text_arg, was_rcpt)
        if verb == "MAIL" and self.sender is None:
            self._mail_refused = True

    def _nonmail_exceeded(self, verb: str) -> bool:
        """smtp_accept_max_nonmail: everything but MAIL/RCPT/DATA/BDAT/QUIT counts, except
        one RSET and one HELO/EHLO while a new message is expected."""
        if not self.max_nonmail or verb in ("MAIL", "RCPT", "DATA", "BDAT", "QUIT",
                                            "XCLIENT"):
            return False
        if verb == "RSET" and self._free_rset:
            self._free_rset = False
            return False
        if verb in ("HELO", "EHLO") and self._free_helo:
            self._free_helo = False
            return False
        if self.nonmail_hosts is not None:
            counted, self.nonmail_hosts = self.nonmail_hosts(), None
            if not counted:
                self.max_nonmail = 0
                return False
        self.nonmail_count += 1
        if self.nonmail_count <= self.max_nonmail:
            return False
        self._event("too_many_nonmail", command=self.last_command)
        self._reply(554, "Too many nonmail commands")
        self.closed = True
        return True

    def _advertised_verbs(self) -> set[str]:
        verbs = {e.split()[0].upper() for e in self.extensions}
        if "CHUNKING" in verbs:
            verbs.add("BDAT")
        return verbs

    def _unknown(self) -> None:
        self.unknown_commands += 1
        if self.max_unknown_commands and self.unknown_commands > self.max_unknown_commands:
            # the last one is logged as a syntax error too (not counted), as Exim does
            self._event("synprot_error", code=500, text="unrecognized command",
                        error="unrecognized command", command=self.last_command)
            self._event("too_many_unknown", command=self.last_command)
            self._out.append(format_reply(500, "Too many unrecognized commands"))
            self.closed = True
            return
        self._synprot(500, "unrecognized command")

    def _ehlo_keywords(self) -> list[str]:
        kw = []
        if self.size_limit:
            kw.append(f"SIZE {self.size_limit}")
        else:
            kw.append("SIZE")
        if self.accept_8bitmime:
            kw.append("8BITMIME")
        if self.dsn_advertised:
            kw.append("DSN")                    # where Exim puts it
        # Exim's order: these come before PIPELINING, the other extensions after it.
        early = [e for name in _BEFORE_PIPELINING for e in self.extensions
                 if e.split()[0].upper() == name]
        kw.extend(early)
        if self.pipelining_allowed:
            kw.append("PIPELINING")
            if self.pipe_connect:
                kw.append("PIPECONNECT")
        kw.extend(sorted((e for e in self.extensions if e not in early),
                         key=_after_pipelining_rank))
        kw.append("HELP")
        return kw

    def _cmd_helo(self, arg: str, _was_rcpt: bool, verb: str = "HELO") -> None:
        if not valid_helo(arg, self.helo_allow_chars) and not (arg and self.helo_accept_junk):
            self._event("helo_invalid", verb=verb, arg=arg)
            # Counted as a syntax error, but Exim answers this one itself: no "Too many
            # syntax or protocol errors" line (and no syntax-error log line) when it is
            # the one too many, just the log line and the end of the session.
            self._reply(501, f"Syntactically invalid {verb} argument(s)")
            self.synprot_errors += 1
            if self.max_synprot_errors and self.synprot_errors > self.max_synprot_errors:
                self._event("too_many_synprot", command=self.last_command)
                self.closed = True
            return
        if not self.pipe_connect and not self._sync_ok(always=True):
            return
        reply = self.handler.on_helo(verb, arg)
        if reply is not None and reply.code // 100 != 2:
            self._send(reply)
            return
        # HELO/EHLO reset any transaction in progress (RFC 5321 4.1.4).
        self._reset_transaction()
        self.helo_name = arg
        self.esmtp = verb == "EHLO"
        self.dsn_advertised = self.esmtp and self.dsn_offered
        hello = f"{self.hostname} Hello {arg}" + \
            (f" [{self.host_address}]" if self.host_address else "")
        if reply is not None and reply.text:
            hello = reply.text
        if verb == "EHLO":
            self.pipelining_advertised = self.pipelining_allowed
            self._reply(250, "\n".join([hello] + self._ehlo_keywords()))
        else:
            self.pipelining_advertised = False
            self._reply(250, hello)

    def _cmd_ehlo(self, arg: str, was_rcpt: bool) -> None:
        self._cmd_helo(arg, was_rcpt, "EHLO")

    def _parse_path(self, arg: str, role: str, **kw: Any) -> ParsedPath:
        """parse_path with this server's strip_excess_angle_brackets and
        strip_trailing_dot."""
        return parse_path(arg, role, strip_excess_angle_brackets=self.strip_excess_angle_brackets,
                          strip_trailing_dot=self.strip_trailing_dot, **kw)

    def _cmd_mail(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=False):
            return
        self.mail_commands += 1
        if self.helo_required and self.helo_name is None:
            self._event("mail_no_helo")
            self._reply(503, "HELO or EHLO required")    # not counted, as in Exim
            return
        if self.sender is not None:
            self._synprot(503, "sender already given")
            return
        if not arg:
            self._synprot(501, "MAIL must have an address operand")
            return
        limited = self.handler.on_mail_command(self.mail_commands)
        if limited is not None:
            self._send(limited)
            return
        arg = self._rewrite_path(arg, True)
        # SMTPUTF8 decides how the address itself is parsed (UTF-8 domains allowed).
        utf8 = self.esmtp and "SMTPUTF8" in self._param_names() and \
            any(p.upper() == "SMTPUTF8"
                for p in self._parse_path(arg, "sender").params)
        path = self._parse_path(arg, "sender", allow_domain_literals=self.allow_domain_literals,
                                allow_utf8_domains=utf8 or self.allow_utf8_domains,
                                qualify_bare=self.unqualified_sender)
        addr, raw, rest = path.address, path.raw, path.params
        params: dict[str, str | None] = {}
        dropped = 0          # words an empty RET=/ENVID= cut off the end
        if self.esmtp and addr is not None:
            try:
                rest, mail_dsn = split_mail_dsn(rest, self.dsn_advertised,
                                                {"SIZE", "BODY"} | self._param_names())
            except DsnSyntaxError as exc:
                self._synprot(501, str(exc))
                return
            params.update(mail_dsn_params(mail_dsn))
            dropped = mail_dsn.dropped
            if dropped:
                arg = arg.rsplit(None, dropped)[0]
        bad_rest: list[str] = []
        words = rest if path.address is not None else []
        for p in words:
            m = _ESMTP_PARAM_RE.match(p)
            if m is None:
                bad_rest.append(p)
                continue
            name = m.group(1).upper()
            if name == "SMTPUTF8" and self.esmtp and name not in self._param_names():
                self._synprot(501, "SMTPUTF8 used when not advertised")
                return
            if name == "SMTPUTF8" and (m.group(2) is not None or name in params):
                bad_rest.append(p)      # it takes no value, and comes once
            elif self.esmtp and name == "SIZE":
                params["SIZE"] = m.group(2)
            elif self.esmtp and name == "BODY" and not self.accept_8bitmime:
                continue
            elif self.esmtp and name == "BODY":
                val = (m.group(2) or "").upper()
                if val not in ("7BIT", "8BITMIME"):
                    self._synprot(501, "invalid data for BODY")
                    return
                params["BODY"] = val
            elif self.esmtp and name in self._param_names() and not bad_rest:
                params[name] = m.group(2)
            else:
                bad_rest.append(p)
        if bad_rest:
            # Exim takes parameters off the end and stops at one it does not
            # understand: that word and all before it are junk after the address.
            last_bad = max(i for i, word in enumerate(words) if word in bad_rest)
            following = " ".join(words[:last_bad + 1])[:_JUNK_SHOWN]
            # the parameters after it were taken off (a DSN one at the end too)
            after = len(path.params) - dropped - last_bad - 1
            if after > 0:
                arg = arg.rsplit(None, after)[0]
            # a syntax error: it counts towards smtp_max_synprot_errors, as in Exim
            self._synprot(501, f"malformed address: {following} may not follow {raw} ",
                          data=arg)
            return
        if path.error or addr is None:
            self._address_error(path.error or "malformed address", arg)
            return
        size = params.get("SIZE")
        if size is not None and self.size_limit:
            n = size_param(params)
            if n > self.size_limit:
                self._event("mail_too_big", address=addr, size=n, max=self.size_limit)
                self._reply(552, "Message size exceeds maximum permitted")
                return
        reply = self.handler.on_mail(addr, params)
        if reply is not None and reply.code // 100 != 2:
            self._send(reply)
            return
        self.sender = addr
        self.mail_params = params
        self.smtputf8 = "SMTPUTF8" in params
        # A new transaction: RCPT failures before this MAIL no longer count.
        self.rcpt_count = 0
        self.rcpt_response = None
        self.rcpt_response_same = True
        self._send(reply or Reply(250, "OK"))

    def _param_names(self) -> set[str]:
        # Extensions like DSN/SMTPUTF8/PRDR add MAIL parameters when advertised; AUTH=
        # is read whether AUTH was offered or not, as Exim reads it (and ignored unless
        # the client authenticated or acl_smtp_mailauth takes it).
        names = {"AUTH"}
        for e in self.extensions:
            kw = e.split()[0].upper()
            if kw == "SMTPUTF8":
                names.add("SMTPUTF8")
            elif kw == "PRDR":
                names.add("PRDR")
        return names

    def _rewrite_path(self, arg: str, mail: bool) -> str:
        """Apply the SMTP-time (S) rewrite rules to the argument of MAIL or RCPT,
        before any syntax check."""
        return arg if self.smtp_rewrite is None else self.smtp_rewrite(arg, mail)

    def _cmd_rcpt(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=False):
            return
        if self.sender is None:
            if self._after_refused_mail and self.pipelining_advertised:
                self._reply(503, "sender not yet given")
                self._mail_refused = True       # and so for the RCPTs after this one
                self._last_was_rcpt = True      # a DATA next is not counted either
            else:
                self._synprot(503, "sender not yet given")
            self._record_rcpt_failure("503 sender not yet given")
            return
        self._last_was_rcpt = True
        self.rcpt_count += 1
        if not arg:
            self._synprot(501, "RCPT must have an address operand")
            return
        arg = self._rewrite_path(arg, False)
        if self.esmtp:
            arg = rcpt_argument_as_exim_leaves_it(arg, self.dsn_advertised)
        path = self._parse_path(arg, "recipient", allow_domain_literals=self.allow_domain_literals,
                                qualify_domain=self.qualify_domain,
                                allow_utf8_domains=self.smtputf8 or self.allow_utf8_domains,
                                qualify_bare=self.unqualified_recipient)
        addr, raw, rest = path.address, path.raw, path.params
        params: dict[str, str | None] = {}
        taken: list[str] = []               # DSN options taken off the end
        if self.esmtp and addr is not None:
            try:
                kept, rcpt_dsn = split_rcpt_dsn(rest, self.dsn_advertised)
            except DsnSyntaxError as exc:
                self._record_rcpt_failure(f"501 {exc}")
                self._synprot(501, str(exc))
                return
            rest, taken = kept, rest[len(kept):]
            params.update(rcpt_dsn_params(rcpt_dsn))
        # RCPT has no parameters besides DSN's: whatever is left is not understood.
        bad_rest: list[str] = list(rest) if addr is not None else []
        if bad_rest:
            shown, follows, junk = _rcpt_junk(arg, raw, taken, bad_rest)
            msg = f"malformed address: {junk[:_JUNK_SHOWN]} may not follow {follows}"
            self._record_rcpt_failure(f"501 {shown}: {msg}")
            self._synprot(501, msg, data=shown)
            return
        if path.error or addr is None or addr == "":
            err = path.error or "missing or malformed local part"
            self._record_rcpt_failure(f"501 {arg}: {err}")
            self._address_error(err, arg)
            return
        if self.recipients_max and self.rcpt_count > self.recipients_max:
            self._record_rcpt_failure("too many recipients")
            self._event("too_many_recipients", address=addr)
            self._reply(552 if self.recipients_max_reject else 452, "too many recipients")
            return
        if self.discard_message:
            self._reply(250, "Accepted")
            return
        reply = self.handler.on_rcpt(addr, params)
        if reply is not None and reply.code // 100 != 2:
            self._record_rcpt_failure(reply.text if reply.own_text is None
                                      else reply.own_text)
            self._send(reply)
            return
        self.recipients.append(addr)
        self._send(reply or Reply(250, "Accepted"))

    def _cmd_data(self, arg: str, was_rcpt: bool) -> None:
        if arg:
            self._synprot(501, "unexpected argument data")
            return
        if not self.recipients and not self.discard_message:
            self.no_valid_recipients("DATA", was_rcpt)
            return
        if not self._sync_ok(always=True):
            return
        self.data_started = time.monotonic()
        reply = self.handler.on_predata()
        if reply is not None and reply.code // 100 not in (2, 3):
            self._send(reply)
            return
        self._reply(354, 'Enter message, ending with "." on a line by itself')
        self._in_data = True
        self.data_progress = HeaderProgress(dot_stuffed=True)
        self._data = bytearray(b"\r\n")   # virtual CRLF: the DATA line's own ending
        self._data_scan = 0
        self._data_too_big = False

    def no_valid_recipients(self, verb: str, after_rcpt: bool) -> None:
        """DATA or BDAT without an accepted recipient: Exim's 503, with the error all
        the RCPTs got when it was the same for each."""
        if self.rcpt_response is not None and self.rcpt_response_same:
            lines = "".join(f"503-{line}\r\n" for line in self.rcpt_response.split("\n"))
            self._out.append(("503-All RCPT commands were rejected with this error:\r\n"
                              + lines).encode("utf-8", "surrogateescape"))
        if self.pipelining_advertised and after_rcpt:
            self._reply(503, f"Valid RCPT command must precede {verb}")
        elif self.rcpt_response is not None:
            # RCPTs were tried and refused: not a protocol error of the client's (Exim)
            self._reply(503, f"valid RCPT command must precede {verb}")
        else:
            self._synprot(503, f"valid RCPT command must precede {verb}")

    def _process_data(self) -> bool:
        """Move buffered input into the message; True when the terminator was found."""
        if self.data_progress is not None:
            self.data_progress.feed(bytes(self._buf))
        self._data += self._buf
        del self._buf[:]
        end = self._data.find(b"\r\n.\r\n", self._data_scan)
        if end < 0:
            # Keep scanning from near the end next time (the terminator may straddle reads).
            self._data_scan = max(0, len(self._data) - 4)
            if self.size_limit and len(self._data) > self.size_limit * 1.05 + 4096:
                # Over the limit: keep only a tail to look for the terminator in.
                self._data_too_big = True
                self._data_size += len(self._data) - 4
                del self._data[:-4]
                self._data_scan = 0
            return False
        rest = self._data[end + 5:]
        body = bytes(self._data[:end + 2])
        self._buf[:0] = rest
        self._in_data = False
        self._data = bytearray()
        # Undo dot-stuffing, then CRLF -> LF; body starts with the virtual CRLF.  Only
        # CRLF ends a line (so only CRLF.CRLF ends the data); a bare CR left over is
        # stored as a line end, as Exim 4.96 does, so nothing relayed later can read
        # "\r.\r" as the end of the data (SMTP smuggling).  A bare LF is a line end
        # in the spool's LF format already; either way the relayed line is dot-stuffed.
        body = body.replace(b"\r\n.", b"\r\n").replace(b"\r\n", b"\n")[1:]
        if b"\r" in body:
            body = body.replace(b"\r", b"\n")
        size = len(body) + self._data_size
        self._data_size = 0
        too_big, self._data_too_big = self._data_too_big, False
        self.end_of_data(body, size, too_big)
        return True

    def end_of_data(self, body: bytes | FileBody, size: int, too_big: bool = False,
                    note: str | None = None) -> None:
        """The whole message is in (DATA's terminator, or BDAT LAST): refuse it when it
        is over message_size_limit, else hand it to the handler; then the transaction
        is over.  ``body`` has LF line endings; ``size`` counts what was received (more
        than ``body`` when the excess was not kept).  ``note`` is a first reply line
        put before an accepting reply (BDAT's "n byte chunk, total m")."""
        if too_big or (self.size_limit and size > self.size_limit):
            self._event("too_big", size=size, max=self.size_limit)
            self._reply(552, "Message size exceeds maximum permitted")
        else:
            reply = self.handler.on_message(body)
            self.messages_received += 1
            if note is not None and reply.code // 100 == 2:
                reply = replace(reply, text=f"{note}\n{reply.text}")
            self._send(reply)
        self._reset_transaction()
        self._free_rset = self._free_helo = True     # a new message is expected

    def _cmd_rset(self, arg: str, _was_rcpt: bool) -> None:
        if arg:
            self._synprot(501, "unexpected argument data")
            return
        self.handler.on_rset()          # (it logs an abandoned transaction)
        self._reset_transaction()
        self._reply(250, "Reset OK")

    def _cmd_noop(self, arg: str, _was_rcpt: bool) -> None:
        self._reply(250, "OK")

    def _cmd_quit(self, arg: str, _was_rcpt: bool) -> None:
        if arg:
            self._synprot(501, "unexpected argument data")
            return
        reply = self.handler.on_quit()
        self._reply(221, reply.text if reply is not None and reply.text
                    else f"{self.hostname} closing connection")
        self.closed = True

    def _cmd_help(self, arg: str, _was_rcpt: bool) -> None:
        # As Exim: AUTH always; STARTTLS while it is on offer; ETRN/EXPN/VRFY when their
        # ACLs are set (the session advertises them then).
        verbs = ["AUTH"] + ["STARTTLS"] * ("STARTTLS" in self.extensions and
                                           not self.tls_active)
        verbs += ["HELO", "EHLO", "MAIL", "RCPT", "DATA"]
        verbs += ["BDAT"] * ("CHUNKING" in self.extensions)
        verbs += ["NOOP", "QUIT", "RSET", "HELP"]
        verbs += [v for v in ("ETRN", "EXPN", "VRFY") if v in self._advertised_verbs()]
        self._reply(214, "Commands supported:\n" + " ".join(verbs))

    def _cmd_vrfy(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=True):
            return
        self._send(self.handler.on_vrfy(arg))

    def _cmd_expn(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=True):
            return
        self._send(self.handler.on_expn(arg))

    def _cmd_etrn(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=True):
            return
        if self.sender is not None:
            self._synprot(503, "ETRN is not permitted inside a transaction")
            return
        # An empty argument goes to the handler too: Exim logs it and runs the ACL.
        reply = self.handler.on_etrn(arg)
        if reply is not None:
            self._send(reply)

    def _cmd_wellknown(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=True):
            return
        self._send(self.handler.on_wellknown(arg))

    def _cmd_xclient(self, arg: str, _was_rcpt: bool) -> None:
        if not self._sync_ok(always=True):
            return
        if "XCLIENT" not in self._advertised_verbs():
            self._synprot(501, "XCLIENT command used when not advertised")
            return
        if self.helo_name is None or self.sender is not None:
            # Exim answers these without counting a protocol error; the handler logs.
            self._event("xclient_refused", reason="no HELO/EHLO given"
                        if self.helo_name is None else "mail transaction in progress")
            self._reply(503, "no HELO/EHLO given" if self.helo_name is None
                        else "mail transaction in progress")
            return
        reply = self.handler.on_xclient(arg)
        if reply is None:
            return
        if reply.code == 220:
            # A new client: it must say HELO/EHLO again before anything else.
            self._reset_transaction()
            self.helo_name = None
            self.esmtp = self.dsn_advertised = self.pipelining_advertised = False
        self._send(reply)

    # ------------------------------------------------------------------ for extensions
    def send_challenge(self, challenge: Challenge) -> None:
        """Start (or continue) a multi-step exchange: send the challenge; the client's
        next line goes to ``challenge.respond`` instead of being a command."""
        self._reply(challenge.code, challenge.text)
        self._exchange = challenge

    def _exchange_line(self, raw: bytes) -> None:
        challenge, self._exchange = self._exchange, None
        assert challenge is not None
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        if line == "*":
            if challenge.cancel is not None:
                challenge.cancel()
            self._reply(501, "Authentication cancelled")
            return
        result = challenge.respond(line)
        if isinstance(result, Challenge):
            self.send_challenge(result)
        elif isinstance(result, Reply):
            self._send(result)
        else:
            raise TypeError(f"exchange step returned {result!r}")

    def read_bytes(self, count: int, done: Callable[[bytes], None],
                   piece: Callable[[bytes], None] | None = None) -> None:
        """Take the next ``count`` bytes of input as data (BDAT), not as commands, and
        call ``done(data)`` with them; ``done`` answers through :meth:`send_reply`.

        With ``piece`` the bytes are not collected: each part is passed to
        ``piece(part)`` as it arrives and ``done`` gets b"" (a chunk is never held
        whole)."""
        self._want_bytes = _FixedRead(count, done, piece)
        if count == 0:
            self._process_bytes()

    def _process_bytes(self) -> bool:
        """Move buffered input into a fixed-size read; True when it is complete."""
        want = self._want_bytes
        assert want is not None
        take = min(want.wanted, len(self._buf))
        if take:
            part = bytes(self._buf[:take])
            del self._buf[:take]
            want.wanted -= take
            if want.piece is not None:
                want.piece(part)
            else:
                want.got += part
        if want.wanted:
            return False
        self._want_bytes = None
        want.done(bytes(want.got))
        return True

    def start_tls(self) -> None:
        """Switch to TLS after the reply already queued (STARTTLS's 220): every byte
        received after the command line is thrown away, now and until
        :meth:`tls_started`, so nothing sent in clear is taken as sent under TLS."""
        self.plaintext_discarded += len(self._buf)
        del self._buf[:]
        self._skip_long_line = False
        self._tls_pending = True

    def tls_started(self) -> list[Action]:
        """The handshake succeeded: the SMTP state starts afresh (RFC 3207 4.2: the
        client must say EHLO again) and the server waits for a command.  With
        tls_remember_esmtp the EHLO state is kept (for clients that never send the
        second EHLO), though not the name it gave, as in Exim."""
        self._tls_pending = False
        self.tls_active = True
        if self.tls_remember_esmtp and self.esmtp:
            self.helo_name = ""
        else:
            self.helo_name = None
            self.esmtp = False
            self.pipelining_advertised = False
        self._reset_transaction()
        self._free_rset = self._free_helo = True
        return self._actions()

    def tls_failed(self) -> list[Action]:
        """The handshake failed: nothing more can be said on this connection."""
        self._tls_pending = False
        self.closed = True
        return self._actions()

    def refuse_until_quit(self, text: str, code: int = 554) -> None:
        """Answer every later command except QUIT with ``code text`` (Exim's state after
        a STARTTLS that cannot succeed, or a failed PROXY header)."""
        self._refusal, self._refusal_code = text, code

    def send_reply(self, reply: Reply) -> None:
        """Queue a reply (for handlers in ``extra_commands``)."""
        self._send(reply)

    def synprot_error(self, code: int, text: str) -> None:
        """Reply with a counted syntax/protocol error (may drop the connection)."""
        self._synprot(code, text)

    def reset_transaction(self) -> None:
        """Forget sender and recipients (after STARTTLS, for example)."""
        self._reset_transaction()


def _rcpt_junk(arg: str, raw: str, taken: list[str],
               bad: list[str]) -> tuple[str, str, str]:
    """The parts of Exim's "malformed address" reply to RCPT: the argument as its option
    scan left it (the DSN options ``taken`` off the end are gone), the text before the
    junk (the white space after the address as sent), and the junk."""
    shown = arg.rstrip(C_SPACE)
    for word in reversed(taken):
        at = shown.rfind(word)
        if at >= 0:
            shown = shown[:at].rstrip(C_SPACE)
    after = shown.find(raw)
    if after < 0:
        return arg, f"{raw} ", " ".join(bad)
    after += len(raw)
    start = after + len(shown[after:]) - len(shown[after:].lstrip(C_SPACE))
    return shown, shown[:start], shown[start:]


def _without_secret(command: str) -> str:
    """A command for the debug output: an AUTH initial response is not shown."""
    words = command.split()
    if len(words) > 2 and words[0].upper() == "AUTH":
        return f"{words[0]} {words[1]} ****"
    return command
