"""Expansion operators: ``${name:argument}`` and their numeric-suffix forms
(``length_3``, ``substr_1_2``, ``hash_4_3``, ``nhash_8_64``, ``sha2_512``...)."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import Any, Callable

from .. import rfc2047
from ..i18n import label_to_alabel
from ..printing import string_printing
from ..spool.ids import BASE62 as _B62
from ..spool.ids import base62, unbase62
from ..xtext import xtext_decode
from .bytesutil import ascii_lower, ascii_upper, from_bytes, to_bytes
from .errors import ExpandError
from .lists import split_list, split_with
from .parser import ARG_COUNTS, not_enough

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
# Exim's table has "t" and "s" the other way round; ${hash} must give Exim's results
_HASHCODES = "abcdefghijklmnopqrtsuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73,
           79, 83, 89, 97, 101, 103, 107, 109, 113)


# -- numeric-suffix operators -------------------------------------------------

def _bytewise(fn):
    """Exim measures in bytes: apply ``fn`` to the UTF-8 bytes of non-ASCII strings."""
    def wrapper(s: str, *args):
        if s.isascii():
            return fn(s, *args)
        return from_bytes(fn(to_bytes(s), *args))
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_bytewise
def op_length(s, n: int):
    return s[:max(n, 0)]


@_bytewise
def op_substr(s, start: int, length: int | None):
    """Exim substr: a negative start counts from the end; a missing length means 'rest'."""
    size = len(s)
    if start < 0:
        # counted from the right: the substring ends at that point when no length is given
        begin = size + start
        if length is None:
            # no length: everything before the offset point
            return s[:max(begin, 0)]
        if begin < 0:
            length += begin
            begin = 0
            if length < 0:
                length = 0
        return s[begin:begin + length]
    if start > size:
        return s[:0]            # empty of the same type (str or bytes)
    if length is None:
        return s[start:]
    return s[start:start + max(length, 0)]


def op_hash(s: str, length: int, limit: int | None) -> str:
    """Exim's textual hash: fold the string into ``length`` bytes, then map to letters."""
    if limit is None:
        limit = 26
    if limit > len(_HASHCODES):
        raise ExpandError(f"hash count \"{limit}\" too big")
    b = bytearray(to_bytes(s))
    if length >= len(b):
        return s
    if length <= 0:
        return ""           # as Exim 4.96: ${hash{0}{x}} is empty
    if limit == 0:
        # Exim 4.96 dies of a division by zero here (as for nhash); fail the expansion
        raise ExpandError("hash divisor must be positive")
    acc = b[:length]
    pos = 0
    for j in range(length, len(b)):
        c = b[j]
        shift = (c + j) & 7
        acc[pos] = (acc[pos] ^ ((c << shift) | (c >> (8 - shift)))) & 0xFF
        pos += 1
        if pos >= length:
            pos = 0
    return "".join(_HASHCODES[x % limit] for x in acc)


def op_nhash(s: str, div1: int, div2: int | None) -> str:
    """Exim's numeric hash: a weighted byte sum modulo the divisor(s)."""
    total = 0
    i = 0
    for c in to_bytes(s):
        if i == 0:
            i = len(_PRIMES) - 1
        total += _PRIMES[i] * c
        i -= 1
    # Exim divides an unsigned long by its C int divisor (a negative one from
    # ${nhash{-1}{..}} turns huge), and multiplies the two divisors as C ints
    divisor = (div1 if div2 is None else _int32(div1 * div2)) % (1 << 64)
    # Exim 4.96 dies of a division by zero here; an expansion error is kinder
    if divisor == 0 or div2 == 0:
        raise ExpandError("nhash divisor must be positive")
    if div2 is None:
        return str(total % divisor)
    total %= divisor
    return f"{total // div2}/{total % div2}"


# -- IP helpers ----------------------------------------------------------------

