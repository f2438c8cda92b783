"""Domain, host, address and local-part list matching (Exim spec chapter 10).

Each ``match_*`` function takes the subject, the list text and an ExpandContext and
returns True/False.  ``list_text`` is expanded first unless ``expand=False`` (pass that
when the caller already expanded it, as ``${if match_domain...}`` does).  A forced
expansion failure means "not in the list"; a lookup deferral raises ``ExpandDefer``.

The list is scanned left to right; the first matching item decides (negated items
``!x`` exclude); with no match the result is True only if the last item was negated.
On a match the value information is stored in ``$domain_data`` / ``$local_part_data``
/ ``$host_data`` / ``$address_data``-style variables (see ``data_var``).
"""
from __future__ import annotations

import ipaddress
import re
import weakref
from functools import lru_cache
from typing import Any, Callable

from .debuglog import debug
from .expand.errors import ExpandDefer, ExpandError, ExpandFail
from .expand.lists import split_list
from .hostname import (
    HostLookupDeferred,
    HostName,
    client_host_name,
    forget_temporary_errors,
    parse_lookup_order,
)
from .log import log_selected
from .logevents import host_field
from .taint import captures, is_tainted, taint

_LOOKUP_RE = re.compile(r"^(?:partial\d*(?:-|\([^)]*\)))?"
                        r"(lsearch|wildlsearch|nwildlsearch|iplsearch|dsearch|lmdb|json|"
                        r"dnsdb|cdb|dbm|dbmnz|dbmjz|sqlite|mysql|pgsql|ldap|ldapdn|ldapm|"
                        r"nis|nis0|nisplus|passwd|redis|testdb|spf|readsock)(?:\*@?)?(?:,[^;]*)?;")
_NET_RE = re.compile(r"^net(\d*)-(.+)$")
_MAX_DEPTH = 20


class HostInfoMissing(Exception):
    """A host-list item needs an address or a host name that cannot be had: ``kind``
    is "unknown" (it does not exist) or "defer" (a temporary DNS failure); ``reason``
    is Exim's wording ("failed to find IP address for NAME")."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


#: Host-list items that say what a missing address or name means for the items after
#: them (spec 10.15 and 10.17): match the list, or skip the item.
_HOST_LIST_MODES = {"+include_unknown": ("unknown", "include"),
                    "+ignore_unknown": ("unknown", "ignore"),
                    "+include_defer": ("defer", "include"),
                    "+ignore_defer": ("defer", "ignore")}


def _expand_list(list_text: str, ctx: Any, expand: bool) -> str | None:
    if not expand:
        return list_text
    from .expand import expand_string
    try:
        return expand_string(list_text, ctx)
    except ExpandFail:
        if debug.lists:
            debug.printf(f'expansion of "{list_text}" forced failure: '
                         "assume not in this list")
        return None


@lru_cache(maxsize=512)
def _regex(pattern: str, caseless: bool) -> re.Pattern:
    from .expand.evaluator import pcre_to_python
    try:
        return re.compile(pcre_to_python(pattern), re.IGNORECASE if caseless else 0)
    except re.error as e:
        raise ExpandError(f"regular expression error in \"{pattern}\": {e}") from None


# The compiled-pattern cache, for the rewrite engine's regular-expression patterns.
compiled_regex = _regex


def _read_list_file(path: str, kind: str) -> list[str]:
    """A file named in a list: one item per line, # comments, no expansion."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ExpandDefer(f"failed to open {path} when checking \"{path}\": "
                          f"{e.strerror}") from None
    out = []
    for line in lines:
        if kind in ("domain", "host"):
            line = line.split("#", 1)[0]
        else:
            line = re.sub(r"(^|\s)#.*$", "", line)
        line = line.strip()
        if line:
            out.append(line)
    return out


def _lookup(item: str, key: str, ctx: Any, allow_partial: bool = True,
            list_item: str | None = None) -> str | None:
    """Run an in-list lookup item ``type;file-or-query`` with ``key`` (``list_item``: the
    list's item as written, when it is not ``item``)."""
    from .lookups import QUERY_STYLE, do_lookup_spec, parse_lookup_type
    spec_text, _, target = item.partition(";")
    target = target.strip()
    spec = parse_lookup_type(spec_text)
    if not allow_partial:
        spec_text = re.sub(r"^partial\d*(?:-|\([^)]*\))", "", spec_text)
    try:
        if spec.name in QUERY_STYLE:
            return do_lookup_spec(spec_text, target, None, ctx)
        if key == "":
            return None
        return do_lookup_spec(spec_text, target, key, ctx)
    except ExpandDefer as e:
        # which list item deferred: ${if match_*} words its error with it
        e.list_item = list_item or item
        raise


