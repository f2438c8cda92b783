"""``pymta -be``: expansion test mode.

Reads expressions one per line (a trailing backslash continues onto the next line), and
writes each result on its own line, or ``Failed: <message>`` when the expansion failed.
Configuration macros are replaced in the input lines first, as Exim does.
"""
from __future__ import annotations

import getpass
import os
import re
from typing import Any, Iterable, TextIO

from ..originator import UnknownCallerError, caller_originator
from . import expand_string
from .context import ExpandContext
from .errors import ExpandError

_MACRO_RE = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Za-z0-9_]*")


def replace_macros(line: str, macros: dict[str, str] | None) -> str:
    """Substitute configuration macros (names starting with an upper-case letter)."""
    if not macros or not any(c.isupper() for c in line):
        return line
    return _MACRO_RE.sub(lambda m: macros.get(m.group(0), m.group(0)), line)


def be_context(config: Any, variables: dict[str, str] | None = None) -> ExpandContext:
    """The context -be expands in: no message, the caller as the sender."""
    ctx = ExpandContext(config=config)
    try:
        user = getpass.getuser()
    except Exception:           # no passwd entry for the uid
        user = "root"
    from .variables import lookup_variable
    qd = lookup_variable("qualify_domain", ctx) or ""
    ctx.variables["sender_address"] = f"{user}@{qd}" if qd else user
    ctx.variables["sender_ident"] = user
    ctx.variables["authenticated_id"] = user
    ctx.variables["authenticated_sender"] = ctx.variables["sender_address"]
    if variables:
        ctx.variables.update(variables)
    return ctx


def expand_be_line(line: str, config: Any, ctx: ExpandContext | None = None) -> str:
    """Expand one -be line and return what -be prints for it."""
    if ctx is None:
        ctx = be_context(config)
    line = replace_macros(line, getattr(config, "macros", None))
    try:
        return str.__str__(expand_string(line, ctx))
    except ExpandError as e:
        return f"Failed: {e.message}"


def _logical_lines(lines_in: Iterable[str]) -> Iterable[str]:
    buf = ""
    for raw in lines_in:
        line = raw.rstrip("\n").rstrip("\r")
        if line.endswith("\\"):          # exim -be: a final backslash always continues
            buf += line[:-1]
            continue
        yield buf + line
        buf = ""
    if buf:
        yield buf


def _message_context(ctx: ExpandContext, path: str) -> None:
    """For ``-bem file``: load the message's headers and body into the context."""
    from ..taint import Tainted
    from .message_vars import body_visible, message_file_variables, split_message_file
    with open(path, "rb") as f:
        sender, headers, body = split_message_file(f.read())
    if sender is not None:
        ctx.variables["sender_address"] = Tainted(sender)
    ctx.headers = headers
    ctx.variables.update(message_file_variables(headers, body, body_visible(ctx.config)[0]))
    from ..spool.ids import new_message_id  # -bem gives the message an id, as Exim does
    ctx.variables.setdefault("message_id", new_message_id())
    ctx.variables.setdefault("message_exim_id", ctx.variables["message_id"])
    # like a locally submitted message, it gets Message-Id: and Date: if it lacks them
    names = {h.partition(":")[0].strip().lower() for h in headers}
    host = _main_option(ctx, "primary_hostname") or "localhost"
    if "message-id" not in names and ctx.variables.get("message_id"):
        headers.append(f"Message-Id: <E{ctx.variables['message_id']}@{host}>\n")
    if "from" not in names:
        # the calling user, as for a message submitted on the command line
        try:
            caller = caller_originator(ctx.config)
            login, name = caller.login, caller.name
        except UnknownCallerError:
            login, name = str(os.getuid()), ""
        address = f"{login}@{_main_option(ctx, 'qualify_domain') or host}"
        headers.append(f"From: {name} <{address}>\n" if name else f"From: {address}\n")
    if "date" not in names:
        from email.utils import formatdate
        headers.append(f"Date: {formatdate(localtime=True)}\n")


def _main_option(ctx: ExpandContext, name: str) -> str | None:
    from ..config.values import main_option
    value = main_option(ctx.config, name)
    return str(value) if value else None


def run_be(config: Any, lines_in: Iterable[str] | None = None, out: TextIO | None = None,
           *, stdin: TextIO | None = None, stdout: TextIO | None = None,
           message_file: str | None = None, prompt: bool = False,
           message_variables: ExpandContext | None = None,
           variables: dict[str, str] | None = None) -> int:
    """Run expansion test mode and return the exit status (0).

    ``lines_in`` is either a file-like object of input lines (continued with a trailing
    backslash) or a list of command-line arguments, each one expression; when it is
    empty or None, ``stdin`` (default ``sys.stdin``) is read.  Results go to ``out``
    (or ``stdout``, default ``sys.stdout``).  ``message_file`` is ``-bem``'s message.
    ``prompt``: write Exim's ``> `` prompt before each result and at the end (what
    ``exim -be`` prints when it reads standard input).  ``message_variables``: the
    context of a queued message (``-Mset``), used instead of the caller's.
    ``variables``: more variables to set (the -oM options).
    """
    import sys
    out = out or stdout or sys.stdout
    ctx = message_variables if message_variables is not None else be_context(config)
    if variables:
        ctx.variables.update(variables)
    if message_file:
        try:
            _message_context(ctx, message_file)
        except OSError as e:
            out.write(f"pymta: failed to open {message_file}: {e.strerror}\n")
            return 1
    if isinstance(lines_in, (list, tuple)) and lines_in:
        expressions: Iterable[str] = (a.rstrip("\n") for a in lines_in)
    else:
        source = lines_in if lines_in is not None and not isinstance(lines_in, (list, tuple)) \
            else (stdin or sys.stdin)
        expressions = _logical_lines(source)
    pre = "> " if prompt else ""
    for line in expressions:
        out.write(pre + expand_be_line(line, config, ctx) + "\n")
    if prompt:
        out.write("> \n")
    out.flush()
    return 0