def op_mask(arg: str, normalised: bool) -> str:
    addr, sep, bits = arg.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise ExpandError(f"\"{arg}\" is not an IP address") from None
    if not sep:         # Exim checks the address first
        raise ExpandError(f"missing mask value in \"{arg}\"")
    # the mask is read like C's strtol: leading blanks and a sign, empty is 0
    if not re.fullmatch(r"(?:\s*[+-]?\d+)?", bits):
        raise ExpandError(f"\"{arg}\" is not an IP address")
    digits = bits.strip().lstrip("+")
    n = int(digits) if digits not in ("", "-") else 0
    if n < 0:
        raise ExpandError(f"\"{arg}\" is not an IP address")
    if n > ip.max_prefixlen:
        raise ExpandError(f"mask value too big in \"{arg}\"")
    bits = str(n)
    net = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
    base = net.network_address
    if ip.version == 4:
        return f"{base}/{bits}"
    if normalised:
        return f"{base.compressed}/{bits}"
    return base.exploded.replace(":", ".") + f"/{bits}"


def exim_ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """ipaddress.ip_address() for Exim's syntax: an IPv6 address may end in "%" and an
    interface name (possibly empty), which Exim ignores (Python keeps it as a scope id,
    whose ``exploded`` form raises).  Raises ValueError."""
    head, pct, _ = text.partition("%")
    if pct and ":" in head and "." not in head:
        text = head
    return ipaddress.ip_address(text)


def op_reverse_ip(arg: str) -> str:
    # Exim allows a mask after the address (read as ${mask} reads it; a bare "/" too),
    # and ignores it
    m = re.fullmatch(r"(.*)/(?:\s*\+?\d+)?", arg, re.S)
    try:
        ip = exim_ip_address(m.group(1) if m else arg)
    except ValueError:
        raise ExpandError(f"reverse_ip() not given an IP address [{arg}]") from None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped             # ::ffff:1.2.3.4 reverses like 1.2.3.4
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))


def op_ipv6norm(arg: str, denorm: bool) -> str:
    try:
        ip = exim_ip_address(arg)
    except ValueError:
        raise ExpandError(f"\"{arg}\" is not an IP address") from None
    if ip.version == 4:
        ip = ipaddress.IPv6Address("::ffff:" + str(ip))
    if denorm:
        return ip.exploded
    return ip.compressed


# -- time intervals --------------------------------------------------------------

