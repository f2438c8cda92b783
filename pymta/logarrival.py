"""Fields of the ``<=`` line that need more than a tag and a value.

- ``T=`` (log_selector +subject): Exim decodes the MIME encoded-words of the Subject:
  header (to UTF-8), then shows the result as a quoted string: ``"`` and ``\\`` get a
  backslash, the usual control characters but tab their C escapes, and every other byte outside
  printable ASCII an octal escape (top-bit bytes are kept as they are with
  print_topbitchars).
- ``RT=`` (receive_time) and the other durations: whole seconds as Exim prints a time
  (``1m5s``), or with millisec below five seconds ``0.204s``.
- ``L`` (pipelining): ``L`` when the client pipelined, ``L-`` when PIPELINING was offered
  but not used; with PIPECONNECT offered a ``.`` (not used) or ``*`` (used) follows the L.
"""
from __future__ import annotations

from pymta import rfc2047
from pymta.printing import string_printing


# A tab stays as it is (as Exim shows a folded Subject:).
def quoted_printing(text: str) -> str:
    """``text`` as the inside of a quoted log field: non-printing characters escaped
    (see pymta.printing), and the quote and backslash too."""
    return string_printing(text, escaped='"\\')


def subject_field(header_text: str, check_length: bool = True) -> str:
    """``T="..."`` for a Subject: header's full text (name, colon, value, newline);
    ``check_length`` is check_rfc2047_length."""
    value = header_text.split(":", 1)[1] if ":" in header_text else ""
    value = value.lstrip(" \t")
    if value.endswith("\n"):
        value = value[:-1]
    return f'T="{quoted_printing(rfc2047.decode_or_keep(value, check_length))}"'


def pipelining_field(advertised: bool, used: bool, connect_offered: bool,
                     connect_used: bool) -> str:
    """The L field of an arrival ("" when PIPELINING was not offered)."""
    if not advertised:
        return ""
    mark = "*" if connect_used else "." if connect_offered else ""
    return "L" + mark + ("" if used else "-")