def _run_list(subject_items: list[str], kind: str, ctx: Any,
              test: Callable[[str, Any], tuple[bool, str | None]],
              named_kind: str, depth: int = 0,
              modes: dict[str, str] | None = None,
              shown: tuple[str, str, str, str] | None = None
              ) -> tuple[bool | None, str | None]:
    """Scan items; return (True/False for a decided match, or None for no match, value).

    ``modes`` (host lists) holds what +include_unknown and friends set so far; a
    :class:`HostInfoMissing` from ``test`` is then matched, skipped or passed on.
    ``shown`` = (subject, list text, cache key, option name) for the +lists debug line
    of this list (Exim's 'SUBJECT in "LIST"? yes (matched "ITEM")', with the option's
    name instead of the quoted list when there is one); the key (the subject's value)
    lets fixed named lists remember their answer (:data:`_NAMED_CACHE`)."""
    matched: list[tuple[str, bool]] = []
    res, value = _scan_list(subject_items, kind, ctx, test, named_kind, depth, modes,
                            shown[0] if shown else "", shown[2] if shown else "", matched)
    if debug.lists and shown is not None:
        subject, list_text, _, option = shown
        text = option or f'"{list_text}"'
        if matched:
            item, cached = matched[0]
            answer = f'(matched "{item}"{" - cached" if cached else ""})'
        else:
            answer = "(end of list)"
        debug.printf(f'{subject} in {text}? {"yes" if res else "no"} {answer}')
    return res, value


#: The answers of named lists without "$" in them or in their sublists (Exim's rule: the
#: list is the same each time, spec 10.8), by (list kind, name, subject): (weak
#: reference to the configuration, answer, value).  Exim remembers such answers too
#: (domain lists per recipient, host lists per connection) and says "cached" in its
#: +lists output when a remembered match decides; +local_domains is asked several times
#: per recipient.  A domain list with a lookup, file, regular expression or @mx_ item
#: is not remembered (a delivery process routes for a long time: its file may change).
_NAMED_CACHE_MAX = 4096
_NAMED_CACHE: dict[tuple[str, str, str],
                   tuple[Callable[[], Any], bool | None, str | None]] = {}


def _named_sublist(name: str, named_kind: str, kind: str, ctx: Any,
                   test: Callable[[str, Any], tuple[bool, str | None]], depth: int,
                   modes: dict[str, str] | None, subject: str, cache_key: str
                   ) -> tuple[bool | None, str | None, bool]:
    """The answer of the named list ``+name`` for the subject, and whether it came from
    :data:`_NAMED_CACHE`."""
    key = (named_kind, name, cache_key)
    cacheable = bool(cache_key) and named_kind in ("domain", "host") \
        and _unexpanded(name, named_kind, ctx)
    if cacheable:
        hit = _NAMED_CACHE.get(key)
        if hit is not None and hit[0]() is ctx.config:
            return hit[1], hit[2], True
    sub = _named_list(name, named_kind, ctx)
    if cacheable and named_kind == "domain" and not fixed_domain_list(sub) \
            and name not in ((getattr(ctx.config, "cached_lists", None) or {})
                             .get("domain") or ()):
        cacheable = False
    res, value = _run_list(split_list(sub), kind, ctx, test, named_kind, depth + 1,
                           modes, shown=(subject, sub, cache_key, "") if subject else None)
    if cacheable:
        try:
            if len(_NAMED_CACHE) >= _NAMED_CACHE_MAX:
                _NAMED_CACHE.clear()
            _NAMED_CACHE[key] = (weakref.ref(ctx.config), res, value)
        except TypeError:           # a stand-in configuration that cannot be referred to
            pass
    return res, value, False


