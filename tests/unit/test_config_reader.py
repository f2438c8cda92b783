"""load_config: file format, macros, conditionals, includes, sections, and errors."""
import os
import textwrap
from pathlib import Path

import pytest

from pymta.config import ConfigError, load_config

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "config")


def write(tmp_path, text, name="test.conf"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def load(tmp_path, text, macros=None):
    return load_config(write(tmp_path, text), macros)


def error(tmp_path, text, macros=None):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text, macros)
    return e.value


# --- main options --------------------------------------------------------------------
def test_main_options_typed(tmp_path):
    c = load(tmp_path, """
        primary_hostname = mx.example.com
        # a comment
           # an indented comment
        smtp_accept_max = 50
        retry_interval_max = 12h
        no_smtp_enforce_sync
        allow_mx_to_ip
        not_bounce_return_body
        accept_8bitmime = true
        queue_only
        acl_smtp_rcpt = acl_check_rcpt   # not a comment: part of the value
        """)
    m = c.main
    assert m.primary_hostname == "mx.example.com"
    assert m.smtp_accept_max == 50
    assert m.retry_interval_max == 12 * 3600
    assert m.smtp_enforce_sync is False
    assert m.allow_mx_to_ip is True
    assert m.bounce_return_body is False
    assert m.accept_8bitmime is True
    assert m.queue_only is True
    assert m.acl_smtp_rcpt == "acl_check_rcpt   # not a comment: part of the value"
    assert m.is_set("smtp_accept_max") and not m.is_set("smtp_accept_queue")


@pytest.mark.parametrize("option", ["smtp_accept_max_per_host = 2", "smtp_accept_queue = 5"])
def test_counted_limits_need_smtp_accept_max(tmp_path, option):
    """As in Exim, a per-host or queueing limit with no overall limit is refused (the
    daemon counts connections only under smtp_accept_max)."""
    e = error(tmp_path, f"smtp_accept_max = 0\n{option}\n")
    assert e.message == ("smtp_accept_max must be set if smtp_accept_queue or "
                         "smtp_accept_max_per_host is set")
    assert load(tmp_path, f"{option}\n").main.smtp_accept_max == 20   # the default


def test_continuation_lines(tmp_path):
    c = load(tmp_path, """
        trusted_users = uucp:\\
                        # a comment inside is ignored
                        mail
        primary_hostname = a\\
           b
        """)
    assert c.main.trusted_users == "uucp:mail"
    assert c.main.primary_hostname == "ab"


def test_continued_line_is_not_a_macro_definition(tmp_path):
    """A continuation that looks like "NAME=value" stays text (exim4 -bh logs
    "A=1 B=2 C=<3>" for this ACL); a macro definition may itself be continued."""
    c = load(tmp_path, """
        MAC = one \\
              two
        acl_smtp_connect = a
        begin acl
        a:
          warn logwrite = A=1 B=2 \\
                 C=<3> MAC
          accept
        """)
    [item] = c.acls["a"][0].items
    assert item.value == "A=1 B=2 C=<3> one two"


def test_quoted_strings(tmp_path):
    c = load(tmp_path, r"""
        smtp_banner = "hello\tthere\n\x41\101 \"q\" \\"
        qualify_domain = "  spaced  "
        """)
    assert c.main.smtp_banner == 'hello\tthere\nAA "q" \\'
    assert c.main.qualify_domain == "  spaced  "


def test_hide_main_option(tmp_path):
    c = load(tmp_path, "hide sqlite_dbfile = /etc/key.db\n")
    assert c.main.sqlite_dbfile == "/etc/key.db"
    assert c.main.is_hidden("sqlite_dbfile")


def test_missing_file_is_clear_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path / "nope.conf"))
    assert "nope.conf" in str(e.value) and "not found" in str(e.value)


