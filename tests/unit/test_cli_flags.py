"""Every sendmail-interface flag Exim 4.96 accepts, in each form Exim accepts it.

The forms and messages were checked against ``exim4`` 4.96: for each option, joined
(``-B8BITMIME``) and separate (``-B 8BITMIME``) where Exim takes both, followed by a
recipient that must stay a recipient (so an option that swallowed it would show).
"""
import pytest

from pymta.cli.args import UsageError, parse_args

RCPT = "user@test.example"

# (argv before the recipient, attribute, expected value)
EFFECTS = [
    (["-FCronDaemon"], "fullname", "CronDaemon"),
    (["-F", "Cron Daemon"], "fullname", "Cron Daemon"),
    (["-F", ""], "fullname", ""),
    (["-fa@b.example"], "sender", "a@b.example"),
    (["-f", "a@b.example"], "sender", "a@b.example"),
    (["-f", ""], "sender", ""),
    (["-f<>"], "sender", "<>"),
    (["-ra@b.example"], "sender", "a@b.example"),
    (["-r", "a@b.example"], "sender", "a@b.example"),
    (["-C/etc/x.conf"], "config_path", "/etc/x.conf"),
    (["-C", "/etc/x.conf"], "config_path", "/etc/x.conf"),
    (["-DNAME=v"], "macros", {"NAME": "v"}),
    (["-D NAME = v w"], "macros", {"NAME": "v w"}),
    (["-DNAME"], "macros", {"NAME": ""}),
    (["-t"], "extract", True),
    (["-ti"], "dot_ends", False),
    (["-i"], "dot_ends", False),
    (["-oi"], "dot_ends", False),
    (["-oitrue"], "dot_ends", False),
    (["-odb"], "delivery_mode", "b"),
    (["-odf"], "delivery_mode", "f"),
    (["-odi"], "delivery_mode", "i"),
    (["-odq"], "delivery_mode", "q"),
    (["-oMa", "10.0.0.1"], "sender_host_address", "10.0.0.1"),
    (["-oMr", "batch"], "received_protocol", "batch"),
    (["-pbatch"], "received_protocol", "batch"),
    (["-p", "batch"], "received_protocol", "batch"),
    (["-pbatch:host.example"], "received_protocol", "batch"),
    (["-v"], "verbose", True),
    (["-ov"], "verbose", True),
    (["-N"], "dont_deliver", True),
    (["-N"], "verbose", True),
    (["-d"], "debug", True),
    (["-d+all"], "debug", True),
    (["-d-all+expand+acl"], "debug", True),
    (["-dd"], "debug", True),
    (["-dd+receive"], "verbose", True),
    (["-d"], "debug_selector", 0xF7715CFD),
    (["-d+noutf8"], "debug_selector", 0xF7755CFD),
    (["-d-all+expand"], "debug_selector", 0x100),
    (["-dd-all+acl"], "debug_daemon_only", True),
    (["-d-all+acl"], "debug_daemon_only", False),
    (["-G"], "suppress_local_fixups", True),
    (["-Gx"], "suppress_local_fixups", True),
    (["-oX", "2525"], "oX", "2525"),
    (["-oP", "/run/p.pid"], "pid_file", "/run/p.pid"),
] + [([f"-oe{c}"], "error_mode", c) for c in "emepqw"] \
  + [([f"-e{c}"], "error_mode", c) for c in "emepqw"]


@pytest.mark.parametrize("argv, attr, value", EFFECTS, ids=[" ".join(c[0]) or "''"
                                                            for c in EFFECTS])
def test_flag_takes_effect_and_leaves_recipients(argv, attr, value):
    o = parse_args(argv + [RCPT])
    assert getattr(o, attr) == value
    assert o.args == [RCPT] and o.action == "bm"