def _unexpanded(name: str, kind: str, ctx: Any, depth: int = 0) -> bool:
    """Whether the named list ``+name`` and the named lists it refers to have no "$"
    in them as written (or are declared ``domainlist_cache`` and the like)."""
    table = (getattr(ctx.config, "named_lists", None) or {}).get(kind) or {}
    text = table.get(name)
    if text is None or depth > _MAX_DEPTH:
        return False
    if name in ((getattr(ctx.config, "cached_lists", None) or {}).get(kind) or ()):
        return True
    if "$" in text:
        return False
    return all(_unexpanded(item.lstrip("!").strip()[1:], kind, ctx, depth + 1)
               for item in split_list(text) if item.lstrip("!").strip().startswith("+"))


def forget_host_answers() -> None:
    """Drop the remembered named host list answers: a new connection starts afresh (a
    receiver serves many; a list's file or DNS answers may have changed meanwhile)."""
    for key in list(_NAMED_CACHE):
        if key[0] == "host":
            _NAMED_CACHE.pop(key, None)
    forget_temporary_errors()       # and names that gave a temporary DNS error


def forget_domain_answers() -> None:
    """Drop the remembered named domain list answers: Exim keeps them per address, so
    a new recipient starts afresh."""
    for key in list(_NAMED_CACHE):      # one call: safe while session threads add
        if key[0] == "domain":
            _NAMED_CACHE.pop(key, None)


def _scan_list(subject_items: list[str], kind: str, ctx: Any,
               test: Callable[[str, Any], tuple[bool, str | None]],
               named_kind: str, depth: int, modes: dict[str, str] | None,
               subject: str, cache_key: str, matched: list[tuple[str, bool]]
               ) -> tuple[bool | None, str | None]:
    """:func:`_run_list`'s scan; the raw item that decided goes into ``matched``."""
    if depth > _MAX_DEPTH:
        raise ExpandError("too many nested named lists")
    last_negated = False
    for raw in subject_items:
        if modes is not None and depth == 0 and raw in _HOST_LIST_MODES:
            what, how = _HOST_LIST_MODES[raw]
            modes[what] = how
            continue
        item = raw
        negate = False
        while item.startswith("!"):
            negate = not negate
            item = item[1:].lstrip()
        last_negated = negate
        if item.startswith("+") and item != "+caseful" and item[1:] and \
                re.fullmatch(r"[A-Za-z0-9_.-]+", item[1:]):
            res, value, cached = _named_sublist(item[1:], named_kind, kind, ctx, test,
                                                depth, modes, subject, cache_key)
            if res is True:
                matched.append((raw, cached))
                return (not negate), value
            if res is False:
                # the sublist actively excluded the subject
                matched.append((raw, cached))
                return negate, None
            continue
        if item == "+caseful":
            ctx.variables["_caseful"] = "1"
            continue
        if item.startswith("/"):
            res, value = _run_list(_read_list_file(item, kind), kind, ctx, test, named_kind,
                                   depth + 1, modes)
            if res is not None:
                matched.append((raw, False))
                return (res != negate), value
            continue
        m = _LOOKUP_LIKE_RE.match(item)
        if m and not _LOOKUP_RE.match(item[len(m.group(1) or ""):]):
            raise ExpandError(f"unknown lookup type \"{m.group(2)}\"")
        try:
            ok, item_value = test(item, ctx)
        except HostInfoMissing as missing:
            mode = (modes or {}).get(missing.kind)
            if mode == "ignore":
                continue
            if mode == "include":
                _log_unknown(ctx, f"{missing.reason}: accepted by +include_{missing.kind}")
                matched.append((raw, False))
                return True, None
            raise
        if ok:
            matched.append((raw, False))
            return (not negate), item_value
    return (True if last_negated else None), None


# "type;..." items: a lookup, so an unknown type is an error, not a literal name
_LOOKUP_LIKE_RE = re.compile(r"^(net\d*-)?(?:partial\d*(?:-|\([^)]*\)))?([a-z][a-z0-9_]*)"
                             r"(?:\*@?)?(?:,[^;]*)?;")


def _named_list(name: str, kind: str, ctx: Any) -> str:
    lists = getattr(ctx.config, "named_lists", None) or {}
    table = lists.get(kind) or {}
    if name not in table:
        raise ExpandError(f"unknown named {kind} list \"+{name}\"")
    from .expand import expand_string
    try:
        return expand_string(table[name], ctx)
    except ExpandFail:
        return ""


def _finish(result: bool | None) -> bool:
    return bool(result)


