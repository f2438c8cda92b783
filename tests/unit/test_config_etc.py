"""The bundled configurations in etc/ load and say what the README promises."""
import os

from pymta.config import load_config

ETC = os.path.join(os.path.dirname(__file__), "..", "..", "etc")


def test_production_config_loads():
    c = load_config(os.path.join(ETC, "pymta.conf"))
    assert [r.name for r in c.routers] == ["dnslookup", "system_aliases", "userforward",
                                           "localuser"]
    assert set(c.transports) == {"remote_smtp", "local_delivery", "address_file"}
    assert set(c.acls) == {"acl_check_rcpt", "acl_check_data"}
    assert c.main.acl_smtp_rcpt == "acl_check_rcpt"
    assert c.transports["local_delivery"].options["file"] == "/var/mail/$local_part_data"
    assert c.routers[1].options["data"] == "${lookup{$local_part}lsearch{/etc/aliases}}"
    rule = c.retry_rules[0]
    assert (rule.pattern, rule.error) == ("*", "*")
    assert rule.rules == [("F", 7200, (900,)), ("G", 57600, (3600, 1.5)),
                          ("F", 345600, (21600,))]


def test_dev_config_loads_with_repository_spool():
    c = load_config(os.path.join(ETC, "dev.conf"))
    spool = os.path.normpath(os.path.join(ETC, "..", "spool"))
    assert os.path.normpath(c.main.spool_directory) == spool
    assert os.path.normpath(os.path.dirname(c.main.log_file_path)) == \
        os.path.join(spool, "log")
    assert c.main.log_file_path.endswith("/%slog")
    assert c.main.local_interfaces == "127.0.0.1"
    assert c.main.daemon_smtp_ports == "2525 : 2587 : 2465"
    assert c.main.tls_on_connect_ports == "2465"
    assert c.main.primary_hostname == "pymta.test"
    assert c.named_lists["domain"]["local_domains"] == "pymta.test : localhost"
    assert c.named_lists["host"]["relay_from_hosts"] == "127.0.0.1"
    relay = c.routers[0]
    assert relay.driver == "manualroute"
    assert relay.options["route_list"] == "relay.test 127.0.0.1::2526"
    md = c.transports["maildir_delivery"]
    assert md.options["maildir_format"] is True
    assert md.options["directory"].endswith("/spool/maildir/$local_part_data")
    # the ACL refuses relaying unless the client is in relay_from_hosts or authenticated,
    # and then accepts only recipients that route
    verbs = [(s.verb, [(i.name, i.value) for i in s.items]) for s in c.acls["acl_check_rcpt"]]
    assert ("deny", [("message", "relay not permitted"), ("!hosts", "+relay_from_hosts"),
                     ("!authenticated", "*")]) in verbs
    assert verbs[-2:] == [("require", [("verify", "recipient")]),
                          ("accept", [("control", "submission")])]


def test_dev_config_spool_overridable(tmp_path):
    c = load_config(os.path.join(ETC, "dev.conf"), {"SPOOL": str(tmp_path)})
    assert c.main.spool_directory == str(tmp_path)


def test_dev_user_and_alias_files():
    users = open(os.path.join(ETC, "dev-users")).read()
    aliases = open(os.path.join(ETC, "dev-aliases")).read()
    for u in ("postmaster", "alice", "bob"):
        assert f"\n{u}:" in "\n" + users
    assert "\npostmaster: alice" in "\n" + aliases
