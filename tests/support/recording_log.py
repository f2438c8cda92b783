"""A stand-in for pymta.log.Logger that keeps the lines in memory, for unit tests."""
from __future__ import annotations


class RecordingLog:
    """Records (kind, text) pairs; with ``with_msgid`` the message id prefixes the text
    as it would in the real log line."""

    def __init__(self, with_msgid: bool = False) -> None:
        self.lines: list[tuple[str, str]] = []
        self.with_msgid = with_msgid

    def _add(self, kind: str, text: str, msgid: str | None) -> None:
        self.lines.append((kind, f"{msgid} {text}" if msgid and self.with_msgid else text))

    def main(self, text: str, msgid: str | None = None) -> None:
        self._add("main", text, msgid)

    def reject(self, text: str, msgid: str | None = None, **_kw) -> None:
        self._add("reject", text, msgid)

    def panic(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(("panic", text))

    def msglog(self, *_a, **_k) -> None:
        pass

    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)
