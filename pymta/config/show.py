"""Output of ``pymta -bP`` (show configuration) and ``pymta -bV`` (version)."""
from __future__ import annotations

import os
from typing import Mapping

import pymta
from pymta.config.model import Config, DriverInstance
from pymta.config.options import OptionSpec, format_value, printable
from pymta.config.values import default_log_file_path, default_pid_file_path
from pymta.osutil import resolve_user

_KINDS = {"router": "routers", "transport": "transports", "authenticator": "authenticators"}
_LIST_WORDS = {"domainlist": "domain", "hostlist": "host", "addresslist": "address",
               "localpartlist": "localpart"}


def _instances(config: Config, kind: str) -> list[DriverInstance]:
    if kind == "router":
        return list(config.routers)
    if kind == "transport":
        return list(config.transports.values())
    return list(config.authenticators.values())


def _driver_specs(inst: DriverInstance) -> tuple[dict[str, OptionSpec], set[str]]:
    """(all option specs, names of the generic options) for a driver instance."""
    from pymta.config import option_tables
    generic = option_tables.generic_options(inst.kind)
    cls = inst.driver_class
    if cls is not None and getattr(cls, "options", None):
        specs = dict(cls.options)
    else:
        try:
            specs = option_tables.driver_options(inst.kind, inst.driver)
        except KeyError:
            specs = dict(generic)
    return specs, set(generic)


#: "verify" and "fail_verify" set both of their _sender/_recipient halves; like Exim,
#: -bP shows only the halves.
_ROUTER_SHORTHANDS = frozenset({"verify", "fail_verify"})


def show_driver(inst: DriverInstance, admin: bool = False) -> str:
    """All options of one driver instance, generic ones first, each group sorted."""
    specs, generic = _driver_specs(inst)
    specs.setdefault("driver", OptionSpec("driver", "string", None))
    lines = []
    order = sorted(n for n in specs if n in generic or n == "driver") + \
        sorted(n for n in specs if n not in generic and n != "driver")
    for name in order:
        if inst.kind == "router" and name in _ROUTER_SHORTHANDS:
            continue
        value = inst.driver if name == "driver" else inst.options.get(name, specs[name].default)
        hidden = not admin and name in inst.hidden
        lines.append(format_value(specs[name], value, hidden=hidden))
    return "\n".join(lines)


#: Files whose place follows the spool directory when the option is unset: -bP shows
#: where they are, as Exim shows its compiled-in paths (exicyclog-style scripts ask).
_SPOOL_PATH_DEFAULTS = {"log_file_path": default_log_file_path,
                        "pid_file_path": default_pid_file_path}


def _main_option(config: Config, name: str, admin: bool) -> str | None:
    main = config.main
    if name not in main.specs:
        return None
    hidden = not admin and main.is_hidden(name)
    value = main.get(name)
    if name in _SPOOL_PATH_DEFAULTS and not value:
        value = _SPOOL_PATH_DEFAULTS[name](str(main.get("spool_directory")))
    if name == "exim_group" and not value:
        value = _primary_group(main.get("exim_user"))
    return format_value(main.specs[name], value, hidden=hidden)


def _primary_group(user: object) -> str | None:
    """The group pymta runs as when exim_group is unset: exim_user's own."""
    import grp
    ids = resolve_user(user)
    if ids is None:
        return None
    try:
        return grp.getgrgid(ids[1]).gr_name
    except KeyError:
        return None


def _named_list_line(config: Config, name: str) -> str | None:
    """``-bP +name``: the named list of any kind called ``name``."""
    for word, kind in _LIST_WORDS.items():
        lists = config.named_lists.get(kind, {})
        if name in lists:
            return f"{word} {name} = {printable(lists[name])}"
    return None


def _value_only(line: str) -> str:
    """``-n``: ``name = value`` without the name (booleans keep theirs, as in Exim)."""
    name, eq, value = line.partition(" =")
    return value.removeprefix(" ") if eq else line


