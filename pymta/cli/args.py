"""Exim's command-line syntax (not GNU style), parsed by hand.

Exim options are single words such as ``-bd``, ``-q30m``, ``-Mrm``; some take the next
argument (``-C file``, ``-f addr``, ``-oX ports``), some accept it attached (``-fuser@x``,
``-Fname``).  Whatever follows the options is, depending on the action, recipients,
message ids, addresses to test, option names or strings to expand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class UsageError(Exception):
    """An option Exim would reject; ``str()`` is the text after "pymta abandoned: "."""


def bad_option(opt: str) -> UsageError:
    return UsageError(f"unknown, malformed, or incomplete option {opt}")


_TIME_RE = re.compile(r"^(?:\d+[wdhms]?)+$")


def parse_time(text: str) -> int | None:
    """Exim time syntax: ``30m``, ``1h30m``, ``45`` (seconds); None if malformed."""
    if not text or not _TIME_RE.match(text):
        return None
    total = 0
    for num, unit in re.findall(r"(\d+)([wdhms]?)", text):
        total += int(num) * {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[unit]
    return total


@dataclass
class CliOptions:
    """The parsed command line.  ``action`` is the Exim flag that chose what to do."""

    action: str = ""                      # "" means not given (submission, -bm)
    args: list[str] = field(default_factory=list)
    config_path: str | None = None
    macros: dict[str, str] = field(default_factory=dict)
    debug: bool = False
    verbose: bool = False
    sender: str | None = None             # -f / -r
    fullname: str | None = None           # -F
    extract: bool = False                 # -t
    dot_ends: bool = True                 # cleared by -i / -oi / -oitrue
    delivery_mode: str | None = None      # "b" "i" "f" "q" "qs" from -od?
    error_mode: str | None = None         # -oe? letter
    queue_interval: int | None = None     # -q<time>
    queue_flags: str = ""                 # "", "f", "ff"
    queue_run: bool = False               # -q given at all
    oX: str | None = None
    pid_file: str | None = None
    dont_deliver: bool = False            # -N
    bem_file: str | None = None
    received_protocol: str | None = None  # -oMr / -p
    sender_host_address: str | None = None  # -oMa
    host_check: str | None = None         # -bh IP[.port]


# Options that take a following argument which is ignored (sendmail compatibility or
# Exim features pymta does not implement yet but must parse).
_IGNORED_WITH_ARG = {"-h", "-O", "-oA", "-oB", "-oMaa", "-oMai", "-oMas", "-oMs", "-oMt",
                     "-oMi", "-oMm", "-oMn", "-or", "-os", "-B", "-X", "-L"}
# Options without argument accepted and ignored.
_IGNORED = {"-m", "-om", "-oem", "-n", "-x", "-oY", "-oPX", "-Ac", "-Am", "-U", "-ov",
            "-odqs", "-oo"}

# Actions that take all remaining arguments.
_ACTIONS = {"-bd": "bd", "-bdf": "bdf", "-be": "be", "-bm": "bm", "-bp": "bp", "-bpa": "bp",
            "-bpc": "bpc", "-bpr": "bp", "-bpu": "bpu", "-bpru": "bpu", "-bP": "bP",
            "-bt": "bt", "-bv": "bv", "-bvs": "bv", "-bV": "bV", "-bs": "bs", "-bS": "bS",
            "-bi": "bi", "-bnq": "bm", "-M": "M", "-Mc": "M", "-Mrm": "Mrm", "-Mvh": "Mvh",
            "-Mvb": "Mvb", "-Mvl": "Mvl", "-Mf": "Mf", "-Mt": "Mt", "-Mg": "Mg"}


def _set_action(opts: CliOptions, action: str, opt: str) -> None:
    if opts.action and opts.action != action:
        # Exim refuses two incompatible actions; combining -bd and -q is fine (handled).
        raise bad_option(opt)
    opts.action = action


def _parse_q(opts: CliOptions, opt: str) -> None:
    """-q[q][i][f[f]][l][<time>]"""
    rest = opt[2:]
    if rest.startswith(("R", "S")):
        raise UsageError(f"{opt[:3]} is not supported by pymta")
    m = re.match(r"^(q?)(i?)(f{0,2})(l?)(.*)$", rest)
    if not m:
        raise bad_option(opt)
    opts.queue_flags = m.group(3)
    opts.queue_run = True
    if m.group(5):
        t = parse_time(m.group(5))
        if t is None or t == 0:
            raise bad_option(opt)
        opts.queue_interval = t


def parse_args(argv: list[str], *, sendmail: bool = False) -> CliOptions:
    """Parse ``argv`` (without the program name) the way Exim does."""
    opts = CliOptions()
    i = 0
    n = len(argv)

    def take(opt: str, attached: str) -> str:
        nonlocal i
        if attached:
            return attached
        if i + 1 >= n:
            raise bad_option(opt)
        i += 1
        return argv[i]

    while i < n:
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a in ("--version",):
            _set_action(opts, "version", a)
        elif a in ("--help", "-help"):
            _set_action(opts, "help", a)
        elif a in ("-bd", "-bdf") and opts.action == "q":
            opts.action = _ACTIONS[a]
        elif a in ("-bem",):
            _set_action(opts, "be", a)
            opts.bem_file = take(a, "")
        elif a == "-bh":
            _set_action(opts, "bh", a)
            opts.host_check = take(a, "")
        elif a in _ACTIONS:
            _set_action(opts, _ACTIONS[a], a)
        elif a.startswith("-C"):
            opts.config_path = take(a, a[2:])
        elif a.startswith("-D"):
            body = a[2:] or take(a, "")
            name, eq, value = body.partition("=")
            if not re.match(r"^[A-Z][A-Za-z0-9_]*$", name.strip()):
                raise bad_option(a)
            opts.macros[name.strip()] = value.strip() if eq else ""
        elif a == "-d" or a.startswith(("-d+", "-d-", "-dd")) or re.match(r"^-d[0-9]+$", a):
            opts.debug = True
        elif a.startswith("-f"):
            opts.sender = take(a, a[2:])
        elif a.startswith("-r") and not a.startswith("-R"):
            opts.sender = take(a, a[2:])
        elif a.startswith("-F"):
            opts.fullname = take(a, a[2:])
        elif a in ("-t",):
            opts.extract = True
        elif a == "-ti":
            opts.extract, opts.dot_ends = True, False
        elif a in ("-i", "-oi", "-oitrue"):
            opts.dot_ends = False
        elif a == "-oifalse":
            opts.dot_ends = True
        elif a in ("-odb", "-odi", "-odf", "-odq"):
            opts.delivery_mode = a[3:]
        elif a in ("-oee", "-oep", "-oeq", "-oew"):
            opts.error_mode = a[3:]
        elif a == "-oX":
            opts.oX = take(a, "")
        elif a == "-oP":
            opts.pid_file = take(a, "")
        elif a == "-oMa":
            opts.sender_host_address = take(a, "")
        elif a == "-oMr":
            opts.received_protocol = take(a, "")
        elif a.startswith("-p") and len(a) > 2:
            opts.received_protocol = a[2:].split(":", 1)[0]
        elif a == "-v":
            opts.verbose = True
        elif a == "-N":
            opts.dont_deliver = True
        elif a.startswith("-q"):
            _parse_q(opts, a)
            if opts.action in ("", "q"):
                opts.action = "q"
            elif opts.action not in ("bd", "bdf"):
                raise bad_option(a)
        elif a in _IGNORED_WITH_ARG:
            take(a, "")
        elif a in _IGNORED:
            pass
        else:
            raise bad_option(a)
        i += 1
    opts.args = argv[i:]
    if not opts.action:
        opts.action = "bm"
    return opts