def readconf_time(text: str) -> int | None:
    """Parse an Exim time interval like ``1h30m`` or ``90``; None when malformed."""
    s = text.strip()
    if not s:
        return None
    total = 0
    for num, unit in re.findall(r"(\d+)([wdhms]?)", s):
        total += int(num) * {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[unit]
    if re.fullmatch(r"(\d+[wdhms])+", s) is None:
        return None
    return total


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _time_eval(text: str) -> int | None:
    """${time_eval}: like Exim 4.96 the sum is kept in a C int, so a total that wraps
    negative is an error while a larger one that wraps positive is not."""
    if not re.fullmatch(r"(\d+[wdhms])+", text):
        return None
    total = 0
    for num, unit in re.findall(r"(\d+)([wdhms])", text):
        n = int(num)
        value = _int32(n if n < (1 << 63) else (1 << 63) - 1)   # sscanf %d of a long
        value = _int32(value * {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}[unit])
        total = _int32(total + value)
    return None if total < 0 else total


def op_time_interval(arg: str) -> str:
    if not re.fullmatch(r"\d*", arg):
        raise ExpandError(f"string \"{arg}\" is not a positive number in \"time_interval\" "
                          "operator")
    n = _int32(int(arg or "0"))        # Exim reads the number into a C int
    if n == 0:
        return "0s"
    if n == -(1 << 31):
        # -n does not fit a C int (pymta recursed for ever); what Exim 4.96 prints
        return "-5d3h14m8s"
    if n < 0:
        return "-" + op_time_interval(str(-n))
    out = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        q, n = divmod(n, size)
        if q:
            out.append(f"{q}{unit}")
    return "".join(out)


# -- addresses -----------------------------------------------------------------------

def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside quotes, angle brackets and comments."""
    out, buf = [], []
    quote = False
    depth = angle = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            quote = c != '"'
        elif c == '"':
            quote = True
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif c == "<":
            angle += 1
        elif c == ">" and angle:
            angle -= 1
        elif c == sep and not depth and not angle:
            out.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(c)
        i += 1
    out.append("".join(buf))
    return out


def _strip_comments(text: str) -> str:
    out, depth, quote = [], 0, False
    for c in text:
        if quote:
            quote = c != '"'
            out.append(c)
        elif c == '"' and not depth:
            quote = True
            out.append(c)
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


_BLANKS = " \t\n\r\f\v"


def _squeeze(addr: str) -> str:
    """Drop the white space next to "." and "@" (and at either end) outside quoted
    strings: RFC 822 allows it between the tokens of an address, and Exim's parser
    writes the address without it (``a . b @ c`` is ``a.b@c``)."""
    out: list[str] = []
    i, n = 0, len(addr)
    while i < n:
        c = addr[i]
        if c == '"':
            j = i + 1
            while j < n and addr[j] != '"':
                j += 2 if addr[j] == "\\" else 1
            out.append(addr[i:j + 1])
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(addr[i:i + 2])
            i += 2
        elif c in _BLANKS:
            j = i
            while j < n and addr[j] in _BLANKS:
                j += 1
            before = out[-1][-1] if out else ""
            after = addr[j] if j < n else ""
            if before not in ("", ".", "@") and after not in ("", ".", "@"):
                out.append(addr[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_address(text: str) -> str | None:
    """Extract the bare address from one RFC 2822 address (phrase and comments allowed);
    None when it is not a well-formed address."""
    t = _squeeze(_strip_comments(text).strip())
    if not t:
        return ""
    if "<" in t:
        lt = t.rfind("<")
        gt = t.find(">", lt)
        if gt < 0 or t[gt + 1:].strip():
            return None
        addr = _squeeze(t[lt + 1:gt].strip())
        if ":" in addr:             # source route: keep what follows the colon
            addr = addr.rsplit(":", 1)[1]
        return addr
    if re.search(r'\s', re.sub(r'"[^"]*"|\\.', '""', t)):
        return None
    return t if _well_formed(t) else None


_DOT_ATOM_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\x80-\U0010ffff]+")


def _well_formed(addr: str) -> bool:
    """A bare address Exim would accept: a local part (atoms, dots or quoted strings),
    optionally ``@`` and a domain of non-empty labels or a ``[literal]``."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', "q", addr)
    # a backslash-escaped character belongs to the local part (an escaped "@" too)
    m = re.fullmatch(r"((?:[^\\@]|\\.)*)(?:@(.*))?", unquoted, re.S)
    if m is None:
        return False
    local = re.sub(r"\\.", "q", m.group(1))
    domain: str | None = m.group(2)
    if not local or not _DOT_ATOM_CHARS.fullmatch(local):
        return False
    if domain is None:
        return True
    if domain.startswith("["):
        return domain.endswith("]")
    return all(label and _DOT_ATOM_CHARS.fullmatch(label) for label in domain.split("."))


def op_addresses(arg: str) -> str:
    sep = ":"
    s = arg.lstrip(" \t\n\v\f\r")      # Exim looks for ">" after white space
    if s.startswith(">"):
        if len(s) == 1:
            raise ExpandError(f"output separator missing in expanding ${{addresses:{s}}}")
        sep = s[1]
        s = s[2:]
    out = []
    in_group = False
    for piece in _split_top(s):
        if ":" in piece and "<" not in piece and '"' not in piece:
            piece = piece.split(":", 1)[1]      # "name:" starts a group
            in_group = True
        if in_group and ";" in piece:
            piece = piece.split(";", 1)[0]      # ";" ends it; the rest is dropped
            in_group = False
        if not piece.strip():
            continue
        addr = parse_address(piece)
        if addr:                                # malformed items are skipped, as Exim
            out.append(addr.replace(sep, sep + sep))
    return sep.join(out)


def _split_local_domain(addr: str) -> tuple[str, str]:
    # the last "@" that is neither quoted nor escaped with a backslash
    at, quoted, i = -1, False, 0
    while i < len(addr):
        c = addr[i]
        if c == "\\":
            i += 1
        elif c == '"':
            quoted = not quoted
        elif c == "@" and not quoted:
            at = i
        i += 1
    if at < 0:
        return addr, ""
    return addr[:at], addr[at + 1:]


# -- quoting / encodings -----------------------------------------------------------------

def op_quote(arg: str) -> str:
    if arg and re.fullmatch(r"[A-Za-z0-9._-]*", arg):
        return arg
    if not arg:
        return '""'
    out = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace(
        "\r", "\\r")
    return f'"{out}"'


_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*")


def op_quote_local_part(arg: str) -> str:
    """Quote a local part when it holds characters outside RFC 2822 atext (or starts
    with a dot)."""
    if arg and not arg.startswith(".") and not arg.endswith(".") and _ATEXT.fullmatch(arg):
        return arg
    # escaped as ${quote} escapes (a newline and a CR as \n and \r), as Exim does
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace(
        "\r", "\\r") + '"'


_REDIS_SPECIAL = re.compile(r"([ \t\n\v\f\r\\])")


def op_quote_lookup(kind: str, arg: str) -> str:
    if kind in ("lsearch", "wildlsearch", "nwildlsearch", "iplsearch", "dsearch", "dbm",
                "cdb", "lmdb", "json", "dnsdb", "passwd",
                "readsock"):
        return arg              # single-key lookups need no quoting
    if kind == "sqlite":
        return arg.replace("'", "''")
    if kind in ("mysql", "pgsql"):
        return op_quote_sql(kind, arg)
    if kind == "redis":
        # the redis lookup splits its query at white space; a backslash protects
        return _REDIS_SPECIAL.sub(r"\\\1", arg)
    if kind == "ldap":
        return _url_quote(re.sub(r"([*()\\\x00])", lambda m: "\\%02X" % ord(m.group(1)), arg))
    if kind == "ldap_dn":
        t = re.sub(r'([,+"\\<>;])', r"\\\1", arg)
        if t[:1] in ("#", " "):
            t = "\\" + t
        if t.endswith(" "):
            t = t[:-1] + "\\ "
        return _url_quote(t)
    raise ExpandError(f"unknown lookup type \"{kind}\"")


_SQL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b",
                '"': '\\"', "\\": "\\\\"}