@pytest.mark.parametrize("text,line,message", [
    ("primary_hostname = x\nfoo = 1\n", 2, 'main option "foo" unknown'),
    ("smtp_accept_max = 12x\n", 1, "extra characters follow integer value for smtp_accept_max"),
    ("retry_interval_max = 5q\n", 1, "invalid time value for retry_interval_max"),
    # a time needs its unit, even 0 (as exim4 4.96 says)
    ("smtp_receive_timeout = 30\n", 1, "invalid time value for smtp_receive_timeout"),
    ("auto_thaw = 0\n", 1, "invalid time value for auto_thaw"),
    ("\n\nno_smtp_accept_max\n", 3, "negation prefix applied to a non-boolean option"),
    ("accept_8bitmime = maybe\n", 1,
     '"maybe" is not a valid value for the "accept_8bitmime" option'),
    ("smtp_accept_max\n", 1, '"=" expected after smtp_accept_max'),
    ("smtp_accept_max = 1\nsmtp_accept_max = 2\n", 2,
     '"smtp_accept_max" option set for the second time'),
    ("begin foo\n", 1, '"foo" is not a known configuration section name'),
    ('qualify_domain = "abc\n', 1, "missing closing quote"),
    # a continued line is named by its last physical line, as exim4 4.96 names it
    ("primary_hostname = x\nsmtp_accept_max = \\\n  1 \\\n  abc\n", 4,
     "extra characters follow integer value for smtp_accept_max"),
])
def test_main_errors(tmp_path, text, line, message):
    e = error(tmp_path, text)
    assert e.line == line and e.message == message
    assert e.file.endswith("test.conf")
    assert e.cli_text() == f"pymta: error in configuration file {e.file} line {line}: {message}"


# --- macros --------------------------------------------------------------------------
def test_macros(tmp_path):
    c = load(tmp_path, """
        DOMAIN = example.org
        HOST = mx.DOMAIN
        LIST = a
        LIST == LIST : b
        primary_hostname = HOST
        qualify_domain = DOMAIN
        local_interfaces = LIST
        """)
    assert c.main.primary_hostname == "mx.example.org"
    assert c.main.qualify_domain == "example.org"
    assert c.main.local_interfaces == "a : b"
    assert c.macros["LIST"] == "a : b"


def test_macro_matches_inside_words_like_exim(tmp_path):
    c = load(tmp_path, """
        ABC = x
        qualify_domain = ZABC.ABC_1
        """)
    assert c.main.qualify_domain == "Zx.x_1"


def test_command_line_macros_override(tmp_path):
    c = load(tmp_path, """
        HOST = from.file
        HOST == again.file
        primary_hostname = HOST
        """, macros={"HOST": "from.cmdline"})
    assert c.main.primary_hostname == "from.cmdline"


def test_macro_errors(tmp_path):
    e = error(tmp_path, "A = 1\nA = 2\n")
    assert e.line == 2 and "already defined" in e.message
    e = error(tmp_path, "AB = 1\nABC = 2\n")
    assert e.line == 2 and "substring" in e.message


def test_config_dir_builtin_macro(tmp_path):
    c = load(tmp_path, "spool_directory = _CONFIG_DIR/spool\n")
    assert c.main.spool_directory == f"{tmp_path}/spool"


def test_macro_between_drivers(tmp_path):
    c = load(tmp_path, """
        begin transports
        T1:
          driver = appendfile
        XCMD = /var/mail/x
        t2:
          driver = appendfile
          file = XCMD
        """)
    assert c.transports["t2"].options["file"] == "/var/mail/x"


# --- conditionals --------------------------------------------------------------------
def test_ifdef(tmp_path):
    text = """
        .ifdef BIG
        message_size_limit = 100M
        .elifdef MEDIUM
        message_size_limit = 50M
        .else
        message_size_limit = 10M
        .endif
        .ifndef BIG
        .ifdef MEDIUM
        smtp_accept_max = 7
        .endif
        .endif
        """
    assert load(tmp_path, text).main.message_size_limit == "10M"
    c = load(tmp_path, text, {"MEDIUM": "1"})
    assert c.main.message_size_limit == "50M" and c.main.smtp_accept_max == 7
    c = load(tmp_path, text, {"BIG": "1", "MEDIUM": "1"})
    assert c.main.message_size_limit == "100M" and not c.main.is_set("smtp_accept_max")


def test_ifdef_skips_errors_and_handles_elifndef(tmp_path):
    c = load(tmp_path, """
        X = 1
        .ifndef X
        this is not valid
        .elifndef Y
        smtp_accept_max = 3
        .endif
        """)
    assert c.main.smtp_accept_max == 3


def test_ifdef_errors(tmp_path):
    e = error(tmp_path, ".ifdef X\nsmtp_accept_max = 1\n")
    assert ".endif missing" in e.message
    e = error(tmp_path, "smtp_accept_max = 1\n.endif\n")
    assert e.line == 2 and ".endif without matching .ifdef" in e.message


