"""Routers: preconditions, accept/redirect/manualroute, and -bt output."""
from pathlib import Path

import pytest

from pymta.address import Address
from pymta.config import load_config
from pymta.expand.context import ExpandContext
from pymta.routing import bt, route_address
from pymta.routing.hosts import parse_host_item, parse_host_list
from pymta.routing.redirect import split_redirect_items

DATA = Path(__file__).parent.parent / "data" / "routing"

HEAD = """primary_hostname = test.example
qualify_domain = local.example
"""
TAIL = """
begin transports
smtp:
  driver = smtp
local_delivery:
  driver = appendfile
  file = /tmp/x
ft:
  driver = appendfile
pt:
  # pymta has no pipe driver; routing only needs the transport's name.
  driver = appendfile
"""


def conf(tmp_path, routers: str, extra_main: str = ""):
    p = tmp_path / "configure"
    p.write_text(HEAD + extra_main + "\nbegin routers\n" + routers + TAIL)
    return load_config(str(p))


def ctx(config, sender="s@remote.example"):
    return ExpandContext(config, {"sender_address": sender})


# ---------------------------------------------------------------------- -bt output
BASIC = ["x@local.example", "list@local.example", "bad@local.example", "later@local.example",
         "bh@local.example", "loop@local.example", "y@nowhere.example", "y@remote.example",
         "y@multi.example", "y@selfish.example", "y@selffail.example"]


def test_bt_output_matches_exim():
    """The expected text was produced by exim4 -bt with the same configuration."""
    c = load_config(str(DATA / "basic.conf"))
    out = []
    for a in BASIC:
        text, rc = bt.test_address(c, a)
        out.append(f"{text}rc={rc}\n")
    assert "".join(out) == (DATA / "basic_bt_expected.txt").read_text()


def test_bt_exit_codes_for_several_addresses():
    c = load_config(str(DATA / "basic.conf"))
    text, rc = bt.test_addresses(c, ["x@local.example", "later@local.example"])
    assert rc == 1
    text, rc = bt.test_addresses(c, ["x@local.example", "y@nowhere.example"])
    assert rc == 2
    assert text.endswith("y@nowhere.example is undeliverable: Unrouteable address\n")


# ---------------------------------------------------------------------- preconditions
def test_domains_and_local_parts_set_data_variables(tmp_path):
    c = conf(tmp_path, """
r1:
  driver = accept
  domains = local.example
  local_parts = alice : bob
  transport = local_delivery
""")
    res = route_address(c, Address("bob@local.example"), ctx(c))
    assert res.status == "accept"
    a = res.addresses[0]
    assert (a.router, a.transport) == ("r1", "local_delivery")
    assert route_address(c, Address("carol@local.example"), ctx(c)).status == "fail"
    assert route_address(c, Address("bob@other.example"), ctx(c)).message == "Unrouteable address"


def test_prefix_and_suffix_are_stripped_before_local_parts(tmp_path):
    c = conf(tmp_path, """
r1:
  driver = accept
  local_part_prefix = owner-
  local_part_suffix = -*
  local_part_suffix_optional
  local_parts = list
  transport = local_delivery
""")
    res = route_address(c, Address("owner-list-extra@local.example"), ctx(c))
    assert res.status == "accept"
    a = res.addresses[0]
    assert (a.prefix, a.suffix) == ("owner-", "-extra")
    # prefix is mandatory: without it the router is skipped
    assert route_address(c, Address("list@local.example"), ctx(c)).status == "fail"


def test_condition_senders_and_no_more(tmp_path):
    c = conf(tmp_path, """
only_from_alice:
  driver = accept
  senders = alice@remote.example
  condition = ${if eq{$local_part}{x}{yes}{no}}
  transport = local_delivery
stopper:
  driver = redirect
  domains = stop.example
  data =
  no_more
catchall:
  driver = accept
  transport = smtp
""")
    res = route_address(c, Address("x@local.example"), ctx(c, "alice@remote.example"))
    assert res.addresses[0].router == "only_from_alice"
    res = route_address(c, Address("x@local.example"), ctx(c, "bob@remote.example"))
    assert res.addresses[0].router == "catchall"
    res = route_address(c, Address("y@local.example"), ctx(c, "alice@remote.example"))
    assert res.addresses[0].router == "catchall"
    # an empty redirection declines, and no_more turns that into a failure
    assert route_address(c, Address("z@stop.example"), ctx(c)).status == "fail"


