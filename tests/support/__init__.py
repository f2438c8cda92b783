"""Helpers shared by pymta's tests.

- :func:`free_port`: a free TCP port on 127.0.0.1
- :class:`SmtpSink`: threaded SMTP server that records (or refuses) messages
- :class:`SmtpTestClient`: small blocking SMTP client
- :class:`PymtaDaemon`, :func:`run_pymta`: the real daemon / command line in a temp dir
- :class:`DnsServer`: authoritative DNS server for test zones on 127.0.0.1
- :func:`make_ca`, :func:`make_cert`: test CA and certificates (PEM files)
- :func:`wait_until`, :func:`wait_for_files`: polling with timeouts
"""

from tests.support.certs import CertFiles, make_ca, make_cert
from tests.support.daemon import PymtaDaemon, run_pymta
from tests.support.dns import DnsServer
from tests.support.ports import free_port
from tests.support.sink import ReceivedMessage, SmtpSink
from tests.support.smtp import SmtpTestClient, SmtpTestError
from tests.support.wait import count_files, wait_for_files, wait_until

__all__ = ["free_port", "ReceivedMessage", "SmtpSink", "SmtpTestClient", "SmtpTestError",
           "PymtaDaemon", "run_pymta", "DnsServer",
           "CertFiles", "make_ca", "make_cert", "count_files", "wait_for_files", "wait_until"]