def op_quote_sql(kind: str, arg: str) -> str:
    """``${quote_mysql:}`` / ``${quote_pgsql:}``: control characters as C escapes,
    quotes and backslash escaped; a single quote is ``\\'`` for MySQL and doubled for
    PostgreSQL (as Exim 4.96 writes them)."""
    quote = "\\'" if kind == "mysql" else "''"
    return "".join(quote if c == "'" else _SQL_ESCAPES.get(c, c) for c in arg)


_URL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                      "!$'()*+-._")


def _url_quote(text: str) -> str:
    return "".join(chr(b) if chr(b) in _URL_SAFE else "%%%02X" % b for b in to_bytes(text))


def op_rxquote(arg: str) -> str:
    # byte by byte, as Exim: each byte that is not an ASCII letter or digit is escaped
    return from_bytes(b"".join(bytes([b]) if chr(b).isascii() and chr(b).isalnum()
                               else b"\\" + bytes([b]) for b in to_bytes(arg)))


def op_escape(arg: str) -> str:
    return string_printing(arg)


def op_escape8bit(arg: str) -> str:
    return "".join(chr(b) if b < 128 else "\\%03o" % b for b in to_bytes(arg))


def _strtoul(text: str) -> int | None:
    """C's strtoul(text, &end, 10) where nothing may follow the number (None if
    something does): leading white space and a sign allowed, empty is 0, too big
    saturates, a minus sign wraps round."""
    m = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)", text)
    if m is None:
        return 0 if not text else None
    n = int(m.group(2))
    if n > _ULONG_MAX:
        return _ULONG_MAX
    return (-n) & _ULONG_MAX if m.group(1) == "-" else n


_ULONG_MAX = (1 << 64) - 1


def _signed64(n: int) -> int:
    """An unsigned long printed with %ld, as Exim prints base32d/base62d results."""
    n &= _ULONG_MAX
    return n - (1 << 64) if n >> 63 else n


def op_base62(arg: str) -> str:
    n = _strtoul(arg)
    if n is None:
        raise ExpandError(f"argument for base62 operator is \"{arg}\", which is not a "
                          "decimal number")
    return base62(n, 6)    # the message-id encoding: six digits, low ones kept


def op_base62d(arg: str) -> str:
    if any(c not in _B62 for c in arg):
        raise ExpandError(f"argument for base62d operator is \"{arg}\", which is not a "
                          "base 62 number")
    return str(_signed64(unbase62(arg)))


def op_base32(arg: str) -> str:
    n = _strtoul(arg)
    if n is None:
        raise ExpandError(f"argument for base32 operator is \"{arg}\", which is not a "
                          "decimal number")
    out = []
    while n:
        n, r = divmod(n, 32)
        out.append(_B32[r])
    return "".join(reversed(out))