def test_verify_only_and_no_verify(tmp_path):
    c = conf(tmp_path, """
v_only:
  driver = accept
  verify_only
  transport = local_delivery
not_for_verify:
  driver = accept
  no_verify
  transport = smtp
""")
    assert route_address(c, Address("a@x.example"), ctx(c)).addresses[0].router == "not_for_verify"
    res = route_address(c, Address("a@x.example"), ctx(c), verify=True)
    assert res.addresses[0].router == "v_only"
    c2 = conf(tmp_path, """
not_for_verify:
  driver = accept
  no_verify
  transport = smtp
""")
    assert route_address(c2, Address("a@x.example"), ctx(c2)).status == "accept"
    assert route_address(c2, Address("a@x.example"), ctx(c2), verify=True).status == "fail"


def test_check_local_user_sets_home(tmp_path):
    c = conf(tmp_path, """
users:
  driver = accept
  check_local_user
  transport = local_delivery
""")
    res = route_address(c, Address("root@local.example"), ctx(c))
    assert res.addresses[0].home == "/root"
    assert res.addresses[0].local_part_data == "root"
    assert route_address(c, Address("no-such-user-zz@local.example"), ctx(c)).status == "fail"


def test_unseen_delivers_and_continues(tmp_path):
    c = conf(tmp_path, """
archive:
  driver = accept
  unseen
  transport = ft
normal:
  driver = accept
  transport = local_delivery
""")
    res = route_address(c, Address("a@local.example"), ctx(c))
    assert [(a.router, a.transport) for a in res.addresses] == [
        ("archive", "ft"), ("normal", "local_delivery")]


def test_pass_router_and_errors_to_and_headers(tmp_path):
    c = conf(tmp_path, """
first:
  driver = manualroute
  domains = pass.example
  route_list = * 198.51.100.1
  self = pass
  host_find_failed = pass
  transport = smtp
  pass_router = third
second:
  driver = accept
  transport = ft
third:
  driver = accept
  errors_to = postmaster@local.example
  headers_add = X-Routed: $local_part
  transport = local_delivery
""")
    # route_list hosts are IPs, so first accepts; use a domain whose rule has no hosts
    res = route_address(c, Address("a@pass.example"), ctx(c))
    assert res.addresses[0].router == "first"
    assert [(h.name, h.address) for h in res.addresses[0].hosts] == \
        [("198.51.100.1", "198.51.100.1")]
    res = route_address(c, Address("a@other.example"), ctx(c))
    a = res.addresses[0]
    assert a.router == "second"


def test_pass_router_skips_ahead(tmp_path):
    c = conf(tmp_path, """
first:
  driver = manualroute
  route_list = * 127.0.0.1
  self = pass
  pass_router = third
  transport = smtp
second:
  driver = accept
  transport = ft
third:
  driver = accept
  errors_to = postmaster@local.example
  headers_add = X-Routed: $local_part
  transport = local_delivery
""")
    a = route_address(c, Address("a@any.example"), ctx(c)).addresses[0]
    assert a.router == "third"
    assert a.errors_address == "postmaster@local.example"
    assert a.extra_headers == ["X-Routed: a\n"]


# ---------------------------------------------------------------------- redirect
def test_split_redirect_items():
    assert split_redirect_items('a@b, "c, d"@e\n# comment, x\n  f@g') == ['a@b', '"c, d"@e', 'f@g']
    assert split_redirect_items('"|/bin/cmd a,b", /tmp/x') == ["|/bin/cmd a,b", "/tmp/x"]
    assert split_redirect_items(":fail: gone, really\nx@y") == [":fail: gone, really", "x@y"]
    assert split_redirect_items("Joe <joe@x.example>, k@y") == ["Joe <joe@x.example>", "k@y"]


REDIR = """
aliases:
  driver = redirect
  domains = local.example
  data = ${lookup{$local_part}lsearch{%s}}
  file_transport = ft
  pipe_transport = pt
  allow_fail
  qualify_preserve_domain
  redirect_router = users
other:
  driver = redirect
  domains = local.example
  data = ${if eq{$local_part}{bounce}{:fail: nope}{}}
users:
  driver = accept
  domains = local.example
  transport = local_delivery
remote:
  driver = manualroute
  route_list = * 198.51.100.7
  transport = smtp
"""


