"""``pymta -bf file`` / ``-bF file``: test a user or system filter against a message.

The message comes on standard input.  Nothing is delivered or written: the actions the
filter would take are listed, as Exim lists them.  The envelope is made up: the sender
is ``-f``, else a leading "From " line, else the caller; the recipient is the caller at
the qualify domain, changed by -bfl (local part), -bfd (domain), -bfp/-bfs (prefix,
suffix).
"""
from __future__ import annotations

import getpass
import sys
from typing import Any, TextIO

from pymta.cli.args import CliOptions
from pymta.config.values import main_option
from pymta.expand import ExpandContext
from pymta.expand.message_vars import body_visible, message_file_variables, split_message_file
from pymta.filter import FilterError, bare_address, filter_kind
from pymta.filter.exim_filter import FilterEnvironment, filter_summary, run_exim_filter
from pymta.routing.redirect import split_redirect_items
from pymta.spool.ids import new_message_id
from pymta.taint import Tainted


def _caller() -> str:
    try:
        return getpass.getuser()
    except Exception:       # no passwd entry for this uid
        return "root"


def run_filter_test(config: Any, opts: CliOptions, stdin: TextIO, out: TextIO,
                    err: TextIO) -> int:
    """Run -bF (if given) then -bf (if given); 0, or 1 after an error."""
    qualify = str(main_option(config, "qualify_domain") or
                  main_option(config, "primary_hostname") or "localhost")
    recipient_domain = str(main_option(config, "qualify_recipient") or qualify)
    files = [(f, True) for f in [opts.system_filter_file] if f] + \
        [(f, False) for f in [opts.filter_file] if f]
    texts = []
    for path, system in files:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                texts.append((path, system, fh.read()))
        except OSError as exc:
            err.write(f"pymta: failed to open {path}: {exc.strerror}\n")
            return 1
    raw = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
    from_line, headers, body = split_message_file(raw)
    caller = _caller()
    if opts.sender is not None:
        sender = opts.sender
    elif from_line is not None:
        sender = from_line
        out.write('Sender taken from "From " line\n')
    else:
        sender = f"{caller}@{qualify}"
    return_path = sender
    for h in headers:
        name, _, value = h.partition(":")
        if name.strip().lower() == "return-path":
            return_path = value.strip().strip("<>")
            out.write('Return-path taken from "Return-path:" header line\n'
                      f"Return-path = {return_path}\n")
            break
    else:
        out.write("Return-path copied from sender\n")
    if not headers:
        err.write("Warning: no message headers read\n")
    addr = opts.filter_address
    local_part = addr.get("l", caller)
    domain = addr.get("d", recipient_domain)
    prefix, suffix = addr.get("p", ""), addr.get("s", "")
    out.write(f"Sender      = {sender}\nRecipient   = {prefix}{local_part}{suffix}@{domain}\n")
    if prefix:
        out.write(f"Prefix    = {prefix}\n")
    if suffix:
        out.write(f"Suffix    = {suffix}\n")
    msgid = new_message_id()
    variables: dict[str, str] = {
        "sender_address": Tainted(sender), "return_path": Tainted(return_path),
        "local_part": local_part, "domain": domain, "local_part_prefix": prefix,
        "local_part_suffix": suffix, "original_local_part": local_part,
        "original_domain": domain, "message_id": msgid, "message_exim_id": msgid,
        "home": _home(caller),
        **message_file_variables(headers, body, body_visible(config)[0])}
    ctx = ExpandContext(config, variables, headers=headers)
    mine = [f"{local_part}@{domain}", f"{prefix}{local_part}{suffix}@{domain}"]
    for path, system, text in texts:
        kind = filter_kind(text)
        label = {"exim": "Exim filter", "sieve": "Sieve filter"}.get(kind or "",
                                                                   "forward file")
        out.write(f'Testing {label} file "{path}"\n\n')
        if kind == "sieve":
            from pymta.filter.sieve import report_sieve
            if report_sieve(text, ctx, out, err, mine) != 0:
                return 1
            continue
        if kind is None:
            if system:
                err.write("pymta: a system filter must be an Exim filter\n")
                return 1
            _list_forward_file(text, qualify, out, err)
            continue
        env = FilterEnvironment(ctx, system=system, test_output=out, verbose=opts.verbose,
                                error_message=not sender, user_addresses=mine,
                                qualify_domain=recipient_domain)
        try:
            result = run_exim_filter(text, env)
        except FilterError as exc:
            out.write(f"Filter error: {exc.text()}\n")
            return 1
        out.write(filter_summary(result))
        if system:
            for i, count in enumerate(result.user_vars):
                ctx.variables[f"sn{i}"] = str(count)
    return 0


def _home(user: str) -> str:
    import pwd
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return ""


def _list_forward_file(text: str, qualify: str, out: TextIO, err: TextIO) -> None:
    """A traditional forward file: the items it generates (last first, as Exim)."""
    items = []
    for item in split_redirect_items(text):
        if item.lower().startswith(":include:"):
            try:
                with open(item[9:].strip(), encoding="utf-8", errors="replace") as fh:
                    items.extend(split_redirect_items(fh.read()))
            except OSError as exc:
                err.write(f"pymta: error in forward file: {exc}\n")
                return
        else:
            items.append(item)
    generated: list[str] = []
    for item in items:
        low = item.lower()
        if low == ":blackhole:":
            out.write('pymta: forwardfile contains ":blackhole:"\n')
            generated = []
            break
        if low.startswith((":fail:", ":defer:")):
            out.write(f'pymta: error in forward file: "{item}" is not permitted\n')
            return
        if item.startswith(("|", "/")):
            generated.append(item)
            continue
        bare = bare_address(item)
        if bare == item:
            bare = bare.lstrip("\\")
        generated.append(bare if "@" in bare else f"{bare}@{qualify}")
    if not generated:
        out.write("pymta: no addresses generated from forward file\n")
        return
    out.write("pymta: forward file generated:\n")
    for g in reversed(generated):
        out.write(f"  {g}\n")


def main_bf(opts: CliOptions, config: Any) -> int:
    return run_filter_test(config, opts, sys.stdin, sys.stdout, sys.stderr)