def op_base32d(arg: str) -> str:
    n = 0
    for c in arg:
        i = _B32.find(c)
        if i < 0:
            raise ExpandError(f"argument for base32d operator is \"{arg}\", which is not a "
                              "base 32 number")
        n = n * 32 + i
    return str(_signed64(n))


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def op_base64d(arg: str) -> str:
    # as Exim: white space anywhere is skipped; whole groups of four, the last one
    # perhaps padded with one or two "=", and nothing after the padding
    data = to_bytes(arg).translate(None, b" \t\n\v\f\r")
    body = data.rstrip(b"=")
    if len(data) % 4 or len(data) - len(body) > 2 or not _B64_ALPHABET.issuperset(body):
        raise ExpandError(f"string \"{arg}\" is not well-formed for \"base64d\" operator")
    return from_bytes(base64.b64decode(data))


def op_hex2b64(arg: str) -> str:
    # Exim checks the characters (no white space either) before the length
    if not re.fullmatch(r"[0-9A-Fa-f]*", arg):
        raise ExpandError(f"\"{arg}\" is not a hex string")
    if len(arg) % 2:
        raise ExpandError(f"\"{arg}\" contains an odd number of characters")
    return base64.b64encode(bytes.fromhex(arg)).decode()


def op_from_utf8(arg: str) -> str:
    """Each UTF-8 sequence as the one byte of its code point, "_" when above 255.  As in
    Exim, a lead byte says how many bytes follow and they are taken whatever they are
    (their low six bits), a stray continuation byte stands for itself, and a sequence
    cut short by the end of the string has zero bits for the missing bytes."""
    data = to_bytes(arg)
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        i += 1
        if c >= 0xC0:
            more = 1 if c < 0xE0 else 2 if c < 0xF0 else 3 if c < 0xF8 else \
                4 if c < 0xFC else 5
            c &= (0x1F, 0x0F, 0x07, 0x03, 0x01)[more - 1]
            for _ in range(more):
                c = (c << 6) | (data[i] & 0x3F if i < len(data) else 0)
                i += 1
        out.append(c if c <= 255 else 0x5F)
    return from_bytes(bytes(out))


def op_utf8clean(arg: str) -> str:
    """Replace each malformed UTF-8 sequence by one "?" (Exim 4.96's grouping: a lead
    byte and its continuation bytes are one sequence, even when its value is invalid;
    like Exim, overlong forms are not rejected)."""
    data = to_bytes(arg)
    if data.isascii():
        return arg
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            out.append(b)
            i += 1
            continue
        need = 1 if 0xC2 <= b <= 0xDF else 2 if 0xE0 <= b <= 0xEF else \
            3 if 0xF0 <= b <= 0xF7 else 0
        if need == 0:                   # stray continuation byte or impossible lead
            out.append(0x3F)
            i += 1
            continue
        j = i + 1
        while j < n and j <= i + need and 0x80 <= data[j] <= 0xBF:
            j += 1
        seq = data[i:j]
        if j - i == need + 1:
            cp = seq[0] & (0x3F >> need)
            for c in seq[1:]:
                cp = (cp << 6) | (c & 0x3F)
            if 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
                out.append(0x3F)        # a surrogate or beyond Unicode (overlong passes)
            else:
                out += seq
        else:
            out.append(0x3F)            # truncated sequence
        i = j
    return from_bytes(bytes(out))


def op_rfc2047(arg: str, ctx: Any) -> str:
    main = getattr(getattr(ctx, "config", None), "main", None)
    charset = (getattr(main, "headers_charset", None) if main is not None else None)
    return rfc2047.encode(arg, charset or "UTF-8")


def op_rfc2047d(arg: str, ctx: Any) -> str:
    """${rfc2047d:}: encoded-words decoded to UTF-8; an unknown charset fails the
    expansion with the conversion error, as Exim's does."""
    try:
        return rfc2047.decode(arg, rfc2047.check_length_of(getattr(ctx, "config", None)))
    except rfc2047.CharsetError as exc:
        raise ExpandError(f'iconv_open("UTF-8", "{exc.charset}") failed: Invalid argument '
                          "(maybe unsupported conversion)") from None


def _alabel_error(text: str, to_ascii: bool, why: str) -> ExpandError:
    what = "utf8 ({}) to alabel" if to_ascii else "alabel ({}) to utf8"
    return ExpandError(f"error converting {what.format(string_printing(text))}: {why}")