# Accepted without effect (as in Exim); the text is what CliOptions.ignored records.
IGNORED = [
    (["-B8BITMIME"], "-B8BITMIME"), (["-B", "8BITMIME"], "-B 8BITMIME"),
    (["-h10"], "-h10"), (["-h", "10"], "-h 10"),
    (["-Oa=b"], "-Oa=b"), (["-O", "a=b"], "-O a=b"),
    (["-X/tmp/x"], "-X/tmp/x"), (["-X", "/tmp/x"], "-X /tmp/x"),
    (["-Lmytag"], "-Lmytag"), (["-L", "mytag"], "-L mytag"),
    (["-oB"], "-oB"), (["-oB5"], "-oB5"), (["-oB", "5"], "-oB 5"),
    (["-oMm", "1xZ1dK-0005M2-25"], "-oMm 1xZ1dK-0005M2-25"),
    (["-Ac"], "-Ac"), (["-Am"], "-Am"), (["-m"], "-m"), (["-om"], "-om"), (["-oo"], "-oo"),
    (["-x"], "-x"), (["-U"], "-U"), (["-Ux"], "-Ux"), (["-n"], "-n"), (["-nx"], "-nx"),
    (["-E"], "-E"), (["-E1xZ1dK-0005M2-25"], "-E1xZ1dK-0005M2-25"), (["-dropcr"], "-dropcr"),
    (["-pd"], "-pd"), (["-ps"], "-ps"), (["-oY"], "-oY"),
    (["-zhello"], "-zhello"),
]


@pytest.mark.parametrize("argv", [["-or5m"], ["-or", "5m"]])
def test_or_sets_receive_timeout(argv):
    o = parse_args(argv + [RCPT])
    assert o.receive_timeout == 300 and o.ignored == []


@pytest.mark.parametrize("argv", [["-os5m"], ["-os", "5m"]])
def test_os_sets_smtp_receive_timeout(argv):
    o = parse_args(argv + [RCPT])
    assert o.smtp_receive_timeout == 300 and o.ignored == []


@pytest.mark.parametrize("argv, note", IGNORED, ids=[c[1] for c in IGNORED])
def test_ignored_flag_is_accepted_and_noted(argv, note):
    o = parse_args(argv + [RCPT])
    assert o.args == [RCPT] and o.action == "bm"
    assert o.ignored == [note]


def test_host_options_are_kept_for_the_session():
    o = parse_args(["-oMaa", "plain", "-oMai", "id", "-oMas", "a@b", "-oMi", "10.0.0.2",
                    "-oMs", "h.example", "-oMt", "ident", RCPT])
    assert o.ignored == []
    assert o.host_overrides == {"-oMaa": "plain", "-oMai": "id", "-oMas": "a@b",
                                "-oMi": "10.0.0.2", "-oMs": "h.example", "-oMt": "ident"}


def test_bh_and_oma_the_last_one_wins():
    assert parse_args(["-bh", "10.0.0.1", "-oMa", "10.0.0.2"]).host_check == "10.0.0.2"
    assert parse_args(["-oMa", "10.0.0.2", "-bh", "10.0.0.1"]).host_check == "10.0.0.1"


def test_optional_arguments_are_only_taken_when_they_fit():
    # -oB takes the next argument only when it is a number; -B only when there is one.
    assert parse_args(["-oB", RCPT]).args == [RCPT]
    assert parse_args(["-B"]).ignored == ["-B"]