# --- includes ------------------------------------------------------------------------
def test_include_relative_and_if_exists(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "smtp_accept_max = 9\n.include inner.conf\n", "sub/part.conf")
    write(tmp_path, "SIZE = 5M\n", "sub/inner.conf")
    c = load(tmp_path, f"""
        .include sub/part.conf
        .include_if_exists {tmp_path}/absent.conf
        .include_if_exists "{tmp_path}/sub/inner2.conf"
        message_size_limit = SIZE
        """)
    # message_size_limit is an expanded string in Exim 4.96
    assert c.main.smtp_accept_max == 9 and c.main.message_size_limit == "5M"


def test_include_errors_name_the_included_file(tmp_path):
    write(tmp_path, "\n\nbogus_option = 1\n", "inc.conf")
    e = error(tmp_path, "primary_hostname = x\n.include inc.conf\n")
    assert e.file == str(tmp_path / "inc.conf") and e.line == 3
    e = error(tmp_path, ".include /nonexistent/x.conf\n")
    assert e.line == 1 and "failed to open included configuration file" in e.message
    e = error(tmp_path, ".include_if_exists relative.conf\n")
    assert "non-absolute" in e.message


# --- named lists ---------------------------------------------------------------------
def test_named_lists(tmp_path):
    c = load(tmp_path, """
        domainlist local_domains = @ : example.com
        hostlist   relay_from_hosts = <; 127.0.0.1 ; ::1
        addresslist bad = a@b
        localpartlist lp = postmaster
        hide domainlist secret = ldap;PASS=x
        """)
    assert c.named_lists["domain"] == {"local_domains": "@ : example.com",
                                       "secret": "ldap;PASS=x"}
    assert c.named_lists["host"]["relay_from_hosts"] == "<; 127.0.0.1 ; ::1"
    assert c.named_lists["address"]["bad"] == "a@b"
    assert c.named_lists["localpart"]["lp"] == "postmaster"


def test_named_list_errors(tmp_path):
    e = error(tmp_path, "domainlist a = x\ndomainlist a = y\n")
    assert e.line == 2 and "two domain lists" in e.message
    e = error(tmp_path, "hostlist = x\n")
    assert e.line == 1


# --- ACLs ----------------------------------------------------------------------------
def test_acls(tmp_path):
    c = load(tmp_path, """
        acl_smtp_rcpt = check_rcpt
        begin acl
        check_rcpt:
          accept  hosts = :
          deny    message = Restricted characters in address
                  domains = +local_domains
                  local_parts = ^[.] : ^.*[@%!/|]
          require verify = sender
          warn    set acl_m_count = ${eval:$acl_m_count+1}
                  !verify = recipient
          deny    endpass
                  message = x
          accept
        check_data:
          accept
        """)
    acl = c.acls["check_rcpt"]
    assert [s.verb for s in acl] == ["accept", "deny", "require", "warn", "deny", "accept"]
    assert [(i.name, i.value) for i in acl[0].items] == [("hosts", ":")]
    assert [(i.name, i.value) for i in acl[1].items] == [
        ("message", "Restricted characters in address"), ("domains", "+local_domains"),
        ("local_parts", "^[.] : ^.*[@%!/|]")]
    assert acl[1].line == 6 and acl[1].items[2].line == 8
    assert [(i.name, i.value) for i in acl[3].items] == [
        ("set", "acl_m_count = ${eval:$acl_m_count+1}"), ("!verify", "recipient")]
    assert [(i.name, i.value) for i in acl[4].items] == [("endpass", ""), ("message", "x")]
    assert acl[5].items == []
    assert [s.verb for s in c.acls["check_data"]] == ["accept"]


@pytest.mark.parametrize("body,line,message", [
    ("a:\n  frob hosts = x\n", 3, 'error in ACL: unknown ACL verb "frob" in "frob hosts = x"'),
    ("a:\n  accept frob = x\n", 3,
     'error in ACL: unknown ACL condition/modifier in "accept frob = x"'),
    ("a:\n  accept\n    hosts : x\n", 4, 'error in ACL: "=" missing after ACL "hosts" condition'),
    ("a:\n  accept\na:\n  deny\n", 4, 'there are two ACLs called "a"'),
    ("  accept\n", 2, 'ACL name expected before "accept"'),
])
def test_acl_errors(tmp_path, body, line, message):
    e = error(tmp_path, "begin acl\n" + body)
    assert (e.line, e.message) == (line, message)