def _primary_hostname(ctx: Any) -> str:
    from .expand.variables import lookup_variable
    return lookup_variable("primary_hostname", ctx) or ""


def _local_ips(ctx: Any = None) -> frozenset[str]:
    """This host's addresses for @[] and @mx_*: its interfaces and
    extra_local_interfaces."""
    from .config.values import main_option
    from .localips import parse_extra_local
    from .osutil import interface_addresses
    config = getattr(ctx, "config", None)
    extra = main_option(config, "extra_local_interfaces") if config is not None else None
    return interface_addresses() | parse_extra_local(extra)


# -- domain lists ----------------------------------------------------------------

def _domain_item(domain: str, item: str, ctx: Any, local_part_mode: bool = False,
                 caseless: bool = True) -> tuple[bool, str | None]:
    if not local_part_mode:
        if item == "@":
            ph = _primary_hostname(ctx)
            return domain.lower() == ph.lower(), ph
        if item == "@[]":
            if domain.startswith("[") and domain.endswith("]"):
                # the address as written: Exim does not take "IPv6:" off here
                return domain[1:-1] in _local_ips(ctx), "@[]"
            return False, None
        if item.startswith("@mx_"):
            return _mx_match(domain, item, ctx), item
    if item.startswith("^"):
        m = _regex(item, caseless).search(domain)
        if m:
            # Exim 4.96 leaves $0 as the whole subject here (checked against exim -be)
            ctx.numbered = captures(m, domain, whole=domain)
            return True, item
        return False, None
    if item.startswith("*"):
        suffix = item[1:]
        d, s = (domain.lower(), suffix.lower()) if caseless else (domain, suffix)
        if d.endswith(s):
            ctx.numbered = [domain, domain[:len(domain) - len(suffix)]]
            if is_tainted(domain):
                ctx.numbered = [taint(n) for n in ctx.numbered]
            return True, item
        return False, None
    if _LOOKUP_RE.match(item):
        value = _lookup(item, domain, ctx)
        return (value is not None), value
    if caseless:
        return item.lower() == domain.lower(), item
    return item == domain, item


def _mx_match(domain: str, item: str, ctx: Any) -> bool:
    try:
        from . import dns as pdns
        answers = pdns.resolve(domain, "MX")
    except Exception:           # no MX or no DNS: the item does not match
        return False
    local = _local_ips(ctx)
    ph = _primary_hostname(ctx).lower()
    prefs = sorted(answers, key=lambda r: r.preference)
    if not prefs:
        return False
    best = prefs[0].preference
    for r in prefs:
        target = str(r.exchange).rstrip(".").lower()
        is_local = target == ph or bool(_host_ips(target) & local)
        if not is_local:
            continue
        if item.startswith("@mx_any"):
            return True
        if item.startswith("@mx_primary") and r.preference == best:
            return True
        if item.startswith("@mx_secondary") and r.preference != best:
            return True
    return False


def _host_ips(name: str) -> set[str]:
    from . import dns as pdns
    return pdns.host_addresses(name)


#: Items whose result for a domain depends on more than the domain and the configuration:
#: expansions, lookups, files, DNS (@mx_*), named lists, regular expressions (they set
#: $0...), caseful matching.
_UNFIXED_DOMAIN_ITEM = re.compile(r"[$;\\]|^[/+^]|^@mx_")


def fixed_domain_list(list_text: str) -> bool:
    """Whether the domain list ``list_text`` gives the same answer for a domain every time
    (with one configuration), so that a caller may remember its misses."""
    if "$" in list_text or list_text.lstrip().startswith("<"):
        return False
    for item in split_list(list_text):
        if _UNFIXED_DOMAIN_ITEM.search(item.lstrip("!").lstrip()):
            return False
    return True


def match_domain(domain: str, list_text: str, ctx: Any, expand: bool = True,
                 data_var: str = "domain_data", option: str = "") -> bool:
    """Is ``domain`` in the domain list?  Sets ``$domain_data`` on a match.  ``option``
    names the main option the list comes from, for the +lists debug line."""
    text = _expand_list(list_text, ctx, expand)
    if text is None:
        return False
    result, value = _run_list(split_list(text), "domain", ctx,
                              lambda item, c: _domain_item(domain, item, c), "domain",
                              shown=(domain, text, domain, option))
    if result and value is not None and data_var:
        ctx.variables[data_var] = value
    return _finish(result)