def _from_punycode(text: str, label: str) -> str:
    """An A-label ("xn--" and punycode) as UTF-8; Exim's error when it does not decode."""
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        raise _alabel_error(text, False, "Invalid input") from None


def op_localpart_to_alabel(arg: str) -> str:
    if arg.isascii():               # nothing to convert (Exim looks for 8-bit bytes)
        return arg
    if any("\udc80" <= c <= "\udcff" for c in arg):
        raise _alabel_error(arg, True, "l_u2a: bad UTF-8 input")
    return label_to_alabel(arg)


def op_localpart_from_alabel(arg: str) -> str:
    if not arg.startswith("xn--"):      # as Exim: lower case only
        raise _alabel_error(arg, False, "bad alabel prefix")
    return _from_punycode(arg, arg)


def op_domain_to_alabel(arg: str) -> str:
    if arg.isascii():               # an ASCII domain is left as it is, case and all
        return arg
    if any("\udc80" <= c <= "\udcff" for c in arg):
        raise _alabel_error(arg, True, "string encoding error")
    return ".".join(label_to_alabel(lab) for lab in ascii_lower(arg).split("."))


def op_domain_from_alabel(arg: str) -> str:
    # Exim reads the domain as a list with "." as separator (white space round a label
    # goes, ".." is a dot inside a label) and writes the labels back as such a list
    # (an empty first label vanishes)
    out = ""
    for label in split_with(arg, "."):
        if label.startswith("xn--"):
            label = _from_punycode(arg, label)
        if out:
            out += "."
        out += label.replace(".", "..")
    return out


def _digest(name: str, bits: int | None, arg: str) -> str:
    data = to_bytes(arg)
    if name == "md5":
        return hashlib.md5(data).hexdigest()
    if name == "sha1":
        return hashlib.sha1(data).hexdigest().upper()
    if name == "sha256":
        return hashlib.sha256(data).hexdigest().upper()
    if name == "sha2":
        b = bits or 256
        if b not in (256, 384, 512):
            raise ExpandError("unrecognised sha2 variant")
        return hashlib.new(f"sha{b}", data).hexdigest().upper()
    if name == "sha3":
        b = bits or 256
        if b not in (224, 256, 384, 512):
            raise ExpandError("unrecognised sha3 variant")
        return hashlib.new(f"sha3_{b}", data).hexdigest().upper()
    raise ExpandError(f"unknown hash {name}")


def op_listnamed(arg: str, kind: str | None, ctx: Any) -> str:
    lists = getattr(ctx.config, "named_lists", None) or {}
    name = arg                  # Exim takes the name as it is, white space and all
    if name.startswith("+"):
        name = name[1:]
    kinds = [kind] if kind else ["domain", "host", "address", "localpart"]
    for k in kinds:
        table = lists.get(k) or {}
        if name in table:
            return _listnamed_text(table[name], table, 0)
    raise ExpandError(f"\"{name}\" is not a {_LIST_KINDS.get(kind or '', '')}named list")


# how Exim names the kind of list in ${listnamed_X} errors
_LIST_KINDS = {"domain": "domain ", "host": "host ", "address": "address ",
               "localpart": "localpart "}


def _listnamed_text(value: str, table: dict, depth: int) -> str:
    """A named list as ${listnamed} shows it: items joined by " : ", nested ``+name``
    lists of the same kind inlined; a list written with another separator has its
    colons doubled (one written with ':' keeps them single, as Exim 4.96 prints)."""
    from .lists import list_separator, split_list
    if depth > 50:
        raise ExpandError("named lists nested too deeply")
    sep, _ = list_separator(value)
    out = []
    for item in split_list(value):
        if item.startswith("+") and item[1:] in table:
            out.append(_listnamed_text(table[item[1:]], table, depth + 1))
        else:
            out.append(item if sep == ":" else item.replace(":", "::"))
    return " : ".join(out)


def op_xtextd(arg: str) -> str:
    """``${xtextd:}`` (Exim 4.98): decode RFC 3461 xtext, as a WELLKNOWN key comes."""
    decoded = xtext_decode(arg)
    if decoded is None:
        raise ExpandError(f'"{arg}" is not valid xtext (in "xtextd" operator)')
    return decoded


# -- dispatcher -----------------------------------------------------------------------

