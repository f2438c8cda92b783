"""``${eval:...}``: integer arithmetic with C-like operators and precedence."""
from __future__ import annotations

from typing import NoReturn

from .errors import ExpandError

_MASK = (1 << 64) - 1
_DIGITS = frozenset("0123456789")


def _wrap(v: int) -> int:
    """Keep results in signed 64-bit range as Exim's C arithmetic does."""
    v &= _MASK
    return v - (1 << 64) if v >> 63 else v


class _Eval:
    def __init__(self, text: str, decimal_only: bool):
        self.s = text
        self.i = 0
        self.dec = decimal_only

    def fail(self, msg: str) -> NoReturn:
        raise ExpandError(f"error in expression evaluation: {msg} (after processing "
                          f"\"{self.s[:self.i]}\")")

    def ws(self):
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def peek(self, n: int = 1) -> str:
        self.ws()
        return self.s[self.i:self.i + n]

    def number(self) -> int:
        s, i = self.s, self.i
        j = i
        if not self.dec and s.startswith(("0x", "0X"), i):
            j = i + 2
            while j < len(s) and s[j] in "0123456789abcdefABCDEF":
                j += 1
            v = int(s[i + 2:j], 16) if j > i + 2 else 0
        else:
            while j < len(s) and s[j] in _DIGITS:     # ASCII: not "²"
                j += 1
            digits = s[i:j]
            if not self.dec and len(digits) > 1 and digits[0] == "0":
                # strtoll stops at the first non-octal digit: "08" reads as 0, then "8"
                j = i + 1
                while j < len(s) and s[j] in "01234567":
                    j += 1
                v = int(s[i:j], 8)
            else:
                v = int(digits)
        v = min(v, (1 << 63) - 1)       # strtoll saturates
        if j < len(s) and s[j] in "kKmMgG":
            # a 64-bit C multiplication: it wraps (9223372036854775807K is -1024)
            v = _wrap(v * {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[s[j].lower()])
            j += 1
        self.i = j
        return v

    def unary(self) -> int:
        c = self.peek()
        if c == "-":
            self.i += 1
            return _wrap(-self.unary())
        if c == "+":
            self.i += 1
            return self.unary()
        if c == "~":
            self.i += 1
            return _wrap(~self.unary())
        if c == "(":
            self.i += 1
            v = self.expr()
            if self.peek() != ")":
                self.fail("expecting closing parenthesis")
            self.i += 1
            return v
        if c and c in _DIGITS:
            return self.number()
        self.fail("expecting number or opening parenthesis")

    def mul(self) -> int:
        v = self.unary()
        while (c := self.peek()) in ("*", "/", "%") and c:
            self.i += 1
            r = self.unary()
            if c == "*":
                v = _wrap(v * r)       # C wraps silently here
            else:
                if r == 0:
                    self.fail("divide by zero" if c == "/" else "modulo by zero")
                q = abs(v) // abs(r)
                q = q if (v >= 0) == (r >= 0) else -q
                v = _wrap(q) if c == "/" else _wrap(v - q * r)
        return v

    def add(self) -> int:
        v = self.mul()
        while (c := self.peek()) in ("+", "-") and c:
            self.i += 1
            r = self.mul()
            v = self._sum(v, r) if c == "+" else self._difference(v, r)
        return v

    # Exim 4.96's overflow tests, reproduced as they behave (checked with exim4 -be):
    # they look at the left operand against half the range, so "4611686018427387903 + 0"
    # is an overflow while "1 + 9223372036854775807" wraps round.
    _HALF = ((1 << 63) - 1) // 2

    def _sum(self, x: int, y: int) -> int:
        if x >= self._HALF or (x <= -self._HALF and y <= -self._HALF):
            self.fail("overflow in sum")
        return _wrap(x + y)

    def _difference(self, x: int, y: int) -> int:
        if x >= self._HALF:
            self.fail("overflow in difference")
        return _wrap(x - y)

    def shift(self) -> int:
        v = self.add()
        while (c := self.peek(2)) in ("<<", ">>"):
            self.i += 2
            r = self.add()
            r &= 63             # the machine's shift count is taken modulo 64
            v = _wrap(v << r) if c == "<<" else v >> r
        return v

    def band(self) -> int:
        v = self.shift()
        while self.peek() == "&":
            self.i += 1
            v &= self.shift()
        return v

    def bxor(self) -> int:
        v = self.band()
        while self.peek() == "^":
            self.i += 1
            v ^= self.band()
        return v

    def expr(self) -> int:
        v = self.bxor()
        while self.peek() == "|":
            self.i += 1
            v |= self.bxor()
        return v


def eval_expression(text: str, decimal_only: bool = False) -> str:
    """Evaluate an Exim ``eval``/``eval10`` expression and return the decimal result."""
    e = _Eval(text, decimal_only)
    v = e.expr()
    e.ws()
    if e.i < len(text):
        e.fail("expecting operator")
    return str(v)
