"""Exim's command-line syntax (not GNU style), parsed by hand.

Exim options are single words such as ``-bd``, ``-q30m``, ``-Mrm``; some take the next
argument (``-C file``, ``-oX ports``), some also accept it attached (``-fuser@x``,
``-Fname``, ``-B8BITMIME``), a few only attached (``-DNAME=value``, ``-p<proto>``).
Which form each option accepts follows Exim 4.96 as observed with ``exim4`` itself.
Whatever follows the options is, depending on the action, recipients, message ids,
addresses to test, option names or strings to expand.

Sendmail options that Exim accepts and ignores (``-B``, ``-h``, ``-O``, ``-X``, ``-U``
...) are accepted here too and listed in :attr:`CliOptions.ignored`; like Exim, nothing
is logged for them (``-d`` shows them on standard error).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymta.debuglog import SelectorError, parse_selector


class UsageError(Exception):
    """A command line Exim would refuse.

    ``str()`` is the text; :meth:`line` adds the program name in one of Exim's two
    shapes: "exim abandoned: unknown, malformed, or incomplete option -y" for an option
    it does not know, "exim: string expected after -O" for a bad option argument.
    """

    def __init__(self, text: str, abandoned: bool = True) -> None:
        super().__init__(text)
        self.abandoned = abandoned

    def line(self, prog: str = "pymta") -> str:
        """The whole error line (without newline) as Exim would print it."""
        return f"{prog} abandoned: {self}" if self.abandoned else f"{prog}: {self}"


def bad_option(opt: str) -> UsageError:
    return UsageError(f"unknown, malformed, or incomplete option {opt}")


def bad_argument(text: str) -> UsageError:
    """An option Exim knows, given a missing or malformed argument."""
    return UsageError(text, abandoned=False)


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
    debug_selector: int = 0               # Exim's bits (pymta.debuglog) from -d
    debug_daemon_only: bool = False       # -dd: not in the daemon's children
    verbose: bool = False
    sender: str | None = None             # -f / -r
    fullname: str | None = None           # -F
    extract: bool = False                 # -t
    dot_ends: bool = True                 # cleared by -i / -oi / -oitrue
    delivery_mode: str | None = None      # "b" "i" "f" "q" from -od?
    queue_smtp: bool = False              # -odqs: smtp deliveries wait for a queue run
    alias_file: str | None = None         # -oA: the argument -bi gives bi_command
    error_mode: str | None = None         # -oe? / -e? letter
    queue_interval: int | None = None     # -q<time>
    queue_flags: str = ""                 # "", "f", "ff"
    queue_name: str = ""                  # -qG<name>: a named queue
    two_phase: bool = False               # -qq
    initial_only: bool = False            # -qi: only messages never tried
    local_only: bool = False              # -ql: only local deliveries
    queue_run: bool = False               # -q given at all
    oX: str | None = None
    inetd_wait_timeout: int = 0           # -bw<time>: 0 = no timeout
    tls_on_connect: bool = False          # -tls-on-connect: every daemon port starts TLS
    pid_file: str | None = None
    dont_deliver: bool = False            # -N
    bem_file: str | None = None
    mset_id: str | None = None            # -Mset: a queued message's variables for -be
    filter_file: str | None = None        # -bf: a user filter to test
    system_filter_file: str | None = None  # -bF: a system filter to test
    filter_address: dict[str, str] = field(default_factory=dict)  # -bfd/-bfl/-bfp/-bfs
    received_protocol: str | None = None  # -oMr / -p
    sender_host_address: str | None = None  # -oMa
    # -oMaa -oMai -oMas -oMi -oMs -oMt: option name -> value (pymta.smtp.local.HostOverrides)
    host_overrides: dict[str, str] = field(default_factory=dict)
    host_check: str | None = None         # -bh IP[.port]
    host_check_callouts: bool = False     # -bhc: -bh that does verification callouts
    no_names: bool = False                # -n: -bP shows values without option names
    suppress_local_fixups: bool = False   # -G
    log_line: str | None = None           # -z
    recipient_select: tuple[str, str] | None = None  # -R / -qR: (flags, string)
    sender_select: tuple[str, str] | None = None     # -S / -qS: (flags, string)
    smtp_receive_timeout: int | None = None          # -os: overrides the option
    receive_timeout: int | None = None               # -or: overrides the option
    # Options accepted without effect, as given (Exim ignores most of them too).
    ignored: list[str] = field(default_factory=list)


# Exact options that Exim accepts and that change nothing (sendmail compatibility),
# plus a few pymta accepts but does not implement (-pd/-ps: no embedded Perl; -oY: the
# daemon has no notifier socket option).
_NO_OPS = {"-Ac", "-Am", "-m", "-om", "-oo", "-x", "-dropcr", "-pd", "-ps", "-oY", "-oPX"}

# Options whose argument may be attached or separate and is then ignored; the text is
# Exim's complaint when it is missing at the end of the command line (None: the
# generic "unknown, malformed, or incomplete option").
_IGNORED_WITH_ARG: dict[str, str | None] = {
    "-O": "string expected after -O", "-X": "string expected after -X",
    "-L": None,
}

# -oM<x> options: separate argument only.
_OM_OPTIONS = {"-oMa", "-oMaa", "-oMai", "-oMas", "-oMi", "-oMm", "-oMr", "-oMs", "-oMt"}

_MESSAGE_ID_RE = re.compile(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$")

# -R / -S flag words: r = regular expression, f / ff = force (and frozen).
_RS_FLAGS = ("f", "ff", "r", "rf", "rff")

# Actions that take all remaining arguments.
_ACTIONS = {"-bd": "bd", "-bdf": "bdf", "-be": "be", "-bm": "bm", "-bp": "bp", "-bpa": "bpa",
            "-bpc": "bpc", "-bpr": "bp", "-bpra": "bpa", "-bpu": "bpu", "-bpru": "bpu",
            "-bpi": "bpi",
            "-bP": "bP", "-bt": "bt", "-bv": "bv", "-bvs": "bvs", "-bV": "bV", "-bs": "bs",
            "-bS": "bS", "-bi": "bi", "-bnq": "bm", "-M": "M", "-Mc": "M", "-Mrm": "Mrm",
            "-Mvh": "Mvh", "-Mvb": "Mvb", "-Mvl": "Mvl", "-Mf": "Mf", "-Mt": "Mt", "-Mg": "Mg",
            "-Mar": "Mar", "-Mmd": "Mmd", "-Mmad": "Mmad", "-Mes": "Mes",
            "-MG": "MG",
            "-brt": "brt",
            "-brw": "brw"}


# The -bp family's actions.
_LISTINGS = {"bp", "bpa", "bpc", "bpi", "bpu"}


def _set_action(opts: CliOptions, action: str, opt: str) -> None:
    if opts.action == "q" and opts.queue_name and opts.queue_interval is None \
            and not opts.queue_flags and action != "q":
        # a plain -qG<name> before another action only names the queue it acts on
        opts.action, opts.queue_run = action, False
        return
    if opts.action in _LISTINGS and action in _LISTINGS:
        # Several -bp variants (mailq -bpu): as Exim, the last listing style wins, and
        # -bpc combined with a listing does not turn it into a count.
        opts.action = opts.action if action == "bpc" else action
        return
    if opts.action and opts.action != action:
        # Exim refuses two incompatible actions; combining -bd and -q is fine (handled).
        raise bad_option(opt)
    opts.action = action


class _Argv:
    """The command line being read, with Exim's ways of taking an option's value."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.i = 0

    def value(self, opt: str, attached: str = "", missing: str | None = None) -> str:
        """The attached text, else the next argument; ``missing`` is Exim's complaint
        when there is none (default: the generic bad-option one)."""
        if attached:
            return attached
        if self.i + 1 >= len(self.argv):
            raise bad_argument(missing) if missing else bad_option(opt)
        self.i += 1
        return self.argv[self.i]

    def peek(self) -> str | None:
        return self.argv[self.i + 1] if self.i + 1 < len(self.argv) else None


