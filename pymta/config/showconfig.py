"""``pymta -bP config``: the configuration as it was read -- included files inlined,
conditionals decided, comments and continuations gone -- laid out as ``exim -bP config``
lays it out (section names flush left, instance and ACL names indented by two,
their settings by four).  An option set with ``hide`` keeps its value out of the
listing unless the caller is an admin user."""
from __future__ import annotations

import os
import re

import pymta
from pymta.config.dkim_macros import DKIM_MACROS
from pymta.config.reader import _MACRO_DEF, LineSource

_NO_MACROS = ("retry", "rewrite", "local_scan")
_NAMED = ("acl", "routers", "transports", "authenticators")


def config_text(path: str, macros: dict[str, str] | None = None,
                admin: bool = False) -> str:
    """The text of ``-bP config`` for the configuration file ``path``."""
    initial: dict[str, str] = {"_CONFIG_DIR": os.path.dirname(os.path.abspath(path))}
    initial.update(DKIM_MACROS)
    initial.update(macros or {})
    source = LineSource(path, initial, set(macros or {}))
    out = [f"# Exim Configuration ({pymta.EXIM_COMPAT_VERSION})", f'# 1 "{path}"']
    section = "main"
    for ll in source:
        text = " ".join(ll.text.split())      # exim -bP config collapses white space
        m = re.match(r"begin\s+(\S+)\s*$", text)
        if m:
            section = m.group(1)
            source.allow_macros = section not in _NO_MACROS
            out += ["", f"begin {section}"] + ([] if section in _NO_MACROS else [""])
            continue
        md = _MACRO_DEF.match(ll.text)
        if md and text[0].isupper() and section not in _NO_MACROS:
            source.define(md.group(1), md.group(2), md.group(3), ll.file, ll.line)
            out.append(f"{md.group(1)} {md.group(2)} {' '.join(md.group(3).split())}")
            continue
        if not admin and text.startswith("hide "):
            name = re.split(r"\s*=", text[5:], maxsplit=1)[0]
            text = f"hide {name} = <value not displayable>"
        if section in _NAMED:
            # an instance or ACL name alone on its line, then its settings
            out.append(f"  {text}" if text.endswith(":") else f"    {text}")
        elif section in _NO_MACROS:
            out.append(f"  {text}")
        else:
            out.append(text)
    return "\n".join(out) + "\n"