_SIMPLE: dict[str, Callable[[str], str]] = {
    "lc": ascii_lower,
    "uc": ascii_upper,
    "base64": lambda a: base64.b64encode(to_bytes(a)).decode(),
    "str2b64": lambda a: base64.b64encode(to_bytes(a)).decode(),
    "base64d": op_base64d,
    "base62": op_base62,
    "base62d": op_base62d,
    "base32": op_base32,
    "base32d": op_base32d,
    "hex2b64": op_hex2b64,
    "md5": lambda a: _digest("md5", None, a),
    "sha1": lambda a: _digest("sha1", None, a),
    "sha256": lambda a: _digest("sha256", None, a),
    "quote": op_quote,
    "quote_local_part": op_quote_local_part,
    "rxquote": op_rxquote,
    "escape": op_escape,
    "escape8bit": op_escape8bit,
    "from_utf8": op_from_utf8,
    "utf8clean": op_utf8clean,
    "reverse_ip": op_reverse_ip,
    "ipv6norm": lambda a: op_ipv6norm(a, False),
    "ipv6denorm": lambda a: op_ipv6norm(a, True),
    "time_interval": op_time_interval,
    "addresses": op_addresses,
    "strlen": lambda a: str(len(to_bytes(a))),
    "listcount": lambda a: str(len(split_list(a))),
    "hexquote": lambda a: "".join(chr(b) if 33 <= b < 127 else "\\x%02x" % b
                                  for b in to_bytes(a)),
    "xtextd": op_xtextd,
    "utf8_domain_to_alabel": op_domain_to_alabel,
    "utf8_domain_from_alabel": op_domain_from_alabel,
    "utf8_localpart_to_alabel": op_localpart_to_alabel,
    "utf8_localpart_from_alabel": op_localpart_from_alabel,
}

# Operators that take numeric suffixes: name -> (min, max) count of numbers.
_NUMBERED = {"length": (1, 1), "l": (1, 1), "substr": (1, 2), "s": (1, 2),
             "hash": (1, 2), "h": (1, 2), "nhash": (1, 2), "nh": (1, 2),
             "sha2": (0, 1), "sha3": (0, 1)}


_OTHER_OPS = frozenset({"eval", "eval10", "time_eval", "mask", "mask_n", "address", "domain",
                        "local_part", "rfc2047", "rfc2047d", "listnamed", "listnamed_d",
                        "listnamed_h",
                        "listnamed_a", "listnamed_l", "expand", "stat", "randint"})


def operator_error(name: str) -> str | None:
    """Why ``${name:...}`` is not a valid operator (None when it is); checked at parse
    time because Exim rejects unknown operators even in branches it skips."""
    if name in _SIMPLE or name in _OTHER_OPS:
        return None
    if name.startswith("quote_") and len(name) > 6:
        return None
    base, _, suffix = name.partition("_")
    if base in _NUMBERED:
        for k, part in enumerate(suffix.split("_") if suffix else []):
            # only substr's start may be negative (its length may not)
            if not re.fullmatch(r"-?\d+" if base in ("substr", "s") and k == 0 else r"\d+",
                                part):
                return f"non-digit after underscore in \"{name}\""
        return None
    return f"unknown expansion operator \"{name}\""


#: Operators whose result is made afresh (a digest, a count, a number) rather than copied
#: out of their argument: it is untainted whatever the argument was, as in Exim 4.96
#: (exim4 -bem), so ``/var/mail/${md5:$local_part}`` is a usable file name.
_FRESH_RESULT = frozenset({"md5", "sha1", "sha256", "sha2", "sha3", "nhash", "nh", "strlen",
                           "listcount", "eval", "eval10", "time_eval", "time_interval",
                           "base32d", "base62d", "randint"})


def fresh_result(name: str) -> bool:
    """Is the result of operator ``name`` (``_n`` suffixes allowed) untainted whatever
    its argument?"""
    return name in _FRESH_RESULT or name.split("_", 1)[0] in _FRESH_RESULT


