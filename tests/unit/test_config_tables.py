"""The generated option tables and MainOptions."""
import socket

import pytest

from pymta.config import option_tables
from pymta.config.main_options import MainOptions


def test_main_table_types_and_defaults():
    t = option_tables.main_options_table()
    assert t["accept_8bitmime"].type == "bool" and t["accept_8bitmime"].default is True
    assert t["callout_negative_expire"].type == "time"
    assert t["callout_negative_expire"].default == 7200
    assert t["bounce_return_size_limit"].default == 100 * 1024
    assert t["acl_smtp_rcpt"].type == "expand" and t["acl_smtp_rcpt"].default is None
    assert t["local_interfaces"].type == "list"
    assert t["exim_user"].type == "uid" and t["exim_user"].default is None
    assert t["exim_group"].type == "gid"
    assert t["spool_directory"].default == "/var/spool/pymta"
    assert t["log_file_path"].default == ""
    assert t["daemon_smtp_ports"].default == "smtp"
    import pymta
    assert t["smtp_banner"].default == \
        f"$smtp_active_hostname ESMTP pymta {pymta.__version__} $tod_full"
    assert t["received_header_text"].default.startswith("Received: ${if def:sender_rcvhost")
    # Exim's rule: the node name, qualified by a host lookup only if that adds a dot
    node = socket.gethostname()
    assert t["primary_hostname"].default.split(".")[0] == node.split(".")[0]
    assert "." in node or t["primary_hostname"].default == node or \
        "." in t["primary_hostname"].default
    assert t["queue_only_load"].type == "fixed"
    assert t["tls_advertise_hosts"].default == "*"


def test_every_driver_has_a_table():
    assert option_tables.driver_names("router") == [
        "accept", "dnslookup", "ipliteral", "iplookup", "manualroute", "queryprogram",
        "redirect"]
    assert "smtp" in option_tables.driver_names("transport")
    assert "plaintext" in option_tables.driver_names("authenticator")


def test_driver_options_are_generic_plus_private():
    opts = option_tables.driver_options("transport", "appendfile")
    assert opts["mode"].type == "mode" and opts["mode"].default == 0o600
    assert opts["body_only"].type == "bool"          # generic transport option
    assert "maildir_format" in opts
    assert "route_list" not in opts
    r = option_tables.driver_options("router", "manualroute")
    assert "route_list" in r and "check_local_user" in r
    assert option_tables.driver_options("router", "accept")["self"].default == "freeze"
    smtp = option_tables.driver_options("transport", "smtp")
    assert smtp["port"].type in ("string", "expand") and smtp["port"].default == "smtp"
    assert smtp["command_timeout"].default == 300
    with pytest.raises(KeyError):
        option_tables.driver_options("router", "nosuch")


def test_main_options_access():
    m = MainOptions()
    assert m.accept_8bitmime is True
    assert not m.is_set("primary_hostname")
    m.set("primary_hostname", "mx.example")
    assert m.primary_hostname == "mx.example" and m.is_set("primary_hostname")
    # derived defaults
    assert m.qualify_domain == "mx.example"
    assert m.qualify_recipient == "mx.example"
    m.set("qualify_domain", "example")
    assert m.qualify_recipient == "example"
    with pytest.raises(AttributeError):
        m.no_such_option
    items = dict(m.items())
    assert items["primary_hostname"] == "mx.example" and "smtp_banner" in items
    m.set("tls_privatekey", "/k", hide=True)
    assert m.is_hidden("tls_privatekey") and not m.is_hidden("primary_hostname")
