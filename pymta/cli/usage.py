"""The ``--help`` texts of ``pymta``, ``sendmail`` and ``mailq``: the main options,
grouped by what they are for (man/pymta.8 has them all)."""
from __future__ import annotations

_COMMON = """\
Common options:
  -C file           configuration file (default $PYMTA_CONFIG, else /etc/pymta/pymta.conf)
  -DNAME=value      define a configuration macro (one argument)
  -d[+sel...]       debug output on standard error;  -v  verbose
  --version         version;  --help  this summary
"""

PYMTA = """\
usage: pymta [options] [recipients...]

Submitting a message (read on standard input):
  -bm               (the default) deliver to the recipients given as arguments
  -t                take the recipients from To:, Cc: and Bcc:
  -i / -oi          a line with only "." does not end the message
  -f addr           envelope sender;  -F name  full name of the sender
  -od[bifq]         deliver in the background / foreground / only queue (-odq)
  -bs               SMTP on standard input and output;  -bS  batched SMTP

Daemon and queue runs:
  -bd / -bdf        start the daemon (detached / in the foreground)
  -q[q][i][f[f]][l][<time>]   one queue run, or a run every <time> (with -bd or alone)
  -qR / -qS / -R / -S string  queue run for matching recipients / senders
  -oX ports         listening ports or addresses;  -oP file  pid file

Looking at the queue:
  -bp [ids]         list the queue (mailq);  -bpu  undelivered recipients only
  -bpa              with the delivered addresses routing generated (+D)
  -bpc              count the messages;  -bpi  message ids only
  -bpr / -bpru / -bpra   the same, unsorted
  -Mvh / -Mvb / -Mvl id  show the header / body / message log

Acting on queued messages:
  -M id...          deliver now;  -Mrm id...  remove;  -Mg id...  give up (bounce)
  -Mf / -Mt id...   freeze / thaw
  -Mar id addr...   add recipients;  -Mmd id addr...  mark recipients delivered
  -Mmad id...       mark all delivered;  -Mes id addr  change the sender
  -MG queue id...   move to a named queue

Testing:
  -bt / -bv addr... test routing / verify addresses;  -bvs  verify as a sender
  -bh ip[.port]     fake SMTP session from a host (nothing kept);  -bhc  with callouts
  -be [strings]     expand strings;  -bem file  with a message
  -bf / -bF file    test a user / system filter on a message from standard input
  -bP [names]       show option values;  -bV  version and configuration check
  -brt addr [error] which retry rule applies;  -brw addr  rewriting test

""" + _COMMON

SENDMAIL = """\
usage: sendmail [options] [recipients...]

Sends the message read on standard input (sendmail compatible; pymta's other options
work too: see pymta --help).

Main options:
  -t                take the recipients from To:, Cc: and Bcc:
  -i / -oi          a line with only "." does not end the message
  -f addr           envelope sender;  -F name  full name of the sender
  -od[bifq]         deliver in the background / foreground / only queue (-odq)
  -N                do not deliver (the message is only queued)
  -bs               SMTP on standard input and output
  -bp               list the queue (as mailq);  -q  run the queue

""" + _COMMON

MAILQ = """\
usage: mailq [options] [message-ids]

Lists the messages on pymta's queue (pymta -bp): age, size, id and sender, then the
recipients, delivered ones marked D.

Options:
  -C file           configuration file (default $PYMTA_CONFIG, else /etc/pymta/pymta.conf)
  -qG<name>         list the named queue <name>
  --help            this summary
Variants (as pymta options): -bpc count, -bpi ids only, -bpu undelivered only,
-bpa with generated addresses; pymta-qgrep selects, pymta-qsumm summarises.
"""