def test_redirect_with_lookup_and_special_items(tmp_path):
    aliases = tmp_path / "aliases"
    inc = tmp_path / "inc"
    inc.write_text("i1@local.example\ni2@local.example\n")
    aliases.write_text(f"list: a, b@remote.example, /var/mail/file, |/bin/true\n"
                       f"gone: :fail: Gone away, no forwarding\n"
                       f"hole: :blackhole:\n"
                       f"unk: :unknown:\n"
                       f"inc: :include:{inc}\n"
                       f"named: Someone Else <se@local.example>\n")
    c = conf(tmp_path, REDIR % aliases)
    res = route_address(c, Address("list@local.example"), ctx(c))
    kinds = {a.address: (a.kind, a.router, a.transport) for a in res.addresses}
    # "a" was qualified with the parent's domain; redirect_router sends children
    # straight to "users", skipping "other"
    assert kinds == {"a@local.example": ("address", "users", "local_delivery"),
                     "b@remote.example": ("address", "remote", "smtp"),
                     "/var/mail/file": ("file", "aliases", "ft"),
                     "|/bin/true": ("pipe", "aliases", "pt")}
    assert all(a.parent.address == "list@local.example" for a in res.addresses)
    res = route_address(c, Address("gone@local.example"), ctx(c))
    assert (res.status, res.message) == ("fail", "Gone away, no forwarding")
    res = route_address(c, Address("hole@local.example"), ctx(c))
    assert res.status == "accept" and not res.addresses and res.discarded
    # :unknown: declines: the next router ("other") gets it, then "users"
    res = route_address(c, Address("unk@local.example"), ctx(c))
    assert res.addresses[0].router == "users"
    res = route_address(c, Address("inc@local.example"), ctx(c))
    assert sorted(a.address for a in res.addresses) == ["i1@local.example", "i2@local.example"]
    res = route_address(c, Address("named@local.example"), ctx(c))
    assert [a.address for a in res.addresses] == ["se@local.example"]


def test_redirect_fail_not_allowed_defers(tmp_path):
    c = conf(tmp_path, """
r:
  driver = redirect
  data = :fail: go away
d:
  driver = redirect
  data = :defer: later
  allow_defer
""")
    res = route_address(c, Address("x@local.example"), ctx(c))
    assert res.status == "defer"
    assert res.message == 'error in redirect data: ":fail: go away" is not permitted'
    # Exim's ERRNO_BADREDIRECT, as its "== ... defer (-17)" line shows
    assert res.deferred[0].basic_errno == -17


def test_redirect_pipe_without_transport_defers(tmp_path):
    c = conf(tmp_path, """
r:
  driver = redirect
  data = |/bin/true
""")
    res = route_address(c, Address("x@local.example"), ctx(c))
    assert res.status == "defer" and "pipe_transport" in res.message


def test_ancestor_loop_is_broken_and_check_ancestor(tmp_path):
    c = conf(tmp_path, """
aliases:
  driver = redirect
  data = ${if eq{$local_part}{a}{b@local.example}{${if eq{$local_part}{b}{a@local.example}{}}}}
forwards:
  driver = redirect
  check_ancestor
  data = ${if eq{$local_part}{b}{a@local.example}{}}
users:
  driver = accept
  transport = local_delivery
""")
    res = route_address(c, Address("a@local.example"), ctx(c))
    # a -> b (aliases); b -> a (aliases) ; a skips aliases (ancestor) and reaches users
    assert sorted(x.address for x in res.addresses) == ["a@local.example"]
    assert res.addresses[0].router == "users"


def test_unqualified_redirect_uses_qualify_recipient(tmp_path):
    c = conf(tmp_path, """
r:
  driver = redirect
  domains = other.example
  data = someone
users:
  driver = accept
  transport = local_delivery
""")
    res = route_address(c, Address("x@other.example"), ctx(c))
    assert [a.address for a in res.addresses] == ["someone@local.example"]


