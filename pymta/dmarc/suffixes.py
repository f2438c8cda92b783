"""Organizational domains (RFC 7489 3.2) from a public suffix list (dmarc_tld_file).

The file is the Mozilla list's format: one rule per line, ``//`` comments, ``*.``
wildcards and ``!`` exceptions.  The organizational domain of a name is its public
suffix plus one more label; a name that is itself a public suffix has none.
"""
from __future__ import annotations

import os

_cache: dict[str, tuple[float, "SuffixList"]] = {}


class SuffixList:
    """The rules of one public suffix list."""

    def __init__(self, text: str) -> None:
        self.rules: set[str] = set()
        self.wildcards: set[str] = set()      # "*.ck" is stored as "ck"
        self.exceptions: set[str] = set()     # "!www.ck" is stored as "www.ck"
        for raw in text.splitlines():
            line = raw.strip().split()[0] if raw.strip() else ""
            if not line or line.startswith("//"):
                continue
            line = line.lower().rstrip(".")
            if line.startswith("!"):
                self.exceptions.add(line[1:])
            elif line.startswith("*."):
                self.wildcards.add(line[2:])
            else:
                self.rules.add(line)

    def suffix_length(self, labels: list[str]) -> int:
        """How many trailing labels of ``labels`` form the public suffix (at least 1:
        an unlisted top-level domain counts as a suffix, as the list's algorithm says)."""
        best = 1
        for i in range(len(labels)):
            name = ".".join(labels[i:])
            count = len(labels) - i
            if name in self.exceptions:
                return count - 1
            if name in self.rules:
                best = max(best, count)
            parent = ".".join(labels[i + 1:])
            if parent and parent in self.wildcards:
                best = max(best, count)
        return best

    def organizational_domain(self, domain: str) -> str | None:
        """The organizational domain of ``domain``; None for a public suffix itself."""
        labels = [part for part in domain.lower().rstrip(".").split(".") if part]
        if not labels:
            return None
        n = self.suffix_length(labels)
        if n >= len(labels):
            return None
        return ".".join(labels[-(n + 1):])


def load_suffix_list(path: str) -> SuffixList:
    """The list in ``path``, read again only when the file changes."""
    mtime = os.stat(path).st_mtime
    cached = _cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    with open(path, encoding="utf-8", errors="replace") as f:
        parsed = SuffixList(f.read())
    _cache[path] = (mtime, parsed)
    return parsed
