"""verify = recipient/quota in the running daemon: the appendfile transport's quota is
checked at RCPT time, with the size from MAIL SIZE=, and the answer is cached in the
callout hints database.

The replies and log lines are those Exim 4.96 gave for the same configuration
(exim4 -bh, Debian): "550 Administrative prohibition" to the client (the ACL's default
text: Exim gives no verify text here), "rejected RCPT <a>: Over quota" in the log, and
"Previous (cached) quota verification failure" when the answer came from the cache.
Like Exim, a mailbox over quota passes when the client gave no SIZE= and the mailbox
is only one byte over (the unknown size counts as -1), and a routing failure is
answered the same way with "Unrouteable address" in the log.
"""
from __future__ import annotations

import os
from pathlib import Path

from pymta.clock import OFFSET_ENV, parse_offset
from tests.support.daemon import PymtaDaemon
from tests.support.smtp import SmtpTestClient

USER = "user = nobody" if os.geteuid() == 0 else ""

CONFIG = f"""
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = rcpt
begin acl
rcpt:
  warn    !verify = recipient/QUOTA_OPTION
          set acl_m_why = $acl_verify_message/$recipient_verify_failure
  accept  local_parts = show
          message = why=$acl_m_why
  require verify = recipient/QUOTA_OPTION
  accept
begin routers
r_pipe:
  driver = accept
  domains = test.example
  local_parts = piped
  transport = t_pipe
r_maildir:
  driver = accept
  domains = test.example
  local_parts = md
  transport = t_maildir
r_mbox:
  driver = accept
  domains = test.example
  local_parts = empty : full : half : edge : show : box : other : nc
  transport = t_mbox
begin transports
t_mbox:
  driver = appendfile
  file = DIR/mail/$local_part_data
  quota = 1K
  {USER}
t_maildir:
  driver = appendfile
  directory = DIR/maildir
  maildir_format
  maildir_use_size_file
  quota = 10K
  quota_filecount = 2
  {USER}
t_pipe:
  driver = pipe
  command = /bin/cat
  {USER}
"""


def _daemon(tmp_path: Path, option: str = "quota", env: dict[str, str] | None = None,
            ) -> PymtaDaemon:
    (tmp_path / "mail").mkdir(exist_ok=True)
    return PymtaDaemon(CONFIG, tmp_path, macros={"QUOTA_OPTION": option}, env=env)


def _mailbox(tmp_path: Path, name: str, size: int) -> None:
    (tmp_path / "mail").mkdir(exist_ok=True)
    path = tmp_path / "mail" / name
    path.write_bytes(b"x" * size)
    os.chmod(path, 0o644)


def _rcpt(d: PymtaDaemon, rcpt: str, size: int | None = None) -> tuple[int, str]:
    with SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        code, _ = c.cmd("MAIL FROM:<s@sender.example>" + (f" SIZE={size}" if size is not None
                                                          else ""))
        assert code == 250
        return c.cmd(f"RCPT TO:<{rcpt}>")


def test_quota_checked_at_rcpt_with_size(tmp_path: Path) -> None:
    _mailbox(tmp_path, "full", 2000)
    _mailbox(tmp_path, "half", 500)
    _mailbox(tmp_path, "edge", 1025)
    with _daemon(tmp_path, "quota=no_cache") as d:
        assert _rcpt(d, "empty@test.example") == (250, "Accepted")
        assert _rcpt(d, "half@test.example", 400) == (250, "Accepted")
        # SIZE= counts: 500 + 600 is over 1K
        assert _rcpt(d, "half@test.example", 600) == (550, "Administrative prohibition")
        assert _rcpt(d, "full@test.example") == (550, "Administrative prohibition")
        # As Exim: without SIZE= the size is -1, so one byte over still passes.
        assert _rcpt(d, "edge@test.example") == (250, "Accepted")
        assert _rcpt(d, "edge@test.example", 0)[0] == 550
        # A mailbox with room: the warn statement set nothing.
        assert _rcpt(d, "show@test.example") == (250, "why=")
        # Other transports have no quota: verification succeeds.
        assert _rcpt(d, "piped@test.example", 10**6) == (250, "Accepted")
        # Unroutable: refused the same way, logged with the router's reason.
        assert _rcpt(d, "x@elsewhere.example") == (550, "Administrative prohibition")
        d.wait_for_log(r"rejected RCPT <x@elsewhere.example>: Unrouteable address")
        log = d.log()
        assert "F=<s@sender.example> rejected RCPT <full@test.example>: Over quota" in log
        assert "rejected RCPT <half@test.example>: Over quota" in log
        assert "rejected RCPT <empty@test.example>" not in log