# --- drivers -------------------------------------------------------------------------
def test_drivers_validated_against_tables(tmp_path):
    c = load(tmp_path, """
        begin routers
        dnslookup:
          driver = dnslookup
          domains = ! +local_domains
          transport = remote_smtp
          ignore_target_hosts = 0.0.0.0 : 127.0.0.0/8
          no_more
        localuser:
          driver = accept
          check_local_user
          transport = local_delivery
        nover:
          driver = accept
          no_verify
        begin transports
        local_delivery:
          driver = appendfile
          file = /var/mail/$local_part_data
          mode = 0640
          no_create_directory
        remote_smtp:
          driver = smtp
          hide connect_timeout = 30s
        """)
    assert [r.name for r in c.routers] == ["dnslookup", "localuser", "nover"]
    assert c.routers[2].options["verify_sender"] is False
    assert c.routers[2].options["verify_recipient"] is False
    r = c.routers[0]
    assert r.kind == "router" and r.driver == "dnslookup"
    assert r.options["domains"] == "! +local_domains" and r.options["more"] is False
    assert r.options["transport"] == "remote_smtp" and r.line == 3
    assert "no_more" in [s.name for s in r.settings] or "more" in r.explicit
    assert c.routers[1].options["check_local_user"] is True
    assert c.routers[1].options["verify_recipient"] is True
    t = c.transports["local_delivery"]
    assert t.options["mode"] == 0o640 and t.options["create_directory"] is False
    assert t.options["directory_mode"] == 0o700      # default from the table
    assert t.explicit == {"file", "mode", "create_directory"}
    assert c.transports["remote_smtp"].options["connect_timeout"] == 30
    assert "connect_timeout" in c.transports["remote_smtp"].hidden
    assert c.authenticators == {}


@pytest.mark.parametrize("body,line,message", [
    ("begin routers\nr:\n  driver = accept\n  foo = 1\n", 4, 'option "foo" unknown'),
    ("begin routers\nr:\n  transport = x\n", 2, 'no driver defined for router "r"'),
    ("begin routers\nr:\n  driver = nosuch\n", 2,
     'router r: cannot find router driver "nosuch"'),
    ("begin routers\nr:\n  driver = accept\nr:\n  driver = accept\n", 4,
     'there are two routers called "r"'),
    ("begin transports\nt:\n  driver = appendfile\n  mode = 0999\n", 4,
     "octal integer expected for mode"),
    ("begin transports\nt:\n  driver = appendfile\n  route_list = x\n", 4,
     'option "route_list" unknown'),
    ("begin transports\nt:\n  driver = appendfile\n  file = /a\n  file = /b\n", 5,
     '"file" option set for the second time'),
    ("begin transports\n  driver = smtp\n", 2, 'transport name expected before "driver = smtp"'),
    ("begin routers\nr:\n  driver = accept\n  pass_router = nosuch\n", 4,
     'new_router "nosuch" not found for "r" router'),
])
def test_driver_errors(tmp_path, body, line, message):
    e = error(tmp_path, body)
    assert (e.line, e.message) == (line, message)


def test_registered_driver_class_is_used(tmp_path, monkeypatch):
    from pymta import drivers
    from pymta.config.options import OptionSpec

    class Fake:
        options = {"transport": OptionSpec("transport", "string", None),
                   "colour": OptionSpec("colour", "string", "red"),
                   "count": OptionSpec("count", "int", 1)}

        def __init__(self, instance, config):
            self.instance = instance
            self.config = config

    monkeypatch.setitem(drivers._REGISTRY, ("router", "fakedrv"), Fake)
    c = load(tmp_path, """
        begin routers
        r1:
          driver = fakedrv
          count = 3
        """)
    r = c.routers[0]
    assert isinstance(r.obj, Fake) and r.obj.instance is r and r.obj.config is c
    assert r.options == {"transport": None, "colour": "red", "count": 3}
    assert r.driver_class is Fake
    e = error(tmp_path, "begin routers\nr1:\n  driver = fakedrv\n  check_local_user\n")
    assert (e.line, e.message) == (4, 'option "check_local_user" unknown')