def _parse_debug(opts: CliOptions, opt: str) -> None:
    """-d / -dd followed by +name / -name selectors (-d implies -v, as in Exim)."""
    daemon_only = opt.startswith("-dd")
    rest = opt[3:] if daemon_only else opt[2:]
    try:
        opts.debug_selector = parse_selector(rest)
    except SelectorError as exc:
        raise bad_argument(str(exc)) from None
    opts.debug_daemon_only = daemon_only
    opts.debug = opts.verbose = True


def _parse_macro(opts: CliOptions, opt: str) -> None:
    """-DNAME[=value]: all in one argument; spaces around the name and "=" allowed."""
    name, eq, value = opt[2:].partition("=")
    name = name.strip()
    if not re.match(r"^[A-Z][A-Za-z0-9_]*$", name):
        raise bad_argument("macro name set by -D must start with an upper case letter")
    opts.macros[name] = value.strip() if eq else ""


def _parse_q(opts: CliOptions, cur: _Argv, opt: str) -> None:
    """-q[q][i][f[f]][l][<time>], or -qR / -qS (same as -R / -S)."""
    rest = opt[2:]
    if rest.startswith(("R", "S")):
        _parse_select(opts, cur, "-" + rest)
        return
    m = re.match(r"^(q?)(i?)(f{0,2})(l?)(.*)$", rest)
    if not m:
        raise bad_option(opt)
    tail = m.group(5)
    if tail.startswith("G"):
        # -qG<name>[/<time>]: a named queue
        name, _, tail = tail[1:].partition("/")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise bad_argument(f"{opt}: bad queue name")
        opts.queue_name = name
        if not tail and opts.action not in ("", "q", "bd", "bdf"):
            return              # -qG<name> with another action: just names the queue
    opts.queue_flags = m.group(3)
    opts.two_phase = m.group(1) == "q"
    opts.initial_only = m.group(2) == "i"
    opts.local_only = m.group(4) == "l"
    opts.queue_run = True
    if tail:
        t = parse_time(tail)
        if t is None or t == 0:
            raise bad_argument(f"bad time value {opt}: abandoned")
        opts.queue_interval = t
    if opts.action in ("", "q"):
        opts.action = "q"
    elif opts.action not in ("bd", "bdf"):
        raise bad_option(opt)


