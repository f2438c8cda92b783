"""The resolver's widening of a domain: qualify_single (RES_DEFNAMES) and
search_parents (RES_DNSRCH) of the dnslookup router.

Exim hands these flags to the C resolver; pymta asks dnspython without its search list
and tries the names the C resolver (glibc's res_search) would try, in its order, with
the search list of pymta's resolver (resolv.conf's ``search``, or its ``domain`` when
there is no search line):

* a name with at least ``ndots`` dots (default 1), or ending in a dot, is tried as it
  is first;
* then, for a name without dots when qualify_single is set, the name with the first
  search domain appended (every search domain when search_parents is set too), and
  for a dotted name when search_parents is set, the name with each search domain
  appended;
* finally the name as it is, if it was not tried first.
"""
from __future__ import annotations

from typing import Any

from pymta import dns as pdns


def search_domains(resolver: Any) -> list[str]:
    """The resolver's search list (its default domain when the list is empty)."""
    names = [n.to_text(omit_final_dot=True) for n in (resolver.search or [])]
    if not names:
        domain = getattr(resolver, "domain", None)
        text = domain.to_text(omit_final_dot=True) if domain is not None else ""
        if text and text != ".":
            names = [text]
    return [n for n in names if n and n != "."]


def names_to_try(name: str, qualify_single: bool, search_parents: bool,
                 resolver: Any = None) -> list[str]:
    """The names looked up for ``name``, in order (see the module docstring)."""
    res = resolver if resolver is not None else pdns.get_resolver()
    trailing_dot = name.endswith(".")
    bare = name.rstrip(".")
    dots = bare.count(".")
    ndots = getattr(res, "ndots", None) or 1
    as_is_first = trailing_dot or dots >= ndots
    out = [bare] if as_is_first else []
    searched: list[str] = []
    if not trailing_dot:
        if dots == 0 and qualify_single:
            searched = search_domains(res)
            if not search_parents:
                searched = searched[:1]
        elif dots and search_parents:
            searched = search_domains(res)
    out += [f"{bare}.{d}" for d in searched]
    if not as_is_first:
        out.append(bare)
    seen: list[str] = []
    for n in out:
        if n.lower() not in (s.lower() for s in seen):
            seen.append(n)
    return seen
