"""How far into a message's header section the data had come when the client went away.

Exim's "lost while reading message data" log line says where it was: " (header)" while
it was reading a line of the header section, " (after header)" when the input ended
just after a complete line of it (Exim was looking at the next character for a
continuation line), and nothing once the body had begun.  :class:`HeaderProgress` is fed
the message data as it arrives (DATA's dot-stuffed lines or the BDAT chunks) and
follows the header section just far enough to tell; once the body has begun, feeding it
costs nothing.

What counts as a header line is Exim's test: graphic characters other than colon,
white space, then a colon (a line starting with white space is not one).  The first line
decides whether lines end with CRLF; after a CRLF first line a bare LF does not end a
header line (Exim reads it as a folded line), as Exim has done since the fix for "SMTP
smuggling" (CVE-2023-51766), which Debian's 4.96 has.
"""
from __future__ import annotations

# The state of the header test on the current logical line.
_NAME_START, _NAME, _SPACE, _YES, _NO = range(5)
# The states of the reader.
_LINE, _PEEK, _BODY = range(3)
_SPACES = b" \t\n\r\v\f"          # C's isspace


class HeaderProgress:
    """Follows the header section of the data fed to it (see the module's text)."""

    def __init__(self, dot_stuffed: bool) -> None:
        self._dot_stuffed = dot_stuffed       # DATA: a dot starting a line is dropped
        self._state = _LINE
        self._check = _NAME_START             # the header test of the logical line
        self._line_len = 0                    # bytes in the current logical line
        self._line_start = True               # at the start of a physical line
        self._prev = b""                      # the byte before, when it was CR
        self._crlf: bool | None = None        # did the first line end with CRLF?
        self._line_checked = False            # was a whole logical line looked at?

    def lost_at(self) -> str:
        """The suffix for Exim's log line, were the input to end now."""
        if self._state == _BODY:
            return ""
        return " (after header)" if self._state == _PEEK else " (header)"

    @property
    def first_line_read(self) -> bool:
        """Had Exim read the first line of the header section whole, were the input to
        end now?  (Then it has asked whether the client is in ignore_fromline_hosts, as
        a "From " line could be there.)"""
        return self._line_checked or self._state == _PEEK

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n and self._state != _BODY:
            if self._state == _PEEK:
                if data[i] in b" \t":
                    self._state = _LINE       # a folded line: the logical line goes on
                    self._content(b"\n")
                    self._line_start = False
                    continue                  # the space is the line's next character
                self._line_checked = True
                if self._check != _YES:
                    self._state = _BODY       # the line that ended the header section
                    return
                self._state = _LINE           # a new header line begins here
                self._check, self._line_len, self._line_start = _NAME_START, 0, True
            byte = data[i:i + 1]
            i += 1
            if self._line_start and self._dot_stuffed and byte == b".":
                self._line_start = False
                continue
            self._line_start = False
            if byte == b"\n":
                self._end_of_line()
            elif self._check in (_YES, _NO) and byte != b"\r":
                # the test is decided: skip to the next line end
                nl = data.find(b"\n", i)
                stop = n if nl < 0 else nl
                self._line_len += stop - i + 1
                self._prev = data[stop - 1:stop] if stop > i else b""
                i = stop
                continue
            else:
                self._content(byte)
            self._prev = byte if byte == b"\r" else b""

    def _end_of_line(self) -> None:
        crlf = self._prev == b"\r"
        self._prev = b""
        if crlf:
            self._line_len -= 1               # the CR was part of the line end
        if self._crlf is None:
            self._crlf = crlf
        elif self._crlf and not crlf and self._line_len:
            # Exim puts a space after a bare LF here: a folded line, not a line end
            self._content(b"\n")
            self._content(b" ")
            return
        if not self._line_len:
            self._state = _BODY               # the blank line before the body
        else:
            self._state = _PEEK
            self._line_start = True

    def _content(self, byte: bytes) -> None:
        self._line_len += 1
        check = self._check
        if check == _NAME_START:
            check = _NO if byte in _SPACES else _NAME
        if check == _NAME:
            if byte == b":":
                check = _YES
            elif byte in _SPACES:
                check = _SPACE
            elif not b"!" <= byte <= b"~":
                check = _NO
        elif check == _SPACE:
            if byte == b":":
                check = _YES
            elif byte not in _SPACES:
                check = _NO
        self._check = check