# ---------------------------------------------------------------------- manualroute
def test_host_items_and_ports():
    assert parse_host_item("host1.tld:1225") == ("host1.tld", 1225, False)
    assert parse_host_item("[10.1.1.1]:1225") == ("10.1.1.1", 1225, False)
    assert parse_host_item("[::1]:1226") == ("::1", 1226, False)
    assert parse_host_item("::1") == ("::1", None, False)
    assert parse_host_item("dom1.tld/mx") == ("dom1.tld", None, True)
    assert parse_host_list("host1.tld::1225 : host2.tld::1226") == [
        ("host1.tld", 1225, False), ("host2.tld", 1226, False)]
    assert parse_host_list("<+ host1.tld:1225 + host2.tld:1226") == [
        ("host1.tld", 1225, False), ("host2.tld", 1226, False)]
    assert parse_host_list("</ [10.1.1.1]:1225 / [::1]:1226") == [
        ("10.1.1.1", 1225, False), ("::1", 1226, False)]
    with pytest.raises(ValueError):
        parse_host_item("host:abc")


def test_randomize_keeps_groups_in_order():
    for _ in range(20):
        got = [h for h, _, _ in parse_host_list("a:b:c:+:d:e", randomize=True)]
        assert sorted(got[:3]) == ["a", "b", "c"] and sorted(got[3:]) == ["d", "e"]
    assert [h for h, _, _ in parse_host_list("a:b:+:c")] == ["a", "b", "c"]


def test_manualroute_rules_options_and_route_data(tmp_path):
    c = conf(tmp_path, """
mr:
  driver = manualroute
  route_list = a.example 198.51.100.1:198.51.100.2 ; \\
               *.b.example "198.51.100.3::2525" local_delivery ; \\
               ^c(\\\\d+)\\\\.example 198.51.100.$1
  transport = smtp
rd:
  driver = manualroute
  route_data = ${if eq{$domain}{d.example}{198.51.100.9 byname}fail}
  transport = smtp
""")
    a = route_address(c, Address("u@a.example"), ctx(c)).addresses[0]
    assert [h.address for h in a.hosts] == ["198.51.100.1", "198.51.100.2"]
    assert a.transport == "smtp"
    a = route_address(c, Address("u@x.b.example"), ctx(c)).addresses[0]
    # a local transport: hosts are passed on by name, without address lookup
    assert a.transport == "local_delivery"
    assert [(h.name, h.address, h.port) for h in a.hosts] == [("198.51.100.3", None, 2525)]
    a = route_address(c, Address("u@c42.example"), ctx(c)).addresses[0]
    assert [h.address for h in a.hosts] == ["198.51.100.42"]
    a = route_address(c, Address("u@d.example"), ctx(c)).addresses[0]
    assert (a.router, [h.address for h in a.hosts]) == ("rd", ["198.51.100.9"])
    assert route_address(c, Address("u@e.example"), ctx(c)).status == "fail"


def test_manualroute_self_options(tmp_path):
    c = conf(tmp_path, """
freeze:
  driver = manualroute
  domains = f.example
  route_list = * 127.0.0.1
  transport = smtp
reroute:
  driver = manualroute
  domains = r.example
  route_list = * 127.0.0.1
  self = reroute:local.example
  transport = smtp
users:
  driver = accept
  domains = local.example
  transport = local_delivery
""")
    res = route_address(c, Address("u@f.example"), ctx(c))
    assert (res.status, res.message, res.freeze) == (
        "defer", "remote host address is the local host", True)
    res = route_address(c, Address("u@r.example"), ctx(c))
    assert [(a.address, a.router) for a in res.addresses] == [("u@local.example", "users")]


def test_manualroute_unknown_host(tmp_path):
    c = conf(tmp_path, """
mr:
  driver = manualroute
  route_list = * no-such-host.invalid
  host_find_failed = fail
  transport = smtp
""")
    res = route_address(c, Address("u@x.example"), ctx(c))
    assert res.status == "fail"
    assert 'lookup of host "no-such-host.invalid" failed' in res.message


def test_bv_output_matches_exim():
    c = load_config(str(DATA / "basic.conf"))
    got = [bt.test_address(c, a, verify=True) for a in
           ["x@local.example", "list@local.example", "bad@local.example",
            "later@local.example", "bh@local.example", "y@nowhere.example"]]
    assert got == [("x@local.example verified\n", 0), ("list@local.example verified\n", 0),
                   ("bad@local.example failed to verify: go away\n", 2),
                   ("later@local.example cannot be resolved at this time: try later\n", 1),
                   ("bh@local.example verified\n", 0),
                   ("y@nowhere.example failed to verify: Unrouteable address\n", 2)]


