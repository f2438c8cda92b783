#!/usr/bin/env python3
"""A fast asyncio SMTP sink for relay benchmarks (stdlib only).

It accepts every command, reads DATA until the final dot and counts messages
without storing them.  Use it in-process (``FastSink(...).start()`` runs the
event loop in a thread) or as a script::

    python bench/sink.py --port 2526        # prints the count every second
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Optional

EHLO_REPLY = (b"250-sink.bench.test\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
              b"250-8BITMIME\r\n250 HELP\r\n")


class FastSink:
    """Counting SMTP sink on ``host``:``port`` served by an asyncio loop in a thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.count = 0
        self.bytes = 0
        self.last_time = 0.0  # time.monotonic() of the most recent message
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        write = writer.write
        write(b"220 sink.bench.test ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb == b"EHLO":
                    write(EHLO_REPLY)
                elif verb == b"DATA":
                    write(b"354 go ahead\r\n")
                    await writer.drain()
                    size = 0
                    while True:
                        body = await reader.readline()
                        if not body or body == b".\r\n" or body == b".\n":
                            break
                        size += len(body)
                    if not body:
                        break
                    self.count += 1
                    self.bytes += size
                    self.last_time = time.monotonic()
                    write(b"250 OK queued\r\n")
                elif verb == b"QUIT":
                    write(b"221 bye\r\n")
                    break
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO"):
                    write(b"250 OK\r\n")
                else:
                    write(b"500 unknown command\r\n")
                # Replies to pipelined commands are flushed once the input is drained.
                if not reader._buffer:  # type: ignore[attr-defined]
                    await writer.drain()
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, self.port,
                                                  backlog=256, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> "FastSink":
        """Start serving in a background thread; returns once the port is bound."""
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._serve())
            except asyncio.CancelledError:
                pass
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="fast-sink", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("sink did not start")
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "FastSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Run the sink in the foreground, printing the message count every second."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2526)
    a = p.parse_args()
    sink = FastSink(a.host, a.port).start()
    print(f"listening on {a.host}:{sink.port}", flush=True)
    try:
        last = -1
        while True:
            time.sleep(1)
            if sink.count != last:
                last = sink.count
                print(f"{last} messages", flush=True)
    except KeyboardInterrupt:
        sink.stop()


if __name__ == "__main__":
    main()