def _parse_select(opts: CliOptions, cur: _Argv, opt: str) -> None:
    """-R<flags> <string> / -S<flags> <string>: a queue run for matching messages.

    With no flags the string may be attached; a flag word (f, ff, r, rf, rff) needs the
    string as the next argument."""
    rest = opt[2:]
    if rest in _RS_FLAGS:
        flags, text = rest, cur.value(opt, "", f"string expected after {opt}")
    else:
        flags, text = "", cur.value(opt, rest, f"string expected after {opt}")
    if opt[1] == "R":
        opts.recipient_select = (flags, text)
    else:
        opts.sender_select = (flags, text)
    opts.queue_run = True
    if opts.action in ("", "q"):
        opts.action = "q"
    elif opts.action not in ("bd", "bdf"):
        raise bad_option(opt)


def _parse_o(opts: CliOptions, cur: _Argv, a: str) -> None:
    """The -o family (sendmail's "set option")."""
    if a in ("-odb", "-odi", "-odf", "-odq"):
        opts.delivery_mode = a[3:]
    elif a == "-odqs":
        opts.queue_smtp = True
    elif re.match(r"^-oe[emepqw]$", a):
        opts.error_mode = a[3]
    elif a in ("-oi", "-oitrue"):
        opts.dot_ends = False
    elif a == "-ov":
        opts.verbose = True
    elif a == "-oX":
        opts.oX = cur.value(a)
    elif a == "-oP":
        opts.pid_file = cur.value(a)
    elif a in _OM_OPTIONS or (a.startswith("-oM") and cur.peek() is None):
        value = cur.value(a, "", f"data expected after {a}")
        if a not in _OM_OPTIONS:
            raise bad_option(a)
        if a == "-oMa":
            opts.sender_host_address = value
            if opts.action == "bh":
                opts.host_check = value     # -bh and -oMa: the last one wins
        elif a == "-oMr":
            opts.received_protocol = value
        elif a != "-oMm":
            opts.host_overrides[a] = value
        else:
            if a == "-oMm" and not _MESSAGE_ID_RE.match(value):
                raise bad_argument("-oMm must be a valid message ID")
            opts.ignored.append(f"{a} {value}")
    elif a.startswith(("-or", "-os")):
        value = cur.value(a, a[3:], f"bad time value {a}: abandoned")
        seconds = parse_time(value)
        if seconds is None:
            raise bad_argument(f"bad time value {value}: abandoned")
        if a.startswith("-os"):
            opts.smtp_receive_timeout = seconds
        else:
            opts.receive_timeout = seconds
    elif a.startswith("-oB"):
        # Optional number: attached, or the next argument when it is one.
        if a[3:] and not a[3:].isdigit():
            raise bad_argument("number expected after -oB")
        nxt = cur.peek()
        if not a[3:] and nxt is not None and nxt.isdigit():
            cur.i += 1
            a = f"{a} {nxt}"
        opts.ignored.append(a)
    elif a.startswith("-oA"):
        opts.alias_file = a[3:] or cur.value(a, '', "string expected after -oA")
    else:
        raise bad_option(a)


