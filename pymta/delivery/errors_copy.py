"""errors_copy: the extra (blind) recipients of a bounce pymta generates, chosen by the
bounce's recipient.

Each item of the colon-separated list is a pattern (an address-list item; quoted when
it holds spaces), white space, and a comma-separated list of addresses.  The first item
whose pattern matches the bounce's recipient gives its addresses, expanded with
$local_part and $domain of that recipient (and $0, $1 ... of a wildcard match).  They
are added to the bounce's envelope only: its To: header still names the recipient."""
from __future__ import annotations

from typing import Any

from pymta.config.values import main_option
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError, ExpandFail
from pymta.expand.lists import split_list
from pymta.match import match_address
from pymta.taint import taint

#: a list separator no pattern contains, so that one pattern is one list item
_ONE_ITEM = "<\x01"


def errors_copy_addresses(config: Any, recipient: str) -> list[str]:
    """The addresses errors_copy adds to a bounce sent to ``recipient`` ([] if none)."""
    text = main_option(config, "errors_copy")
    if not text or not recipient:
        return []
    local_part, _, domain = recipient.rpartition("@")
    for item in split_list(str(text)):
        pattern, addresses = _split_item(item)
        if not pattern or not addresses:
            continue
        ctx = ExpandContext(config, {"local_part": taint(local_part),
                                     "domain": taint(domain.lower())})
        if not match_address(recipient, _ONE_ITEM + pattern, ctx, expand=False):
            continue
        try:
            expanded = expand_string(addresses, ctx)
        except (ExpandError, ExpandFail):
            return []
        return [a for a in _comma_split(expanded) if a]
    return []


def _split_item(item: str) -> tuple[str, str]:
    """(pattern, address text) of one item: the pattern ends at white space, or is quoted."""
    item = item.strip()
    if item.startswith('"'):
        end = item.find('"', 1)
        if end < 0:
            return "", ""
        return item[1:end], item[end + 1:].strip()
    pattern, _, rest = item.partition(" ")
    if not rest:
        pattern, _, rest = item.partition("\t")
    return pattern, rest.strip()


def _comma_split(text: str) -> list[str]:
    """Comma-separated addresses; a comma inside quotes or angle brackets is kept."""
    out: list[str] = []
    cur: list[str] = []
    quoted = angle = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        if ch == "," and not quoted and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out
