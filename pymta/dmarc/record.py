"""DMARC policy records (RFC 7489 6.3): the TXT record at ``_dmarc.<domain>``."""
from __future__ import annotations

from dataclasses import dataclass, field

_POLICIES = ("none", "quarantine", "reject")


class BadRecord(Exception):
    """A record that is not a usable DMARC policy (treated as no record)."""


@dataclass(frozen=True)
class DmarcRecord:
    """The tags of one policy record that evaluation and reports need."""

    p: str                                   # none | quarantine | reject
    sp: str | None = None                    # subdomain policy, None: as p
    adkim: str = "r"                         # r(elaxed) | s(trict)
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = field(default_factory=tuple)
    ruf: tuple[str, ...] = field(default_factory=tuple)
    explicit_p: bool = True                  # False: p=none assumed (RFC 7489 6.6.3)
    explicit_sp: bool = False
    explicit_a: tuple[bool, bool] = (False, False)     # adkim, aspf given


def _uris(value: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in value.split(",") if u.strip())


def parse_record(text: str) -> DmarcRecord:
    """Parse a policy record; BadRecord when it has no usable policy."""
    tags: dict[str, str] = {}
    parts = [p.strip() for p in text.split(";")]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        raise BadRecord("the record does not start with v=DMARC1")
    for part in parts[1:]:
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise BadRecord(f"malformed tag {part!r}")
        tags.setdefault(name.strip().lower(), value.strip())
    rua = _uris(tags.get("rua", ""))
    p = tags.get("p", "").lower()
    sp = tags.get("sp", "").lower() or None
    explicit_p = True
    if p not in _POLICIES or (sp is not None and sp not in _POLICIES):
        # RFC 7489 6.6.3 step 6: with a reporting address, act as if p=none
        if not any(u.lower().startswith("mailto:") for u in rua):
            raise BadRecord("no valid p= policy")
        p, sp, explicit_p = "none", None, False
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    if adkim not in ("r", "s") or aspf not in ("r", "s"):
        raise BadRecord("bad adkim= or aspf= value")
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        raise BadRecord("bad pct= value") from None
    if not 0 <= pct <= 100:
        raise BadRecord("pct= out of range")
    return DmarcRecord(p=p, sp=sp, adkim=adkim, aspf=aspf, pct=pct, rua=rua,
                       ruf=_uris(tags.get("ruf", "")), explicit_p=explicit_p,
                       explicit_sp="sp" in tags,
                       explicit_a=("adkim" in tags, "aspf" in tags))
