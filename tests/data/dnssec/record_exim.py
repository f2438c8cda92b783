"""Record Exim 4.96's behaviour for the DNSSEC cases pymta's tests compare against.

Run as root from the repository root: ``.venv/bin/python tests/data/dnssec/record_exim.py``.
The loopback DnsServer (tests/support/dns.py) answers on 127.0.0.1:53; exim4 runs in a
private mount namespace where /etc/resolv.conf names it (with "options trust-ad", so
glibc passes the AD flag through).  Each case's log lines (time stamps and message ids
removed) or -bt output is written to <case>.txt here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.getcwd())
from tests.support.dns import DnsServer  # noqa: E402
from tests.support.sink import SmtpSink  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = "/tmp/pymta-dnssec-oracle"
ZONES = {
    "secure.test": """
        @       IN MX 10 mx
        mx      IN A 127.0.0.1
        client  IN A 192.0.2.1
    """,
    "2.0.192.in-addr.arpa": """
        1       IN PTR client.secure.test.
    """,
}
CONF = """\
keep_environment =
exim_user = Debian-exim
primary_hostname = oracle.test
spool_directory = WORK/spool
log_file_path = WORK/log/%slog
log_selector = +dnssec
host_lookup = *
acl_smtp_rcpt = acl_rcpt
MAIN
begin acl
acl_rcpt:
  accept logwrite = sender_host_dnssec=$sender_host_dnssec
begin routers
dnslookup:
  driver = DRIVER
  domains = ! oracle.test
  transport = remote_smtp
  ROUTER
  no_more
begin transports
remote_smtp:
  driver = smtp
  port = PORT
  allow_localhost
  hosts_try_dane =
  SMTPOPTS
begin retry
*  *  F,1h,1s
"""
SMTP = (b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@oracle.test>\r\nDATA\r\n"
        b"Subject: t\r\n\r\nbody\r\n.\r\nQUIT\r\n")
#: case name: (DNS answers secure?, main options, router options, how exim4 runs[,
#: transport options: then the router is an accept router and the transport names
#: its hosts])
CASES: dict[str, tuple] = {
    "deliver_secure": (True, "dns_dnssec_ok = 1", "", "deliver"),
    "deliver_insecure": (False, "dns_dnssec_ok = 1", "", "deliver"),
    "deliver_secure_dnssec_ok_unset": (True, "", "", "deliver"),
    "deliver_secure_dnssec_ok_0": (True, "dns_dnssec_ok = 0", "", "deliver"),
    "deliver_secure_request_none": (True, "dns_dnssec_ok = 1",
                                    "dnssec_request_domains = :", "deliver"),
    "require_insecure": (False, "dns_dnssec_ok = 1", "dnssec_require_domains = *",
                         "deliver"),
    "require_insecure_bt": (False, "dns_dnssec_ok = 1", "dnssec_require_domains = *",
                            "bt"),
    "require_secure": (True, "dns_dnssec_ok = 1", "dnssec_require_domains = *",
                       "deliver"),
    "receive_secure": (True, "dns_dnssec_ok = 1", "", "receive"),
    "receive_insecure": (False, "dns_dnssec_ok = 1", "", "receive"),
    "receive_secure_dnssec_ok_unset": (True, "", "", "receive"),
    "receive_secure_dnssec_ok_0": (True, "dns_dnssec_ok = 0", "", "receive"),
    "transport_hosts_secure": (True, "dns_dnssec_ok = 1", "", "deliver",
                               "hosts = mx.secure.test"),
    "transport_hosts_insecure": (False, "dns_dnssec_ok = 1", "", "deliver",
                                 "hosts = mx.secure.test"),
    "transport_hosts_secure_request_none": (True, "dns_dnssec_ok = 1", "", "deliver",
                                            "hosts = mx.secure.test\n"
                                            "  dnssec_request_domains ="),
    "transport_hosts_require_insecure": (False, "dns_dnssec_ok = 1", "", "deliver",
                                         "hosts = mx.secure.test\n"
                                         "  dnssec_require_domains = *"),
    "transport_hosts_require_secure": (True, "dns_dnssec_ok = 1", "", "deliver",
                                       "hosts = mx.secure.test\n"
                                       "  dnssec_require_domains = *"),
}


def clean(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", line)
        line = re.sub(r"^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2} ", "", line)
        if "lost privilege" in line or "Completed" in line:
            continue
        lines.append(re.sub(r"id=[^\s\"]+", "id=ID", line))
    return "\n".join(lines) + "\n"


def run(name: str, secure: bool, main: str, router: str, how: str,
        transport: str | None = None) -> str:
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK + "/spool")
    os.makedirs(WORK + "/log")
    with DnsServer(ZONES, port=53, secure=secure), SmtpSink() as sink:
        conf = (CONF.replace("WORK", WORK).replace("PORT", str(sink.port))
                .replace("ROUTER", router if transport else router + "\n  self = send")
                .replace("DRIVER", "accept" if transport else "dnslookup")
                .replace("SMTPOPTS", transport or "").replace("MAIN", main))
        with open(WORK + "/conf", "w") as f:
            f.write(conf)
        with open(WORK + "/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\noptions trust-ad\n")
        for d in (WORK, WORK + "/spool", WORK + "/log"):
            os.chmod(d, 0o777)
        exim = ["exim4", "-C", WORK + "/conf"]
        if how == "bt":
            exim += ["-bt", "u@secure.test"]
            data = b""
        elif how == "deliver":
            exim += ["-odf", "-f", "a@b.c", "u@secure.test"]
            data = b"Subject: t\n\nbody\n"
        else:
            exim += ["-odq", "-bs", "-oMa", "192.0.2.1"]
            data = SMTP
        cmd = f"mount --bind {WORK}/resolv.conf /etc/resolv.conf && exec " + " ".join(exim)
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd],
                           input=data, capture_output=True, timeout=60)
        time.sleep(0.3)
        if how == "bt":
            return clean(p.stdout.decode())
        if not os.path.exists(WORK + "/log/mainlog"):
            return p.stdout.decode() + p.stderr.decode()
        with open(WORK + "/log/mainlog") as f:
            return clean(f.read())


def main() -> None:
    for name, case in CASES.items():
        out = run(name, *case)
        with open(os.path.join(HERE, name + ".txt"), "w") as f:
            f.write(out)
        print(f"== {name}\n{out}")


if __name__ == "__main__":
    main()