def match_localpart(local_part: str, list_text: str, ctx: Any, expand: bool = True,
                    caseful: bool = False, data_var: str = "local_part_data",
                    caseless: bool | None = None) -> bool:
    """Is ``local_part`` in the local-part list?  Sets ``$local_part_data`` on a match.

    Matching is caseless unless ``caseful`` (or ``caseless=False``, as a router with
    ``caseful_local_part`` passes) or a ``+caseful`` item is seen.  Pass the local part
    in the case it was written in: +caseful needs it, and the trace shows it.
    """
    if caseless is not None:
        caseful = not caseless
    text = _expand_list(list_text, ctx, expand)
    if text is None:
        return False
    ctx.variables.pop("_caseful", None)

    lowered = local_part.lower()
    if is_tainted(local_part):
        lowered = taint(lowered)        # what a regex captures from it stays tainted

    def test(item: str, c: Any):
        # as Exim: a caseless match sees the local part in lower case, and a
        # "+caseful" item brings back the case it was written in for those after it
        cl = not caseful and "_caseful" not in c.variables
        return _domain_item(lowered if cl else local_part, item, c, local_part_mode=True,
                            caseless=cl)
    try:
        result, value = _run_list(split_list(text), "localpart", ctx, test, "localpart",
                                  shown=(local_part, text, "", ""))
    finally:
        ctx.variables.pop("_caseful", None)
    if result and value is not None and data_var:
        ctx.variables[data_var] = value
    return _finish(result)


# -- address lists ----------------------------------------------------------------

def _address_item(address: str, item: str, ctx: Any) -> tuple[bool, str | None]:
    caseful = "_caseful" in ctx.variables
    at = address.rfind("@")
    local, domain = (address[:at], address[at + 1:]) if at >= 0 else (address, "")
    if item == "":
        return address == "", ""
    if item.startswith("^"):
        subject = address if caseful else local.lower() + ("@" + domain.lower() if at >= 0
                                                           else "")
        if is_tainted(address):
            subject = taint(subject)
        m = _regex(item, not caseful).search(subject)
        if m:
            ctx.numbered = captures(m, subject)
            return True, item
        return False, None
    if _LOOKUP_RE.match(item):
        if address == "":
            spec = item.partition(";")[0]
            from .lookups import QUERY_STYLE, parse_lookup_type
            if parse_lookup_type(spec).name not in QUERY_STYLE:
                return False, None
        key = address if caseful else local.lower() + ("@" + domain if at >= 0 else "")
        value = _lookup(item, key, ctx, allow_partial=False)
        return value is not None, value
    if address == "":
        return False, None
    if item.startswith("@@"):
        return _at_at(local, domain, item[2:], ctx)
    iat = item.find("@")
    if iat < 0:
        return _domain_item(domain, item, ctx)
    # local@domain pattern: local may start with *, domain is a domain-list item
    ilocal, idomain = item[:iat], item[iat + 1:]
    if ilocal.startswith("*"):
        suf = ilocal[1:]
        ok = local.endswith(suf) if caseful else local.lower().endswith(suf.lower())
    else:
        ok = local == ilocal if caseful else local.lower() == ilocal.lower()
    if not ok:
        return False, None
    if idomain.startswith("+"):
        return match_domain(domain, idomain, ctx, expand=False, data_var=""), item
    # the domain part is matched as a domain list of one item (and traced as one)
    matched, _ = _run_list([idomain], "domain", ctx,
                           lambda it, c: _domain_item(domain, it, c), "domain",
                           shown=(domain, idomain, "", ""))
    return bool(matched), item


def _at_at(local: str, domain: str, lookup_item: str, ctx: Any) -> tuple[bool, str | None]:
    key = domain
    for _ in range(50):
        data = _lookup(lookup_item, key, ctx)
        if data is None:
            return False, None
        items = split_list(data)
        chain = None
        if items and items[-1].startswith(">"):
            chain = items.pop()[1:].strip()
        res, value = _run_list(items, "localpart", ctx,
                               lambda it, c: _domain_item(local, it, c, True), "localpart")
        if res is not None:
            return res, data
        if chain is None:
            return False, None
        key = chain
    raise ExpandError("too many chained @@ lookups")


