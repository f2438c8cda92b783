"""SRS for a forwarding site, set up as the Exim 4.96 manual (58.5) shows: forwarded
mail leaves with an SRS0 return path made by ${srs_encode}; a bounce to that address
comes back, the inbound_srs router decodes it and it reaches the original sender; a
forged SRS address is refused.  The remote side is the test SMTP sink."""
from __future__ import annotations

import re

from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink

CONFIG = """\
primary_hostname = fwd.test.example
qualify_domain = fwd.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
domainlist my_domains = fwd.test.example
acl_smtp_rcpt = rcpt
SRS_SECRET = site-secret-1

begin acl
rcpt:
  accept  domains = +my_domains
          verify = recipient
  deny

begin routers
outbound:
  driver = manualroute
  domains = ! +my_domains
  route_list = * 127.0.0.1::SINK_PORT
  self = send
  transport = ${if eq {$local_part@$domain} {$original_local_part@$original_domain} \\
                   {remote_smtp} {remote_forwarded_smtp}}

inbound_srs:
  driver = redirect
  senders = :
  domains = +my_domains
  condition = ${if inbound_srs {$local_part} {SRS_SECRET}}
  data = $srs_recipient

inbound_srs_failure:
  driver = redirect
  senders = :
  domains = +my_domains
  condition = ${if inbound_srs {$local_part} {}}
  allow_fail
  data = :fail: Invalid SRS recipient address

forwards:
  driver = redirect
  domains = +my_domains
  local_parts = jim
  data = jim@elsewhere.example

begin transports
remote_smtp:
  driver = smtp
  allow_localhost

remote_forwarded_smtp:
  driver = smtp
  allow_localhost
  max_rcpt = 1
  return_path = ${srs_encode {SRS_SECRET} {$return_path} {$original_domain}}

begin retry
*  *  F,1h,1s
"""


def test_forward_and_bounce_round_trip(tmp_path):
    with SmtpSink() as sink, PymtaDaemon(CONFIG, tmp_path,
                                         macros={"SINK_PORT": str(sink.port)}) as d:
        with d.client() as c:
            c.ehlo()
            assert c.send_message("ann@origin.example", "jim@fwd.test.example",
                                  b"Subject: hello\r\n\r\nhi\r\n")[0] == 250
        assert sink.wait_for(1)
        [forwarded] = sink.received()
        assert forwarded.recipients == ["jim@elsewhere.example"]
        # SRS0=<hash>=<time>=<original domain>=<original local part>@<our domain>
        assert re.fullmatch(r"SRS0=[0-9A-Za-z+/]{4}=[0-9A-Za-z]{2}=origin\.example=ann"
                            r"@fwd\.test\.example", forwarded.sender), forwarded.sender
        d.wait_for_log(r"=> jim@elsewhere\.example <jim@fwd\.test\.example> "
                       r"R=outbound T=remote_forwarded_smtp")

        # elsewhere.example bounces to the SRS address: it goes back to ann (forwarded
        # again, but ${srs_encode} of an empty return path is empty: the sender stays <>)
        with d.client() as c:
            c.ehlo()
            assert c.send_message("", forwarded.sender,
                                  b"Subject: Undelivered Mail\r\n\r\nbounce\r\n")[0] == 250
        assert sink.wait_for(2)
        bounce = sink.received()[1]
        assert (bounce.sender, bounce.recipients) == ("", ["ann@origin.example"])
        d.wait_for_log(r"=> ann@origin\.example <" + re.escape(forwarded.sender)
                       + r"> R=outbound T=remote_forwarded_smtp")

        # a made-up SRS address (wrong hash) is refused at RCPT time
        forged = re.sub(r"^SRS0=....", "SRS0=AAAA", forwarded.sender)
        with d.client() as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<>")[0] == 250
            assert c.cmd(f"RCPT TO:<{forged}>") == (550, "Invalid SRS recipient address")
