"""What the content scanners' main options say: ``spamd_address`` and ``av_scanner``.

Pure parsing, shared by the spam and malware conditions: where each scanner listens
(:class:`Endpoint`) and with which options.  A value pymta cannot use is a
:class:`ScanConfigError` whose text goes to the log; the condition then defers, so a
misconfigured scanner never lets mail pass unscanned.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pymta.config.options import parse_time
from pymta.config.unsupported import UNSUPPORTED_AV_SCANNERS
from pymta.expand.evaluator import compile_regex
from pymta.expand.lists import split_list

#: Exim's default limit for a scanner call (the spam and malware conditions alike).
DEFAULT_TIMEOUT = 120.0


class ScanConfigError(Exception):
    """A scanner specification (av_scanner, spamd_address) cannot be used."""


@dataclass(frozen=True)
class Endpoint:
    """Where a scanner listens: ``path`` for a Unix socket, else ``host`` and the
    ``ports`` to try in order."""

    path: str | None = None
    host: str = ""
    ports: tuple[int, ...] = ()


def parse_ports(text: str) -> tuple[int, ...]:
    """A port number or a dash-separated range (``10200-10204``)."""
    low, dash, high = text.partition("-")
    try:
        first = int(low)
        last = int(high) if dash else first
    except ValueError:
        raise ScanConfigError(f'bad port "{text}"') from None
    if not 0 < first <= last < 65536:
        raise ScanConfigError(f'bad port "{text}"')
    return tuple(range(first, last + 1))


def parse_endpoint(words: list[str], what: str) -> tuple[Endpoint, list[str]]:
    """A socket specification (a path, or a host and port) and the words after it."""
    if not words:
        raise ScanConfigError(f"{what}: no socket given")
    if words[0].startswith("/"):
        return Endpoint(path=words[0]), words[1:]
    if len(words) < 2:
        raise ScanConfigError(f'{what}: no port in "{" ".join(words)}"')
    try:
        return Endpoint(host=words[0], ports=parse_ports(words[1])), words[2:]
    except ScanConfigError as exc:
        raise ScanConfigError(f"{what}: {exc}") from None


#: Exim's limit on the number of servers in spamd_address.
MAX_SERVERS = 32
@dataclass
class SpamdServer:
    """One element of spamd_address."""

    endpoint: Endpoint
    pri: int = 1
    weight: int = 1
    window: tuple[int, int] | None = None       # seconds of the day
    retry: float = 0.0
    tmo: float = DEFAULT_TIMEOUT

    def in_window(self, second_of_day: int) -> bool:
        if self.window is None:
            return True
        start, end = self.window
        if start <= end:
            return start <= second_of_day <= end
        return second_of_day >= start or second_of_day <= end



def _time_of_day(text: str) -> int:
    m = re.fullmatch(r"(\d+)(?:\.(\d+)(?:\.(\d+))?)?", text)
    if not m:
        raise ScanConfigError(f'bad time value "{text}"')
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def _option(server: SpamdServer, text: str) -> None:
    name, eq, value = text.partition("=")
    name = name.lower()
    try:
        if name == "pri" and eq:
            server.pri = int(value)
        elif name == "weight" and eq:
            server.weight = int(value)
        elif name == "time" and eq:
            start, dash, end = value.partition("-")
            if not dash:
                raise ScanConfigError(f'bad time value "{value}"')
            server.window = (_time_of_day(start), _time_of_day(end))
        elif name == "retry" and eq:
            server.retry = float(parse_time(value))
        elif name == "tmo" and eq:
            server.tmo = float(parse_time(value))
        elif name == "variant" and value.lower() == "spamassassin":
            pass
        elif name == "variant" and value.lower() == "rspamd":
            raise ScanConfigError("spamd_address: variant=rspamd is not supported in this "
                                  "version of pymta")
        else:
            raise ScanConfigError(f'spamd_address: bad option "{text}"')
    except ValueError:
        raise ScanConfigError(f'spamd_address: bad option "{text}"') from None


def _words(element: str) -> list[str]:
    if element.startswith("<") and len(element) > 1 and not element[1].isalnum():
        return [w for w in split_list(element, " ") if w]
    return element.split()


def parse_spamd_address(text: str) -> list[SpamdServer]:
    """The servers of a spamd_address value; ScanConfigError for a bad one."""
    servers: list[SpamdServer] = []
    for element in split_list(text, ":"):
        words = _words(element)
        if not words:
            continue
        endpoint, options = parse_endpoint(words, "spamd_address")
        server = SpamdServer(endpoint)
        for option in options:
            _option(server, option)
        servers.append(server)
    if not servers:
        raise ScanConfigError("spamd_address: no servers")
    if len(servers) > MAX_SERVERS:
        raise ScanConfigError(f"spamd_address: more than {MAX_SERVERS} servers")
    return servers




# ---------------------------------------------------------------------------------------
# av_scanner
# ---------------------------------------------------------------------------------------
#: The scanner types pymta can ask (``pymta -bV`` lists them as Exim does).
SUPPORTED_SCANNERS = ("clamd", "cmdline", "sock")
#: Scanner types of Exim 4.96 that pymta has no client for.
UNSUPPORTED_SCANNERS = UNSUPPORTED_AV_SCANNERS


@dataclass(frozen=True)
class ClamdServer:
    """One clamd of ``av_scanner = clamd:...``."""

    endpoint: Endpoint
    retry: float = 0.0


@dataclass(frozen=True)
class ClamdSpec:
    """``clamd``: the servers and whether clamd shares our file system (``local``, or a
    Unix socket: the file name is sent, else the content is streamed)."""

    servers: tuple[ClamdServer, ...]
    local: bool = False


@dataclass(frozen=True)
class CmdlineSpec:
    """``cmdline``: a command (``%s`` is the scan directory), the expression whose match
    in its output means "virus found", and the one that captures the name."""

    command: str
    trigger: re.Pattern[str]
    name: re.Pattern[str]


@dataclass(frozen=True)
class SockSpec:
    """``sock``: a socket, the request (``%s`` is the .eml file name), the trigger and
    the name expressions matched against the answer."""

    endpoint: Endpoint
    request: str
    trigger: re.Pattern[str]
    name: re.Pattern[str]


AvScanner = ClamdSpec | CmdlineSpec | SockSpec


def _regex(text: str, what: str) -> re.Pattern[str]:
    try:
        return compile_regex(text)
    except Exception as exc:
        raise ScanConfigError(f"{what}: bad regular expression \"{text}\": {exc}") from None


def _clamd(options: list[str]) -> ClamdSpec:
    servers: list[ClamdServer] = []
    local = False
    for option in options or ["/tmp/clamd"]:
        if option.lower() == "local":
            local = True
            continue
        endpoint, extra = parse_endpoint(option.split(), "clamd")
        retry = 0.0
        for word in extra:
            name, eq, value = word.partition("=")
            if name.lower() != "retry" or not eq:
                raise ScanConfigError(f'clamd: bad option "{word}"')
            try:
                retry = float(parse_time(value))
            except ValueError:
                raise ScanConfigError(f'clamd: bad option "{word}"') from None
        servers.append(ClamdServer(endpoint, retry))
    if not servers:
        raise ScanConfigError("clamd: no server given")
    if len(servers) > 1 and any(s.endpoint.path for s in servers):
        raise ScanConfigError("clamd: a Unix socket cannot be one of several servers")
    return ClamdSpec(tuple(servers), local)


def parse_av_scanner(text: str) -> AvScanner:
    """The scanner an ``av_scanner`` value names; ScanConfigError for one pymta cannot
    use (an unknown or unsupported type, missing or bad options)."""
    items = split_list(text, ":")
    kind = items[0].strip().lower() if items else ""
    options = items[1:]
    if kind == "clamd":
        return _clamd(options)
    if kind == "cmdline":
        if len(options) < 1 or not options[0]:
            raise ScanConfigError("cmdline: missing commandline specification")
        if len(options) < 2 or not options[1]:
            raise ScanConfigError("cmdline: missing trigger specification")
        if len(options) < 3 or not options[2]:
            raise ScanConfigError("cmdline: missing virus name regex specification")
        return CmdlineSpec(options[0], _regex(options[1], "cmdline"),
                           _regex(options[2], "cmdline"))
    if kind == "sock":
        if not options or not options[0]:
            raise ScanConfigError("sock: missing socket specification")
        endpoint, extra = parse_endpoint(options[0].split(), "sock")
        if extra:
            raise ScanConfigError(f'sock: bad socket specification "{options[0]}"')
        if len(options) < 4 or not options[2] or not options[3]:
            raise ScanConfigError("sock: missing trigger or name regex specification")
        return SockSpec(endpoint, options[1] or "%s\n", _regex(options[2], "sock"),
                        _regex(options[3], "sock"))
    if kind in UNSUPPORTED_SCANNERS:
        raise ScanConfigError(f'scanner type "{kind}" is not supported in this version '
                              "of pymta")
    raise ScanConfigError(f"unknown scanner type '{kind}'")