def test_verify_message_and_failure_word(tmp_path: Path) -> None:
    config_why = CONFIG.replace("accept  local_parts = show",
                                "accept  local_parts = show : full")
    _mailbox(tmp_path, "full", 2000)
    with PymtaDaemon(config_why, tmp_path, macros={"QUOTA_OPTION": "quota"}) as d:
        assert _rcpt(d, "full@test.example") == (250, "why=Over quota/quota")
        # The second answer comes from the cache, with Exim's text for it.
        assert _rcpt(d, "full@test.example") == \
            (250, "why=Previous (cached) quota verification failure/quota")


def test_maildir_file_count(tmp_path: Path) -> None:
    with _daemon(tmp_path, "quota=no_cache") as d:
        for sub in ("cur", "new", "tmp"):
            (tmp_path / "maildir" / sub).mkdir(parents=True)
        (tmp_path / "maildir" / "new" / "1.msg").write_bytes(b"x" * 100)
        assert _rcpt(d, "md@test.example") == (250, "Accepted")
        (tmp_path / "maildir" / "cur" / "2.msg").write_bytes(b"x" * 100)
        assert _rcpt(d, "md@test.example") == (550, "Administrative prohibition")
        d.wait_for_log(r"rejected RCPT <md@test.example>: Over quota")
        # Only counted: the check writes no maildirsize file (a delivery would).
        assert not (tmp_path / "maildir" / "maildirsize").exists()


def test_cached_answers_and_expiry(tmp_path: Path) -> None:
    _mailbox(tmp_path, "box", 100)
    _mailbox(tmp_path, "other", 2000)
    with _daemon(tmp_path) as d:
        assert _rcpt(d, "box@test.example") == (250, "Accepted")
        assert _rcpt(d, "other@test.example") == (550, "Administrative prohibition")
        # The mailboxes change; the cached answers stay (positive 5m, negative 1h).
        _mailbox(tmp_path, "box", 2000)
        _mailbox(tmp_path, "other", 0)
        assert _rcpt(d, "box@test.example") == (250, "Accepted")
        assert _rcpt(d, "other@test.example") == (550, "Administrative prohibition")
        d.wait_for_log(r"rejected RCPT <other@test.example>: Previous \(cached\) quota "
                       r"verification failure")
    # Six minutes later the positive record has expired, the negative one has not.
    with PymtaDaemon(CONFIG, tmp_path, macros={"QUOTA_OPTION": "quota"},
                     env=_shifted_env(360)) as d:
        assert _rcpt(d, "box@test.example") == (550, "Administrative prohibition")
        assert _rcpt(d, "other@test.example") == (550, "Administrative prohibition")
    # Two hours later the negative one has expired too.
    with PymtaDaemon(CONFIG, tmp_path, macros={"QUOTA_OPTION": "quota"},
                     env=_shifted_env(7200)) as d:
        assert _rcpt(d, "other@test.example") == (250, "Accepted")


def _shifted_env(seconds: float) -> dict[str, str]:
    """PYMTA_TEST_CLOCK_OFFSET for a daemon ``seconds`` later than this test's clock."""
    base = parse_offset(os.environ.get(OFFSET_ENV, "") or "0")
    return {OFFSET_ENV: str(base + seconds)}


def test_cache_lifetimes_and_no_cache(tmp_path: Path) -> None:
    _mailbox(tmp_path, "box", 100)
    with _daemon(tmp_path, "quota=cachepos=0s,cacheneg=1h") as d:
        assert _rcpt(d, "box@test.example") == (250, "Accepted")
        _mailbox(tmp_path, "box", 2000)
        # No positive record was kept: the change is seen at once.
        assert _rcpt(d, "box@test.example") == (550, "Administrative prohibition")
        _mailbox(tmp_path, "box", 0)
        # The negative one is kept.
        assert _rcpt(d, "box@test.example") == (550, "Administrative prohibition")
    _mailbox(tmp_path, "nc", 2000)
    with PymtaDaemon(CONFIG, tmp_path, macros={"QUOTA_OPTION": "quota=no_cache"}) as d:
        assert _rcpt(d, "nc@test.example") == (550, "Administrative prohibition")
        _mailbox(tmp_path, "nc", 0)
        assert _rcpt(d, "nc@test.example") == (250, "Accepted")
        # no_cache neither reads nor writes: box's negative record is not used.
        assert _rcpt(d, "box@test.example") == (250, "Accepted")
