"""The configuration the smtp transport's tests share: every address goes through the
transport ``remote_smtp`` to 127.0.0.1 on the port of the macro ``SINK_PORT`` (a test
sink), with one retry rule."""
from __future__ import annotations

_RELAY = """\
primary_hostname = test.example
qualify_domain = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
{main}begin routers
remote:
  driver = manualroute
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = remote_smtp
begin transports
remote_smtp:
  driver = smtp
  allow_localhost
{transport}begin retry
* * F,1h,10m
"""


def relay_config(transport: str, main: str = "") -> str:
    """The relay configuration with ``transport`` (option lines, indented) added to the
    smtp transport and ``main`` (lines) to the main section."""
    def lines(text: str) -> str:
        return text.rstrip("\n") + "\n" if text else ""
    return _RELAY.format(main=lines(main), transport=lines(transport))
