"""Which client each receiver is serving: a table in memory shared by the daemon's
processes, for the limits that count connections (smtp_accept_max_per_host,
smtp_accept_reserve, smtp_accept_queue).

Exim's daemon counts the connections it forks children for; pymta's receivers accept
connections themselves, so the count is kept here instead.  The master creates the
table before it forks and gives every receiver its own slot; a receiver writes the
client address into its slot when it accepts a connection and clears it when the
session ends; the master clears the slot of a receiver that died.  A receiver claims
its slot *before* counting, so two connections that arrive at the same moment can
both be refused at a limit but never both be let in beyond it.

The table is also how the master knows which receivers are busy.  A header holds what
the master last published about the pool (live receivers, the spare count it keeps,
whether it wants to hear of every session); a receiver tells the master of a session
only when that matters: when its claim leaves fewer idle receivers than the spare
count (the master forks more), and at the end while the master answers connections
itself (saturation) or watches for idleness (-bw).  Before, every session woke the
master twice, for about 0.2 ms of its CPU per connection.
"""
from __future__ import annotations

import ipaddress
import mmap
import struct

_SLOT = struct.Struct("<i16s")          # pid (0: free), client address (IPv6 form)
_HEADER = struct.Struct("<iii")         # live receivers, spare wanted, TELL_* flags
_PID = struct.Struct("<i")

#: The master wants to hear when a session ends (it is saturated).
TELL_IDLE = 1
#: The master wants to hear of every session's start and end (-bw counts idle time).
TELL_ALWAYS = 2


def _packed(address: str) -> bytes:
    """The address as 16 bytes; an IPv4 address in its IPv4-mapped IPv6 form, so that
    "1.2.3.4" and "::ffff:1.2.3.4" are one host."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return b"\xff" * 16                     # not an IP (a Unix socket): one bucket
    if isinstance(ip, ipaddress.IPv4Address):
        ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    return ip.packed


class ConnectionTable:
    """``slots`` entries of (receiver pid, client address) in shared anonymous memory."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        # MAP_SHARED: seen after fork
        self.mem = mmap.mmap(-1, _HEADER.size + slots * _SLOT.size)
        self.view = memoryview(self.mem)[_HEADER.size:]
        self.publish(0, 0, TELL_ALWAYS)     # until the master says otherwise

    def free_slot(self, taken: set[int]) -> int | None:
        """The lowest slot number not in ``taken`` (the master's bookkeeping)."""
        found = self.free_slots(taken, 1)
        return found[0] if found else None

    def free_slots(self, taken: set[int], wanted: int) -> list[int]:
        """The ``wanted`` lowest slot numbers not in ``taken`` ([] if there are fewer)."""
        free = [n for n in range(self.slots) if n not in taken][:wanted]
        return free if len(free) == wanted else []

    def claim(self, slot: int, pid: int, address: str) -> None:
        """The receiver in ``slot`` now serves ``address``."""
        off = slot * _SLOT.size
        # the address first, then the pid that makes the entry count
        self.view[off + 4:off + _SLOT.size] = _packed(address)
        self.view[off:off + 4] = _PID.pack(pid)

    def release(self, slot: int) -> None:
        """The session in ``slot`` is over (or its receiver died)."""
        off = slot * _SLOT.size
        self.view[off:off + 4] = b"\0\0\0\0"

    def counts(self, address: str) -> tuple[int, int]:
        """(connections in progress, of which from ``address``), claims included."""
        want = _packed(address)
        total = same = 0
        for pid, addr in _SLOT.iter_unpack(self.view):
            if pid:
                total += 1
                same += addr == want
        return total, same

    def busy_counts(self) -> dict[int, int]:
        """How many connections each receiver serves now (by pid; none: absent)."""
        counts: dict[int, int] = {}
        for pid, _ in _SLOT.iter_unpack(self.view):
            if pid:
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    # -- the pool's state, published by the master ---------------------------------------

    def publish(self, receivers: int, spare: int, tell: int) -> None:
        """The master's view: ``receivers`` session slots of live receivers, of which
        it keeps ``spare`` idle, and which session ends or starts it wants to hear of
        (TELL_*)."""
        _HEADER.pack_into(self.mem, 0, receivers, spare, tell)

    def tell_busy(self) -> bool:
        """After a claim: should the master hear of it (the pool is running short)?"""
        receivers, spare, tell = _HEADER.unpack_from(self.mem, 0)
        if tell & TELL_ALWAYS:
            return True
        busy = sum(1 for pid, _ in _SLOT.iter_unpack(self.view) if pid)
        return receivers - busy < spare

    def tell_idle(self) -> bool:
        """After a release: should the master hear of it?"""
        return bool(_HEADER.unpack_from(self.mem, 0)[2] & (TELL_IDLE | TELL_ALWAYS))