def show_options_result(config: Config, names: list[str], admin: bool = False,
                        no_names: bool = False,
                        environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Like :func:`show_options` but also return False if some name was not known
    (``pymta -bP`` then exits with status 1, as Exim does).  ``no_names`` is ``-n``:
    values without their names; ``environ`` is what ``environment`` lists (the
    environment expansions see)."""
    main = config.main
    if not names:
        lines = [str(_main_option(config, n, admin)) for n in sorted(main.specs)]
        if no_names:
            lines = [_value_only(line) for line in lines]
        return "\n".join(lines) + "\n", True
    out: list[str] = []
    ok = True
    i = 0
    while i < len(names):
        name = names[i]
        arg = names[i + 1] if i + 1 < len(names) else None
        i += 1
        if name in ("config_file", "configure_file"):
            out.append(config.filename)
        elif name == "environment":
            out.extend(k if no_names else f"{k}={v}" for k, v in (environ or {}).items())
        elif name == "macro_list":
            out.extend(config.macros)
        elif name in ("router_list", "transport_list", "authenticator_list"):
            out.extend(inst.name for inst in _instances(config, name[:-5]))
        elif name in ("routers", "transports", "authenticators"):
            kind = name[:-1]
            for inst in _instances(config, kind):
                out.append(f"\n{inst.name} {kind}:")
                out.append(show_driver(inst, admin))
        elif name in _KINDS and arg is not None:
            i += 1
            found = [x for x in _instances(config, name) if x.name == arg]
            if not found:
                out.append(f"{name} {arg} not found")
                ok = False
            else:
                out.append(show_driver(found[0], admin))
        elif name == "macros":
            out.extend(v if no_names else f"{k}={v}" for k, v in sorted(config.macros.items()))
        elif name == "macro" and arg is not None:
            i += 1
            if arg in config.macros:
                out.append(config.macros[arg] if no_names else f"{arg}={config.macros[arg]}")
            else:
                out.append(f"macro {arg} not found")
                ok = False
        elif name.startswith("+") and len(name) > 1:
            found_list = _named_list_line(config, name[1:])
            if found_list is None:
                out.append("no address, domain, host, or local part list called "
                           f'"{name[1:]}" exists')
                ok = False
            else:
                out.append(_value_only(found_list) if no_names else found_list)
        elif name in _LIST_WORDS:
            kind = _LIST_WORDS[name]
            lists = config.named_lists.get(kind, {})
            if arg is not None and arg in lists:
                i += 1
                out.append(f"{name} {arg} = {printable(lists[arg])}")
            else:
                out.extend(f"{name} {k} = {printable(v)}" for k, v in sorted(lists.items()))
        else:
            line = _main_option(config, name, admin)
            if line is None:
                out.append(f"{name} is not a known option")
                ok = False
            else:
                out.append(_value_only(line) if no_names else line)
    return ("\n".join(out) + "\n" if out else ""), ok


def show_options(config: Config, names: list[str], admin: bool = False) -> str:
    """The text ``pymta -bP names...`` prints.

    No names: every main option.  Otherwise each name is a main option, or one of
    ``config_file``, ``router_list``, ``transport_list``, ``authenticator_list``,
    ``routers``/``transports``/``authenticators`` (every instance), ``router NAME``,
    ``transport NAME``, ``authenticator NAME``, ``macros``, ``macro NAME``,
    ``domainlist [NAME]`` (and host/address/localpart lists).  Options set with ``hide``
    show as ``<value not displayable>`` unless ``admin`` is true.
    """
    return show_options_result(config, names, admin)[0]


def _lookup_types() -> list[str]:
    from pymta.lookups import QUERY_STYLE, SINGLE_KEY
    return sorted(SINGLE_KEY | QUERY_STYLE)


def version_text(config: Config | None, support: list[str] | None = None) -> str:
    """The text of ``pymta -bV``, laid out like ``exim -bV``.

    Every list comes from the registries: drivers registered in :mod:`pymta.drivers`,
    the lookup types of :mod:`pymta.lookups` and the ACL tables of
    :mod:`pymta.acl.parse`; the Exim drivers that have no pymta class are listed as
    not supported.
    """
    from pymta import drivers
    from pymta.acl import parse as acl
    from pymta.acl import scanconfig
    from pymta.config import option_tables
    lines = [f"pymta version {pymta.__version__} (Exim {pymta.EXIM_COMPAT_VERSION} compatible)",
             "Support for: " + " ".join(support or []),
             "Lookups (built-in): " + " ".join(_lookup_types())]
    missing = []
    for kind, title in (("authenticator", "Authenticators"), ("router", "Routers"),
                        ("transport", "Transports")):
        built = drivers.all_drivers(kind)
        lines.append(f"{title}: " + " ".join(built))
        absent = [n for n in option_tables.driver_names(kind) if n not in built]
        if absent:
            missing.append(f"{title} not supported in this version: " + " ".join(absent))
    lines.append("Malware: " + " ".join(scanconfig.SUPPORTED_SCANNERS))
    missing.append("Malware not supported in this version: "
                   + " ".join(sorted(scanconfig.UNSUPPORTED_SCANNERS)))
    lines += ["ACL conditions: " + " ".join(sorted(acl.ACL_CONDITIONS)),
              "ACL modifiers: " + " ".join(sorted(acl.ACL_MODIFIERS)),
              "ACL controls: " + " ".join(sorted(acl.ACL_CONTROLS))]
    if acl.ACL_UNSUPPORTED:
        lines.append("ACL items not supported in this version: "
                     + " ".join(sorted(acl.ACL_UNSUPPORTED)))
    lines += missing
    if config is not None:
        lines.append(f"Configuration file is {os.path.abspath(config.filename)}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
