"""OpenDKIM as a signing filter for tests: :class:`OpenDkimSigner` starts a real
``opendkim`` daemon (Debian's) on a loopback port and signs a message by talking the
milter protocol to it, as an MTA would (connect, HELO, MAIL, RCPT, headers, body, end
of message); the DKIM-Signature header the filter asks to add is put on top.
"""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

from tests.support.ports import free_port
from tests.support.procs import stop_process
from tests.support.wait import wait_until

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


class MilterError(Exception):
    """The filter answered something a signing run does not expect."""


class OpenDkimSigner:
    """An ``opendkim -f`` signing for ``domain`` with ``selector`` and the key in
    ``key_pem`` (PEM text), in ``directory``."""

    def __init__(self, directory: str | os.PathLike, domain: str, selector: str,
                 key_pem: bytes, canon: str = "relaxed/relaxed") -> None:
        self.dir = Path(directory)
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        key = self.dir / "opendkim.key"
        key.write_bytes(key_pem)
        os.chmod(key, 0o600)
        self.conf = self.dir / "opendkim.conf"
        self.conf.write_text(
            f"Mode s\nDomain {domain}\nSelector {selector}\nKeyFile {key}\n"
            f"Canonicalization {canon}\nSignatureAlgorithm rsa-sha256\n"
            f"Socket inet:{self.port}@127.0.0.1\nRequireSafeKeys no\nSyslog no\n"
            "Background no\nInternalHosts 127.0.0.1\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OpenDkimSigner":
        out = open(self.dir / "opendkim.out", "wb")
        self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(self.conf)], stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"opendkim exited: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(ready, 15, 0.05)
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def output(self) -> str:
        try:
            return (self.dir / "opendkim.out").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> "OpenDkimSigner":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the milter conversation ----------------------------------------------
    def sign(self, message: bytes, sender: str, recipient: str) -> bytes:
        """``message`` (CRLF) with the DKIM-Signature header opendkim made."""
        head, _, body = message.partition(b"\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            conv = _Conversation(s)
            conv.send(b"O", struct.pack(">III", 6, 0x1FF, 0))
            if conv.read()[0] != b"O":
                raise MilterError("no option negotiation")
            conv.step(b"C", b"localhost\0" + b"4" + struct.pack(">H", 25) + b"127.0.0.1\0")
            conv.step(b"H", b"client.test\0")
            conv.step(b"M", f"<{sender}>\0".encode())
            conv.step(b"R", f"<{recipient}>\0".encode())
            for line in _unfold(head):
                name, _, value = line.partition(b":")
                conv.step(b"L", name + b"\0" + value.lstrip(b" \t") + b"\0")
            conv.step(b"N", b"")
            if body:
                conv.step(b"B", body)
            conv.send(b"E", b"")
            added: list[bytes] = []
            while True:
                cmd, data = conv.read()
                if cmd in (b"h", b"i"):
                    if cmd == b"i":
                        data = data[4:]
                    name, value = data.rstrip(b"\0").split(b"\0", 1)
                    added.append(name + b": " + value.replace(b"\r\n", b"\n")
                                 .replace(b"\n", b"\r\n") + b"\r\n")
                elif cmd in (b"a", b"c"):
                    break
                elif cmd == b"p":
                    continue
                else:
                    raise MilterError(f"unexpected reply {cmd!r} {data!r}")
            conv.send(b"Q", b"")
        return b"".join(added) + message


class _Conversation:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, cmd: bytes, data: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def read(self) -> tuple[bytes, bytes]:
        size = struct.unpack(">I", self._exact(4))[0]
        packet = self._exact(size)
        return packet[:1], packet[1:]

    def step(self, cmd: bytes, data: bytes) -> None:
        self.send(cmd, data)
        reply, detail = self.read()
        if reply != b"c":
            raise MilterError(f"{cmd!r} answered {reply!r} {detail!r}")

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            part = self.sock.recv(n - len(out))
            if not part:
                raise MilterError("connection closed")
            out += part
        return out


def _unfold(head: bytes) -> list[bytes]:
    lines: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\r\n" + line
        elif line:
            lines.append(line)
    return lines
