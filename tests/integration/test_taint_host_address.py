"""Taint of the client's address at delivery: Exim 4.96 treats $sender_host_address as
untainted (its daemon writes "-host_address" into -H; tests/data/ident/exim-answered.H),
so a file name built from it is accepted; the HELO name the client sent stays tainted and
such a file name is refused (the delivery defers)."""
from __future__ import annotations

from tests.integration.conftest import BASE_CONFIG, wait_for


def _config(directory: str) -> str:
    return BASE_CONFIG.replace("  directory = DIR/maildir/${local_part_data}\n",
                               f"  directory = {directory}\n")


def test_file_name_from_the_client_address_is_accepted(pymta_daemon, tmp_path):
    d = pymta_daemon(config=_config("DIR/by-ip/$sender_host_address/${local_part_data}"))
    with d.client() as c:
        c.send_message("s@remote.example", "alice@test.example", b"Subject: t\r\n\r\nhi\r\n")
    new = tmp_path / "by-ip" / "127.0.0.1" / "alice" / "new"
    assert wait_for(lambda: new.is_dir() and any(new.iterdir())), d.log()


def test_file_name_from_the_helo_name_is_refused(pymta_daemon, tmp_path):
    d = pymta_daemon(config=_config("DIR/by-helo/$sender_helo_name/${local_part_data}"))
    with d.client() as c:
        c.send_message("s@remote.example", "alice@test.example", b"Subject: t\r\n\r\nhi\r\n")
    [line] = d.wait_for_log(r"== alice@test\.example .*")
    assert "Tainted '" in line and "not permitted" in line, line
    assert not (tmp_path / "by-helo").exists()