def test_verify_follows_a_single_redirection(tmp_path):
    c = conf(tmp_path, """
r:
  driver = redirect
  domains = local.example
  data = ${if eq{$local_part}{one}{gone@nowhere.example}{a@local.example, b@nowhere.example}}
users:
  driver = accept
  domains = local.example
  transport = local_delivery
""")
    assert route_address(c, Address("one@local.example"), ctx(c), verify=True).status == "fail"
    assert route_address(c, Address("two@local.example"), ctx(c), verify=True).status == "accept"
    # for delivery every child is routed
    assert route_address(c, Address("two@local.example"), ctx(c)).status == "fail"


def test_cannot_route_message_from_last_router_offered(tmp_path):
    """Checked against exim4 -bt: even a router whose preconditions fail counts."""
    c = conf(tmp_path, """
r1:
  driver = accept
  domains = a.example
  cannot_route_message = M1 domains
  transport = local_delivery
r3:
  driver = accept
  local_part_prefix = foo-
  cannot_route_message = M3 $local_part
  transport = local_delivery
""")
    text, rc = bt.test_address(c, "y@b.example")
    assert (text, rc) == ("y@b.example is undeliverable: M3 y\n", 2)


def test_last_router_offered_without_cannot_route_message_gives_the_default(tmp_path):
    """As exim4 -bt with Debian's configuration: local_user has "Unknown user", but the
    last router (mail4root, local_parts = root) is offered the address too, has none,
    so the message is Exim's default."""
    c = conf(tmp_path, """
local_user:
  driver = accept
  local_parts = nobody-here
  cannot_route_message = Unknown user
  transport = local_delivery
mail4root:
  driver = accept
  local_parts = root
  transport = local_delivery
""")
    text, rc = bt.test_address(c, "y@b.example")
    assert (text, rc) == ("y@b.example is undeliverable: Unrouteable address\n", 2)


class _PanicLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def panic(self, text: str, msgid: str | None = None) -> None:
        self.lines.append(text)


@pytest.mark.parametrize("message,logged", [
    ("${lookup{x}lsearch{/nonexistent/file}}", True),     # an error: logged, as Exim
    ("${if eq{1}{2}{x}fail}", False),                     # forced failure: silent
])
def test_cannot_route_message_that_fails_to_expand(tmp_path, message, logged):
    c = conf(tmp_path, f"""
r1:
  driver = accept
  domains = a.example
  cannot_route_message = {message}
  transport = local_delivery
""")
    log = _PanicLog()
    res = route_address(c, Address("y@b.example"),
                        ExpandContext(c, {"sender_address": "s@remote.example"}, log=log))
    assert (res.status, res.message) == ("fail", "Unrouteable address")
    if logged:
        [line] = log.lines
        assert line.startswith("failed to expand cannot_route_message in r1 router: ")
    else:
        assert log.lines == []
    # routing that succeeds never expands it
    assert route_address(c, Address("y@a.example"),
                         ExpandContext(c, log=log)).status == "accept"
    assert len(log.lines) == (1 if logged else 0)


def test_manualroute_ignore_target_hosts(tmp_path):
    c = conf(tmp_path, """
mr:
  driver = manualroute
  route_list = a.example 198.51.100.1:198.51.100.2 ; b.example 198.51.100.1
  ignore_target_hosts = 198.51.100.1
  host_all_ignored = fail
  transport = smtp
""")
    a = route_address(c, Address("u@a.example"), ctx(c)).addresses[0]
    assert [h.address for h in a.hosts] == ["198.51.100.2"]
    res = route_address(c, Address("u@b.example"), ctx(c))
    assert res.status == "fail" and "ignored" in res.message


def test_forward_file_with_check_local_user(tmp_path):
    fwd = tmp_path / "fwd"
    c = conf(tmp_path, f"""
userforward:
  driver = redirect
  check_local_user
  file = {tmp_path}/${{local_part_data}}.forward
  check_ancestor
  file_transport = ft
users:
  driver = accept
  check_local_user
  transport = local_delivery
""")
    # no forward file: the router declines
    assert route_address(c, Address("root@local.example"), ctx(c)).addresses[0].router == "users"
    (tmp_path / "root.forward").write_text("# my forward\nroot, /tmp/archive\n")
    res = route_address(c, Address("root@local.example"), ctx(c))
    assert sorted((a.address, a.router) for a in res.addresses) == [
        ("/tmp/archive", "userforward"), ("root@local.example", "users")]
    del fwd


