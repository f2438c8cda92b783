"""remote_sort_domains: the order in which one message's remote deliveries are made.

Exim takes the (expanded) domain list item by item: the addresses whose domain matches
the first item go first, in the order they were in, then those matching the second
item, and so on; addresses matching no item keep their order at the end.  Batches for
the same transport and hosts are formed afterwards, so a batch goes where its first
address went.
"""
from __future__ import annotations

from typing import Protocol, Sequence, TypeVar

from pymta.expand import ExpandError, expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.lists import split_list
from pymta.match import match_domain


class _HasDomain(Protocol):
    domain: str


A = TypeVar("A", bound=_HasDomain)


def sort_remote_domains(addresses: Sequence[A], list_text: str | None,
                        ctx: ExpandContext) -> list[A]:
    """Return ``addresses`` ordered by ``remote_sort_domains`` (``list_text``); an
    unset option, or one whose expansion fails, leaves the order alone."""
    left = list(addresses)
    if not list_text or len(left) < 2:
        return left
    try:
        text = str(expand_string(list_text, ctx))
    except ExpandError:
        return left
    ordered: list[A] = []
    for item in split_list(text):
        if not left:
            break
        # one item as a list of its own (colons doubled so it stays one item)
        single = item.replace(":", "::")
        rest: list[A] = []
        for a in left:
            ctx.variables["domain"] = a.domain
            (ordered if match_domain(a.domain, single, ctx, expand=False, data_var="")
             else rest).append(a)
        left = rest
    return ordered + left