def match_address(address: str, list_text: str, ctx: Any, expand: bool = True,
                  data_var: str | None = None) -> bool:
    """Is ``address`` in the address list?  ``+caseful`` makes local parts caseful."""
    text = _expand_list(list_text, ctx, expand)
    if text is None:
        return False
    ctx.variables.pop("_caseful", None)
    try:
        result, value = _run_list(split_list(text), "address", ctx,
                                  lambda item, c: _address_item(address, item, c),
                                  "address", shown=(address, text, "", ""))
    finally:
        ctx.variables.pop("_caseful", None)
    if result and value is not None and data_var:
        ctx.variables[data_var] = value
    return _finish(result)


# -- host lists --------------------------------------------------------------------

def _parse_ip(text: str):
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=1024)
def _ip_item(item: str):
    """An IP address or CIDR network item as a network (None when it is neither)."""
    if not item or not (item[0].isdigit() or item[0] in "abcdefABCDEF:"):
        return None
    try:
        if "/" in item:
            return ipaddress.ip_network(item, strict=False)
        ip = ipaddress.ip_address(item)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ipaddress.ip_network(ip)


def _host_item(ip, ip_text: str, hostname: str | None, item: str, ctx: Any,
               ip_only: bool) -> tuple[bool, str | None]:
    if item == "*":
        return True, item
    if item == "":
        return ip is None, item
    if ip is None and not ip_text:
        return False, None
    # IP address or network
    if ip is not None:
        net = _ip_item(item)
        if net is not None:
            return (net.version == ip.version and ip in net), item
    if item == "@[]":
        return ip is not None and str(ip) in _local_ips(ctx), item
    m = _NET_RE.match(item)
    if ip_only and not m and _LOOKUP_RE.match(item):
        m = _NET_RE.match("net-" + item)      # match_ip: lookups are keyed by address
    if m and _LOOKUP_RE.match(m.group(2)):
        bits = m.group(1)
        if ip is None:
            return False, None
        key = str(ip)
        if bits:
            net = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
            key = f"{net.network_address}/{bits}"
            if ip.version == 6:
                key = key.replace(":", ".")
        value = _lookup(m.group(2), key, ctx, list_item=item)
        return value is not None, value
    if ip_only:
        return False, None      # match_ip: names never match
    if _LOOKUP_RE.match(item):
        from .lookups import QUERY_STYLE, parse_lookup_type
        if parse_lookup_type(item.partition(";")[0]).name in QUERY_STYLE:
            value = _lookup(item, "", ctx)
            return value is not None, value
        value = _lookup(item, hostname or _client_name(ip_text, ctx, item), ctx)
        return value is not None, value
    if item.startswith(("^", "*")):
        return _domain_item(hostname or _client_name(ip_text, ctx, item), item, ctx)
    # plain host name (or @): compare by forward lookup of its addresses
    name = _primary_hostname(ctx) if item == "@" else item
    if ip is None:
        return False, None
    return str(ip) in _item_addresses(name, ctx), item


def _client_name(ip_text: str, ctx: Any, item: str) -> str:
    """The client's host name for an item that needs one, looked up (forward
    confirmed) now if it is not known; HostInfoMissing when it has none or the lookup
    deferred (as in Exim, the item then does not match)."""
    if debug.host_lookup:
        debug.printf(f"sender host name required, to match against {item}")
    variables = getattr(ctx, "variables", {})
    reason = f"failed to find host name for {ip_text}"
    if variables.get("host_lookup_failed") == "1":
        raise HostInfoMissing("unknown", reason)
    try:
        name = lookup_client_name(ctx, ip_text).name
    except HostLookupDeferred:
        name = None
    if not name:
        raise HostInfoMissing("unknown", reason)
    return name


def _main_option(config: Any, name: str) -> Any:
    from .config.values import main_option
    return main_option(config, name)


def again_means_nonexist(ctx: Any) -> Callable[[str], bool]:
    """dns_again_means_nonexist as a test of a DNS name whose lookup failed for now
    (traced as Exim traces it when the option is unset)."""
    def test(name: str) -> bool:
        domains = _main_option(getattr(ctx, "config", None), "dns_again_means_nonexist")
        if not domains:
            if debug.lists:
                debug.printf(f"{name} in dns_again_means_nonexist? no (option unset)")
            return False
        return match_domain(name.lower(), str(domains), ctx)
    return test


