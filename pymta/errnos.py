"""Exim's private error numbers for delivery failures, as named outcomes.

They are negative so they never clash with system errno values.  Transports put them in
``Address.basic_errno``; retry rules, routing of retry hints and log lines key on them.
The values are those of Exim 4.96 because they appear in log lines ("defer (-44)") and
matter for comparing hints and logs with Exim's.  A shared type without behaviour: every
layer (smtp client, transports, delivery) may import it.
"""
from __future__ import annotations

from enum import IntEnum


class EximErrno(IntEnum):
    """Exim's ``ERRNO_*`` values; ``str()`` and f-strings give the bare number."""

    UNKNOWNERROR = -1
    NOTREGULAR = -4
    BADUGID = -6
    BADMODE = -7            # appendfile: a mailbox narrower than its mode option
    LOCKFAILED = -9
    BADFORWARD = -17        # an error in a forward or filter file
    SMTPCLOSED = -18        # connection lost
    SMTPFORMAT = -19        # malformed SMTP reply
    NOTABSOLUTE = -21
    EXIMQUOTA = -22         # appendfile quota exceeded
    HELD = -23              # the domain is in hold_domains
    FILTER_FAIL = -24       # a transport filter exited with a non-zero status
    CHHEADER_FAIL = -25
    EXPANDFAIL = -27
    UNKNOWNHOST = -32       # host lookup failed
    BADCREATE = -34         # appendfile: creating the file is not permitted there
    DNSDEFER = -36          # DNS lookup deferred (also DANE's TLSA errors)
    TLSFAILURE = -37        # a TLS session could not be started
    TLSREQUIRED = -38       # mandatory TLS not started (also an MX an MTA-STS policy refuses)
    AUTHFAIL = -42          # hosts_require_auth: authentication did not succeed
    CONNECTTIMEOUT = -43
    RCPT4XX = -44           # 4xx reply to RCPT
    MAIL4XX = -45           # 4xx reply to MAIL
    DATA4XX = -46           # 4xx reply to DATA (or after the data)
    AUTHPROB = -48          # an authenticator's own problem (an expansion error)
    HOST_IS_LOCAL = -50
    RRETRY = -52            # routing / address retry time not reached
    LRETRY = -53            # local delivery retry time not reached
    HRETRY = -54            # no host has reached its retry time
    TRETRY = -57            # a transport's concurrency limit (max_parallel) reached
    EVENT = -58             # a tcp:connect event action refused the connection