def _parse_one(opts: CliOptions, cur: _Argv, a: str) -> None:
    """One option word (and any argument it takes)."""
    key = a[:2]
    if a in ("--version",):
        _set_action(opts, "version", a)
    elif a in ("--help", "-help"):
        _set_action(opts, "help", a)
    elif a in ("-bd", "-bdf") and opts.action == "q":
        opts.action = _ACTIONS[a]
    elif a == "-bem":
        _set_action(opts, "be", a)
        opts.bem_file = cur.value(a)
    elif a == "-Mset":
        opts.mset_id = cur.value(a)
    elif a in ("-bf", "-bF"):
        _set_action(opts, "bf", a)
        if a == "-bf":
            opts.filter_file = cur.value(a)
        else:
            opts.system_filter_file = cur.value(a)
    elif a in ("-bfd", "-bfl", "-bfp", "-bfs"):
        opts.filter_address[a[3]] = cur.value(a)
    elif a in ("-bh", "-bhc"):
        _set_action(opts, "bh", a)
        opts.host_check = cur.value(a)
        opts.host_check_callouts = a == "-bhc"
    elif a.startswith("-bw"):
        # -bw[<time>]: inetd wait mode; the listening socket is standard input.
        if a[3:]:
            t = parse_time(a[3:])
            if not t:
                raise bad_argument(f"bad time value {a}: abandoned")
            opts.inetd_wait_timeout = t
        _set_action(opts, "bw", a)
    elif a in _ACTIONS:
        _set_action(opts, _ACTIONS[a], a)
    elif a in _NO_OPS:
        opts.ignored.append(a)
    elif key == "-o":
        _parse_o(opts, cur, a)
    elif key == "-C":
        opts.config_path = cur.value(a, a[2:])
    elif key == "-D":
        _parse_macro(opts, a)
    elif key == "-d":
        _parse_debug(opts, a)
    elif key in ("-f", "-r"):
        opts.sender = cur.value(a, a[2:])
    elif key == "-F":
        opts.fullname = cur.value(a, a[2:])
    elif a == "-t":
        opts.extract = True
    elif a == "-ti":
        opts.extract, opts.dot_ends = True, False
    elif a == "-i":
        opts.dot_ends = False
    elif re.match(r"^-e[emepqw]$", a):
        opts.error_mode = a[2]
    elif key == "-p":
        # -p<protocol>[:<host name>]; the host name part is not used.
        value = cur.value(a, a[2:])
        opts.received_protocol = value.split(":", 1)[0]
    elif a == "-v":
        opts.verbose = True
    elif a == "-N":
        opts.dont_deliver = opts.verbose = True
    elif key == "-G":
        opts.suppress_local_fixups = True
    elif key == "-q":
        _parse_q(opts, cur, a)
    elif key in ("-R", "-S"):
        _parse_select(opts, cur, a)
    elif key == "-z":
        if a == "-z":
            _set_action(opts, "z", a)
            opts.log_line = cur.value(a, "", "file name expected after -z")
        else:
            opts.ignored.append(a)      # Exim accepts and ignores the attached form
    elif key == "-h":
        # Hop count: a number, attached or as the next argument.
        value = a[2:] or cur.value(a)
        if not value[:1].isdigit():
            raise bad_option(a)
        opts.ignored.append(a if a[2:] else f"{a} {value}")
    elif key == "-B":
        # Body type: attached, or the next argument when there is one.
        if not a[2:] and cur.peek() is not None:
            cur.i += 1
            a = f"{a} {cur.argv[cur.i]}"
        opts.ignored.append(a)
    elif key in _IGNORED_WITH_ARG:
        opts.ignored.append(a if a[2:] else f"{a} {cur.value(a, '', _IGNORED_WITH_ARG[a])}")
    elif key in ("-U", "-n", "-E"):
        opts.no_names = opts.no_names or a == "-n"      # used by -bP only
        opts.ignored.append(a)          # Exim ignores anything after these letters
    elif a == "-tls-on-connect":
        opts.tls_on_connect = True
    else:
        raise bad_option(a)


def parse_args(argv: list[str], *, sendmail: bool = False) -> CliOptions:
    """Parse ``argv`` (without the program name) the way Exim does."""
    opts = CliOptions()
    cur = _Argv(argv)
    while cur.i < len(argv):
        a = argv[cur.i]
        if a == "--":
            cur.i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        _parse_one(opts, cur, a)
        cur.i += 1
    opts.args = argv[cur.i:]
    if (opts.recipient_select or opts.sender_select) and opts.args:
        raise bad_argument("incompatible command-line options or arguments")
    if not opts.action:
        opts.action = "bm"
    return opts