def lookup_client_name(ctx: Any, ip: str,
                       log: Callable[[str], None] | None = None) -> HostName:
    """The client's host name looked up now as ``ctx``'s configuration says
    (host_lookup_order, dns_again_means_nonexist), its outcome recorded in
    ``ctx.variables`` (see :func:`pymta.hostname.client_host_name`); raises
    HostLookupDeferred.  ``log`` writes a main log line (default: ``ctx.log``'s)."""
    config = getattr(ctx, "config", None)
    order = parse_lookup_order(str(_main_option(config, "host_lookup_order")
                                   or "bydns:byaddr"))
    return client_host_name(
        ctx.variables, ip, order=order, again_nonexist=again_means_nonexist(ctx),
        log_no_name=(log or (lambda text: _log(ctx, text)))
        if log_selected(config, "host_lookup_failed") else None)


def _item_addresses(name: str, ctx: Any) -> set[str]:
    """The addresses of a host named in a host list; HostInfoMissing when it has none
    or they cannot be had now."""
    from . import dns as pdns
    try:
        found = pdns.host_addresses(name, report_deferral=True)
    except pdns.TemporaryDnsError:
        raise HostInfoMissing("defer", f"DNS lookup of {name} deferred") from None
    if not found:
        client = _client_ident(ctx)
        _log(ctx, f"no IP address found for host {name}"
             + (f" (during SMTP connection from {client})" if client else ""))
        raise HostInfoMissing("unknown", f"failed to find IP address for {name}")
    return found


def _client_ident(ctx: Any) -> str:
    """The SMTP client as Exim names it in these lines ("" outside a session)."""
    variables = getattr(ctx, "variables", {})
    ip = variables.get("sender_host_address")
    if not ip:
        return ""
    return host_field(ip, variables.get("sender_host_name"), variables.get("sender_helo_name"))


def _log(ctx: Any, text: str) -> None:
    log = getattr(ctx, "log", None)
    if log is not None and hasattr(log, "main"):
        log.main(text)


def _log_unknown(ctx: Any, text: str) -> None:
    """A line of log_selector +unknown_in_list."""
    if log_selected(getattr(ctx, "config", None), "unknown_in_list"):
        _log(ctx, text)


def match_host(ip: str | None, hostname: str | None, list_text: str, ctx: Any,
               expand: bool = True, ip_only: bool = False,
               data_var: str = "host_data", option: str = "",
               shown_as: str | None = None) -> bool:
    """Is the host (``ip``, optional known ``hostname``) in the host list?

    ``ip`` None or "" means no remote host (matches an empty item).  With ``ip_only``
    (the ``match_ip`` condition) items must be IP addresses, networks or net- lookups.
    ``option`` names the main option the list comes from, for the +lists debug line,
    which calls the host "host" (the address itself with ``ip_only`` or ``shown_as``).
    """
    text = _expand_list(list_text, ctx, expand)
    if text is None:
        return False
    ip_text = (ip or "").strip()
    pip = _parse_ip(ip_text) if ip_text else None
    def item_fn(item: str, c: Any) -> tuple[bool, str | None]:
        matched, value = _host_item(pip, ip_text, hostname, item, c, ip_only)
        if ip_only and matched and not (_NET_RE.match(item) or _LOOKUP_RE.match(item)):
            value = ""          # match_ip: $value is lookup data only (as Exim 4.96)
        return matched, value
    try:
        result, value = _run_list(split_list(text), "host", ctx, item_fn, "host", modes={},
                                  shown=(shown_as or (ip_text if ip_only else "host"), text,
                                         f"{ip_text}|{hostname or ''}", option))
    except HostInfoMissing as missing:
        if missing.kind == "defer":
            raise ExpandDefer(missing.reason) from None
        # Exim: a name or address that cannot be found fails the whole list
        if debug.lists:
            shown_list = option or f'"{text}"'
            debug.printf(f'{shown_as or (ip_text if ip_only else "host")} in {shown_list}?'
                         f" no ({missing.reason})")
        _log_unknown(ctx, f"list matching forced to fail: {missing.reason}")
        return False
    if result and value is not None and data_var:
        ctx.variables[data_var] = value
    return _finish(result)