def test_tainted_redirect_file_defers(tmp_path):
    c = conf(tmp_path, f"""
r:
  driver = redirect
  file = {tmp_path}/$local_part
""")
    res = route_address(c, Address("x@local.example"), ctx(c))
    assert res.status == "defer" and "Tainted" in res.message


def test_check_local_user_sets_uid_gid_for_local_transports(tmp_path):
    import pwd
    nobody = pwd.getpwnam("nobody")
    c = conf(tmp_path, f"""
userforward:
  driver = redirect
  check_local_user
  data = {tmp_path}/archive
  file_transport = ft
""")
    a = route_address(c, Address("nobody@local.example"), ctx(c)).addresses[0]
    assert (a.kind, a.address) == ("file", f"{tmp_path}/archive")
    # the file delivery runs as the user check_local_user found, with that home
    assert (a.uid, a.gid, a.home) == (nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)
    c = conf(tmp_path, """
users:
  driver = accept
  check_local_user
  transport = local_delivery
""")
    a = route_address(c, Address("nobody@local.example"), ctx(c)).addresses[0]
    assert (a.uid, a.gid, a.home) == (nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)
    c = conf(tmp_path, """
users:
  driver = accept
  transport = local_delivery
""")
    a = route_address(c, Address("nobody@local.example"), ctx(c)).addresses[0]
    assert (a.uid, a.gid) == (None, None)


def test_retry_use_local_part_follows_check_local_user_log_as_local_the_driver(tmp_path):
    """As exim4 -bP (4.96) shows them: retry_use_local_part is set by check_local_user;
    log_as_local is set for the accept router, whatever check_local_user says, and for
    no other driver."""
    c = conf(tmp_path, """
users:
  driver = accept
  check_local_user
  transport = local_delivery
remote:
  driver = accept
  retry_use_local_part
  transport = smtp
mr:
  driver = manualroute
  check_local_user
  route_list = * 127.0.0.1
  transport = local_delivery
""")
    users, remote, mr = c.routers
    assert users.options["retry_use_local_part"] is True
    assert users.options["log_as_local"] is True
    assert remote.options["retry_use_local_part"] is True
    assert remote.options["log_as_local"] is True
    assert mr.options["retry_use_local_part"] is True
    assert mr.options["log_as_local"] is False


def test_router_options_come_from_the_config_tables():
    from pymta.config.option_tables import driver_options
    from pymta.drivers import get_driver
    for name in ("accept", "redirect", "manualroute"):
        assert get_driver("router", name).options == driver_options("router", name)


def test_router_name_is_set_while_the_router_runs(tmp_path):
    """$router_name names the router being tried (exim4 -bt routes this to "second")."""
    config = conf(tmp_path, """
first:
  driver = accept
  condition = ${if eq{$router_name}{nope}}
  transport = local_delivery
second:
  driver = accept
  condition = ${if eq{$router_name}{second}}
  address_data = via $router_name
  transport = local_delivery
""")
    rr = route_address(config, Address("user@local.example"), ctx(config))
    assert rr.status == "accept"
    [addr] = rr.addresses
    assert (addr.router, addr.address_data) == ("second", "via second")


@pytest.mark.parametrize("precondition,key", [
    ("", "R:u@local.example"),                      # check_local_user below
    ("  local_parts = u\n", "R:u@local.example"),
    ("  condition = yes\n", "R:u@local.example"),
    ("  senders = s@remote.example\n", "R:u@local.example"),
    ("  domains = local.example\n", "R:local.example"),
    ("  local_parts = u\n  no_retry_use_local_part\n", "R:local.example"),
])
def test_retry_use_local_part_default_follows_local_part_preconditions(tmp_path,
                                                                        precondition, key):
    """As exim4 -bP (4.96) shows: a router whose preconditions look at more than the
    domain (local_parts, condition, affixes, senders, require_files, check_local_user)
    keys its routing deferrals by the whole address."""
    check = "  check_local_user\n" if not precondition else ""
    c = conf(tmp_path, f"""
r:
  driver = redirect
  allow_defer
  data = :defer: later
{precondition}{check}""")
    user = "root" if check else "u"
    res = route_address(c, Address(f"{user}@local.example"), ctx(c))
    assert res.status == "defer"
    assert res.deferred[0].retry_key == key.replace("u@", f"{user}@")
