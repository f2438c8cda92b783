"""Exim's private error numbers for delivery failures (negative so they never clash with
system errno values).  Transports put them in ``Address.basic_errno``; retry rules and log
lines key on them.  Values are those of Exim 4.96 so hints and logs stay comparable."""

ERRNO_UNKNOWNERROR = -1
ERRNO_NOTREGULAR = -4
ERRNO_NOTDIRECTORY = -5
ERRNO_BADUGID = -6
ERRNO_BADMODE = -7
ERRNO_LOCKFAILED = -9
ERRNO_SMTPCLOSED = -18
ERRNO_SMTPFORMAT = -19
ERRNO_NOTABSOLUTE = -21
ERRNO_EXIMQUOTA = -22
ERRNO_CHHEADER_FAIL = -25
ERRNO_WRITEINCOMPLETE = -26
ERRNO_EXPANDFAIL = -27
ERRNO_UNKNOWNHOST = -32
ERRNO_CONNECTTIMEOUT = -43
ERRNO_RCPT4XX = -44
ERRNO_MAIL4XX = -45
ERRNO_DATA4XX = -46
ERRNO_HOST_IS_LOCAL = -50
ERRNO_TAINT = -58