def test_debian_cron_command_line():
    o = parse_args(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"])
    assert (o.fullname, o.dot_ends, o.error_mode, o.args) == ("CronDaemon", False, "m",
                                                               ["root"])


def test_mutt_command_line_with_double_dash():
    o = parse_args(["-oem", "-oi", "-B8BITMIME", "-f", "me@x.example", "--", "-odd@x", "b@x"])
    assert o.sender == "me@x.example" and o.args == ["-odd@x", "b@x"] and not o.dot_ends


# Refused as Exim refuses them: the generic "unknown option" shape ...
UNKNOWN = [
    ["-y"], ["-V"], ["-Vfoo"], ["-V", "x"], ["-oifalse"], ["-e"], ["-ex"], ["-oex"], ["-od"],
    ["-odx"], ["-odqsx"], ["-Ax"], ["-ix"], ["-tx"], ["-mx"], ["-Nx"], ["-vx"], ["-xy"],
    ["-oMx", "foo"], ["-oMa10.0.0.1", "x"], ["-oMsh.example", "x"], ["-oP/run/p"],
    ["-oX25"], ["-oYx"], ["-omx"], ["-oox"], ["-ovx"], ["-oix"], ["-hx"], ["-h", "root"],
    ["-h"], ["-F"], ["-f"], ["-r"], ["-C"], ["-p"], ["-bem"], ["-bh"], ["-L"],
    ["-tls-on-connectx"], ["-Mx"],
]


@pytest.mark.parametrize("argv", UNKNOWN, ids=[" ".join(a) for a in UNKNOWN])
def test_unknown_or_incomplete_option(argv):
    with pytest.raises(UsageError) as exc:
        parse_args(argv)
    assert str(exc.value) == f"unknown, malformed, or incomplete option {argv[0]}"
    assert exc.value.line() == f"pymta abandoned: {exc.value}"


# ... and the specific messages Exim gives for a bad argument of an option it knows.
BAD_ARGUMENT = [
    (["-O"], "string expected after -O"), (["-X"], "string expected after -X"),
    (["-oA"], "string expected after -oA"), (["-R"], "string expected after -R"),
    (["-S"], "string expected after -S"), (["-Rf"], "string expected after -Rf"),
    (["-oMa"], "data expected after -oMa"), (["-oMs"], "data expected after -oMs"),
    (["-oBx"], "number expected after -oB"),
    (["-or"], "bad time value -or: abandoned"), (["-or", "x", RCPT], "bad time value x: abandoned"),
    (["-os5x", RCPT], "bad time value 5x: abandoned"),
    (["-D", "FOO=1"], "macro name set by -D must start with an upper case letter"),
    (["-Dfoo"], "macro name set by -D must start with an upper case letter"),
    (["-dx"], 'malformed debug_selector setting: + or - expected but found "x"'),
    (["-d5"], 'malformed debug_selector setting: + or - expected but found "5"'),
    (["-dropcrx"], 'malformed debug_selector setting: + or - expected but found "ropcrx"'),
    (["-d+bogus"], "unknown debug_selector setting: +bogus"),
    (["-z"], "file name expected after -z"),
    (["-oMm", "foo", RCPT], "-oMm must be a valid message ID"),
    (["-Rfoo", RCPT], "incompatible command-line options or arguments"),
]


@pytest.mark.parametrize("argv, text", BAD_ARGUMENT, ids=[" ".join(c[0]) for c in BAD_ARGUMENT])
def test_bad_option_argument(argv, text):
    with pytest.raises(UsageError) as exc:
        parse_args(argv)
    assert str(exc.value) == text
    assert exc.value.line() == f"pymta: {text}"


SELECT = [
    (["-R", "dom.example"], "recipient_select", ("", "dom.example")),
    (["-Rdom.example"], "recipient_select", ("", "dom.example")),
    (["-Rf", "dom.example"], "recipient_select", ("f", "dom.example")),
    (["-Rff", "dom.example"], "recipient_select", ("ff", "dom.example")),
    (["-Rr", "^a.*x$"], "recipient_select", ("r", "^a.*x$")),
    (["-Rrff", "x"], "recipient_select", ("rff", "x")),
    (["-qR", "dom.example"], "recipient_select", ("", "dom.example")),
    (["-qRdom.example"], "recipient_select", ("", "dom.example")),
    (["-qRf", "dom.example"], "recipient_select", ("f", "dom.example")),
    (["-S", "a@b"], "sender_select", ("", "a@b")),
    (["-Sa@b"], "sender_select", ("", "a@b")),
    (["-qS", "a@b"], "sender_select", ("", "a@b")),
    (["-qSr", "a.b"], "sender_select", ("r", "a.b")),
]


@pytest.mark.parametrize("argv, attr, value", SELECT, ids=[" ".join(c[0]) for c in SELECT])
def test_selective_queue_runs(argv, attr, value):
    o = parse_args(argv)
    assert o.action == "q" and getattr(o, attr) == value and o.args == []


def test_periodic_selective_run_and_queue_flags():
    o = parse_args(["-q1m", "-R", "dom.example"])
    assert o.queue_interval == 60 and o.recipient_select == ("", "dom.example")
    for flags in ("-qq", "-qi", "-ql", "-qqiffl"):
        assert parse_args([flags]).action == "q"
    assert parse_args(["-qqiffl"]).queue_flags == "ff"


def test_named_queues():
    o = parse_args(["-qGother"])
    assert (o.action, o.queue_name, o.queue_interval) == ("q", "other", None)
    o = parse_args(["-qGother/5m", "-bd"])
    assert (o.action, o.queue_name, o.queue_interval) == ("bd", "other", 300)
    o = parse_args(["-qGother", "-bp"])
    assert (o.action, o.queue_name) == ("bp", "other")
    with pytest.raises(UsageError):
        parse_args(["-qG../x"])


def test_log_line_option():
    o = parse_args(["-z", "operator note"])
    assert o.action == "z" and o.log_line == "operator note"


@pytest.mark.parametrize("argv", [["-oA/etc/aliases"], ["-oA", "/etc/aliases"]])
def test_oA_is_the_argument_of_bi_command(argv):
    o = parse_args(["-bi"] + argv)
    assert (o.action, o.alias_file, o.ignored) == ("bi", "/etc/aliases", [])