def apply_operator(name: str, arg: str, ctx: Any, allow_negative: bool = False) -> str:
    """Apply ``${name:arg}``; ``name`` may carry ``_n`` suffixes.  Raises ExpandError."""
    fn = _SIMPLE.get(name)
    if fn is not None:
        return fn(arg)
    if name in ("eval", "eval10"):
        from .numeric import eval_expression
        return eval_expression(arg, decimal_only=(name == "eval10"))
    if name == "time_eval":
        v = _time_eval(arg)
        if v is None:
            raise ExpandError(f"string \"{arg}\" is not an Exim time interval in "
                              "\"time_eval\" operator")
        return str(v)
    if name in ("mask", "mask_n"):
        return op_mask(arg, name == "mask_n")
    if name == "address":
        a = parse_address(arg)
        return a or ""
    if name in ("domain", "local_part"):
        a = parse_address(arg)
        if not a:
            return ""
        lp, dom = _split_local_domain(a)
        return dom if name == "domain" else lp
    if name == "rfc2047":
        return op_rfc2047(arg, ctx)
    if name == "rfc2047d":
        return op_rfc2047d(arg, ctx)
    if name == "listnamed" or name.startswith("listnamed_"):
        kind = {"d": "domain", "h": "host", "a": "address", "l": "localpart"}.get(
            name[10:]) if name != "listnamed" else None
        return op_listnamed(arg, kind, ctx)
    if name == "expand":
        from . import expand_string
        return expand_string(arg, ctx)
    if name == "stat":
        from .forbid import check_allowed
        check_allowed("stat", ctx)
        import os
        import stat
        try:
            st = os.stat(arg)
        except OSError as e:
            raise ExpandError(f"stat({arg}) failed: {e.strerror}") from None
        return (f"mode={st.st_mode & 0o7777:04o} smode={stat.filemode(st.st_mode)} "
                f"inode={st.st_ino} device={st.st_dev} links={st.st_nlink} uid={st.st_uid} "
                f"gid={st.st_gid} size={st.st_size} atime={int(st.st_atime)} "
                f"mtime={int(st.st_mtime)} ctime={int(st.st_ctime)}")
    if name == "randint":
        import random

        from .evaluator import get_int
        if not arg.strip():
            raise ExpandError(f"integer expected but \"{arg}\" found")
        n = get_int(arg)
        if n < 0:
            raise ExpandError(f"non-negative integer expected but \"{arg}\" found")
        return str(random.randrange(max(n, 1)))
    if name.startswith("quote_"):
        return op_quote_lookup(name[6:], arg)
    base, underscore, suffix = name.partition("_")
    if base in _NUMBERED:
        nums: list[int] = []
        parts = suffix.split("_") if suffix else []
        if len(parts) > _NUMBERED[base][1] and base not in ("sha2", "sha3"):
            # Exim reads at most two numbers (length one): a further "_" is not a digit
            raise ExpandError(f"non-digit after underscore in \"{name}\"")
        if underscore and not suffix:
            if base in ("sha2", "sha3"):
                raise ExpandError(f"unrecognised {base} variant")
            parts = ["0"]       # Exim: "length_" reads no digits, so the number is 0
        for k, part in enumerate(parts):
            if not re.fullmatch(r"-?\d+" if allow_negative or base in ("substr", "s")
                                and k == 0 else r"\d+", part):
                raise ExpandError(f"non-digit after underscore in \"{name}\"")
            nums.append(_int32(int(part)))      # Exim reads them into C ints
        # a number that wrapped negative: Exim takes a second one (or length's only
        # one) as not given, and dies of a negative hash length
        if len(nums) > 1 and nums[1] < 0:
            nums.pop()
        if base in ("length", "l") and nums and nums[0] < 0:
            return op_substr(arg, 0, None)
        if base in ("hash", "h") and nums and nums[0] < 0:
            raise ExpandError(f"\"{nums[0]}\" is not a positive number (in "
                              f"\"{base}\" expansion)")
        lo, hi = _NUMBERED[base]
        if not nums and lo:
            # the long names read as items without their {arguments}
            raise ExpandError(not_enough(base) if base in ARG_COUNTS
                              else f"missing values after {name}")
        if not lo <= len(nums) <= hi:
            raise ExpandError(f"missing or extra numeric argument in \"{name}\"")
        if base in ("length", "l"):
            return op_length(arg, nums[0])
        if base in ("substr", "s"):
            return op_substr(arg, nums[0], nums[1] if len(nums) > 1 else None)
        if base in ("hash", "h"):
            return op_hash(arg, nums[0], nums[1] if len(nums) > 1 else None)
        if base in ("nhash", "nh"):
            return op_nhash(arg, nums[0], nums[1] if len(nums) > 1 else None)
        return _digest(base, nums[0] if nums else None, arg)
    raise ExpandError(f"unknown expansion operator \"{name}\"")