# --- retry and rewrite ---------------------------------------------------------------
def test_retry_rules(tmp_path):
    c = load(tmp_path, """
        begin retry
        *                      *           F,2h,15m; G,16h,1h,1.5; F,4d,6h
        a.domain  rcpt_452  senders="xb.dom : yc.dom"  G,8h,10m,1.5
        *   rcpt_4xx   senders=:   F,1h,30m
        lookingglass.example   quota
        """)
    r = c.retry_rules
    assert (r[0].pattern, r[0].error, r[0].senders) == ("*", "*", None)
    assert r[0].rules == [("F", 7200, (900,)), ("G", 57600, (3600, 1.5)),
                          ("F", 4 * 86400, (21600,))]
    assert r[1].senders == "xb.dom : yc.dom" and r[1].rules == [("G", 8 * 3600, (600, 1.5))]
    assert r[2].senders == ":" and r[2].error == "rcpt_4xx"
    assert r[3].rules == [] and r[3].line == 6


@pytest.mark.parametrize("rule,message", [
    ("* * F,2h", "comma expected"),
    ("* * X,2h,1", "unknown retry rule letter"),
    ("* * F,2q,1h", "invalid time value in retry rule"),
    ("* * G,2h,1h,0.5", "retry multiplier must be greater than 1"),
])
def test_retry_errors(tmp_path, rule, message):
    e = error(tmp_path, f"begin retry\n{rule}\n")
    assert (e.line, e.message) == (2, message)


def test_rewrite_rules_are_parsed(tmp_path):
    from pymta.config.reader import parse_rewrite_rule
    r = parse_rewrite_rule("*@*.hitch.fict.example  $1@hitch.fict.example  Ffrs", "f", 1)
    assert (r.pattern, r.replacement, r.flags) == (
        "*@*.hitch.fict.example", "$1@hitch.fict.example", "Ffrs")
    assert parse_rewrite_rule('"*@a b"  "x y"  E', "f", 1).replacement == "x y"
    e = error(tmp_path, "begin rewrite\n*@x  y@z  Fz\n")
    assert e.line == 2 and e.message == (
        "unknown rewrite flag character 'z' (could be missing quotes round replacement item)")
    # Exim's wording for an S rule whose pattern cannot match raw MAIL/RCPT data
    e = error(tmp_path, "begin rewrite\n# a comment\n*@x  y@z  S\n")
    assert e.line == 3 and "has the S flag but is not a regular expression" in e.message
    path = tmp_path / "ok.conf"
    path.write_text("begin rewrite\n# a comment\na@b  c@d  tcq\n\\N^<a>$\\N  <b@c>  S\n")
    rules = load_config(str(path)).rewrite_rules
    assert [(r.pattern, r.flags, r.line) for r in rules] == [
        ("a@b", "tcq", 3), ("\\N^<a>$\\N", "S", 4)]


def test_exim_default_configuration_loads_whole(tmp_path):
    """Exim's stock configure file, unchanged, is accepted: every option, driver and ACL
    item it names is one pymta supports."""
    path = tmp_path / "configure"
    path.write_text((Path(DATA) / "exim-configure.default").read_text())
    c = load_config(str(path))
    assert list(c.acls) == ["acl_check_rcpt", "acl_check_data"]
    assert [r.name for r in c.routers] == ["dnslookup", "system_aliases", "userforward",
                                           "localuser"]
    assert set(c.transports) == {"remote_smtp", "smarthost_smtp", "local_delivery",
                                 "address_pipe", "address_file", "address_reply"}
    assert c.named_lists["domain"]["local_domains"] == "@"
    assert c.retry_rules[0].rules[1] == ("G", 57600, (3600, 1.5))


def test_include_inside_continued_line(tmp_path):
    write(tmp_path, "b : c\n", "hosts.inc")
    c = load(tmp_path, """
        host_lookup = a : \\
                      .include hosts.inc
        smtp_accept_max = 4
        """)
    assert c.main.host_lookup == "a : b : c"
    assert c.main.smtp_accept_max == 4


def test_macro_can_make_comment_or_empty_line(tmp_path):
    c = load(tmp_path, """
        HASH = #
        EMPTY =
        HASH smtp_accept_max = 99
        EMPTY
        smtp_accept_queue_per_connection = 3
        """)
    assert not c.main.is_set("smtp_accept_max")
    assert c.main.smtp_accept_queue_per_connection == 3


def test_macros_not_defined_in_retry_section(tmp_path):
    e = error(tmp_path, "begin retry\nFOO = bar\n")
    assert e.line == 2
