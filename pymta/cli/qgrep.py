"""``pymta-qgrep``: select queued messages and list them (Exim's exiqgrep).

The flags, the matching rules and the output formats are exiqgrep's, so that scripts
written for it keep working: exiqgrep matches on the fields of ``exim -bpu`` output (the
sender in ``<>``, the size as -bp prints it, the undelivered recipients; all recipients,
delivered ones as ``D address``, with -a), ages are counted from the time in the message
id, and messages are listed oldest first.  pymta-qgrep reads the spool itself instead of
running ``-bp`` and parsing it.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import click

from pymta.cli.args import CliOptions
from pymta.cli.main import load
from pymta.daemon.util import spool_directory
from pymta.spool import files
from pymta.spool.ids import id_time, id_time_usec
from pymta.spool.queue import format_age, format_size, list_queue


@dataclass
class QueuedMessage:
    """One message as exiqgrep sees it in a -bp listing."""

    msgid: str
    age: str                       # -bp's age column ("25m")
    size: str                      # -bp's size column, unpadded ("2.9K")
    sender: str                    # in angle brackets, as -bp shows it
    frozen: bool
    recipients: list[str] = field(default_factory=list)

    @property
    def birth(self) -> int:
        """Arrival time from the message id (exiqgrep's "birth")."""
        return id_time(self.msgid)


def read_queue(spool: str, queue: str, everyone: bool, now: float) -> Iterator[QueuedMessage]:
    """The queued messages of ``queue``; undelivered recipients only unless ``everyone``
    (-a), where delivered ones appear as ``D address``, as in -bp's listing."""
    for msgid in list_queue(spool, queue):
        try:
            msg = files.read_header(spool, msgid)
            size = msg.message_size(files.body_size(spool, msgid))
        except FileNotFoundError:
            continue           # delivered or removed meanwhile
        except (OSError, files.SpoolFormatError) as exc:
            # -bp marks it "*** spool read error ***"; it cannot match anything here
            sys.stderr.write(f"pymta-qgrep: {msgid}: spool read error: {exc}\n")
            continue
        done = set(msg.nonrecipients) | set(files.read_journal(spool, msgid))
        rcpts = [("D " if r.address in done else "") + r.address for r in msg.recipients
                 if everyone or r.address not in done]
        yield QueuedMessage(msgid, format_age(int(now) - msg.received_time).strip(),
                            format_size(size).strip(), f"<{msg.sender}>",
                            msg.frozen_at is not None, rcpts)


Test = Callable[[QueuedMessage], bool]


def selection(sender: str | None, recipient: str | None, size: str | None,
              younger: int | None, older: int | None, frozen_only: bool,
              unfrozen_only: bool, now: float) -> list[Test]:
    """exiqgrep's criteria; a message is selected when it passes all of them.  Sender
    and recipient patterns ignore case, the size pattern does not."""
    tests: list[Test] = []
    if sender:
        s = re.compile(sender, re.I)
        tests.append(lambda m: bool(s.search(m.sender)))
    if recipient:
        r = re.compile(recipient, re.I)
        tests.append(lambda m: any(r.search(a) for a in m.recipients))
    if size:
        z = re.compile(size)
        tests.append(lambda m: bool(z.search(m.size)))
    if younger:
        tests.append(lambda m: now - m.birth < younger)
    if older:
        tests.append(lambda m: now - m.birth > older)
    if frozen_only:
        tests.append(lambda m: m.frozen)
    if unfrozen_only:
        tests.append(lambda m: not m.frozen)
    return tests


def long_format(m: QueuedMessage) -> str:
    """exiqgrep's default listing: -bp's first line, the recipients indented by a tab."""
    head = f"{m.age:>3} {m.size:>5} {m.msgid} {m.sender}{' *** frozen ***' if m.frozen else ''}"
    return head + "\n" + "".join(f"\t  {r}\n" for r in m.recipients) + "\n"


def brief_format(m: QueuedMessage) -> str:
    """-b: one line per message."""
    return f"{m.msgid} From: {m.sender} To: {';'.join(m.recipients)}\n"


def _pattern(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise click.BadParameter(f"bad regular expression: {exc}") from None
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "sender", metavar="REGEX", callback=_pattern,
              help="Sender address matches (it is shown as <address>).")
@click.option("-r", "recipient", metavar="REGEX", callback=_pattern,
              help="Some recipient address matches.")
@click.option("-s", "size", metavar="REGEX", callback=_pattern,
              help="The size as -bp shows it (250, 2.9K, 12M) matches.")
@click.option("-y", "younger", type=int, metavar="SECONDS", help="Younger than this.")
@click.option("-o", "older", type=int, metavar="SECONDS", help="Older than this.")
@click.option("-z", "frozen_only", is_flag=True, help="Frozen messages only.")
@click.option("-x", "unfrozen_only", is_flag=True, help="Messages not frozen only.")
@click.option("-G", "queue", default="", metavar="QUEUE", help="Look in this named queue.")
@click.option("-c", "count", is_flag=True, help="Print only the number of matches.")
@click.option("-l", "long", is_flag=True, help="Long format, like -bp (the default).")
@click.option("-i", "ids_only", is_flag=True, help="Message ids only.")
@click.option("-b", "brief", is_flag=True, help="One line per message.")
@click.option("-R", "reverse", is_flag=True, help="Newest first.")
@click.option("-a", "everyone", is_flag=True,
              help="All recipients, delivered ones too (shown as 'D address').")
@click.option("-C", "config", metavar="FILE", help="pymta configuration file.")
@click.pass_context
def main(ctx: click.Context, sender: str | None, recipient: str | None, size: str | None,
         younger: int | None, older: int | None, frozen_only: bool, unfrozen_only: bool,
         queue: str, count: bool, long: bool, ids_only: bool, brief: bool, reverse: bool,
         everyone: bool, config: str | None) -> None:
    """Select messages on pymta's queue and list them, as Exim's exiqgrep does.

    At least one selection (-f -r -s -y -o -z -x) or -c is needed.  Regular expressions
    are searched for anywhere in the field.  The configuration is -C, else
    $PYMTA_CONFIG, else /etc/pymta/pymta.conf.
    """
    if not (sender or recipient or size or younger or older or frozen_only
            or unfrozen_only or count):
        click.echo(ctx.get_help())
        ctx.exit(1)
    spool = spool_directory(load(CliOptions(config_path=config)))
    now = time.time()
    tests = selection(sender, recipient, size, younger, older, frozen_only, unfrozen_only,
                      now)
    messages = list(read_queue(spool, queue, everyone, now))
    chosen = [m for m in messages if all(t(m) for t in tests)]
    if count:
        sys.stdout.write(f"{len(chosen)} matches out of {len(messages)} messages\n")
        return
    chosen.sort(key=lambda m: (m.birth, id_time_usec(m.msgid), m.msgid), reverse=reverse)
    show = (lambda m: m.msgid + "\n") if ids_only else brief_format if brief else long_format
    sys.stdout.write("".join(show(m) for m in chosen))


if __name__ == "__main__":
    main()
