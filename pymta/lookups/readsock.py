"""The ``readsock`` lookup type as Exim 4.96 offers it in expansions.

Exim 4.96 has a lookup named ``readsock``: it is the machinery behind the
``${readsocket}`` expansion item, which hands it the socket name as a "file".
Written as ``${lookup readsock{request}}`` it is query-style, and a query-style
lookup gets no file name, so there is no socket to talk to: Exim 4.96 (checked with
``exim4 -be``) reports the lookup as failed, whatever its options
(``timeout=``, ``shutdown=``, ``tls=``, ``eol=``, ``cache=``, ``send=``) say.
pymta does the same, so that a configuration written for Exim 4.96 behaves alike.
The ``${readsocket}`` item itself is in ``pymta/expand/extra_items.py``.
"""
from __future__ import annotations


def readsock_lookup(query: str, opts: dict[str, str]) -> str | None:
    """Always "not found": the server specification cannot be given (see above)."""
    return None
