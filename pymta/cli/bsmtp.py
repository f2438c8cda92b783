"""``pymta -bS``: batched SMTP on standard input (Exim spec 49.11).

Not a dialogue: MAIL, RCPT and DATA (with dot-stuffed data ending in a lone ".") are read
and no reply is written while all goes well.  HELO, EHLO and RSET start afresh; VRFY,
EXPN, ETRN, HELP and NOOP do nothing; QUIT ends the batch.  Each message is a local
submission: only the non-SMTP ACL runs, unqualified addresses are qualified, and the MAIL
sender counts only for a trusted caller (or when it is empty or ``untrusted_set_sender``
allows it); the protocol is ``local-bsmtp`` unless ``-oMr`` names another.

The first error ends the batch, as in Exim: a short report goes to standard output (the
reply, "Transaction started in line N", "Error detected in line M" and the command at
fault), a longer one to standard error, and the exit status is 1 when some messages were
accepted before the error, 2 when none were (0: no error).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, TextIO

from pymta.caller import qualify_domains
from pymta.cli.submit import local_envelope, qualify, run_not_smtp_acl
from pymta.config.values import main_opt
from pymta.message.receive import receive_message
from pymta.rewrite.engine import rewrite_command_path
from pymta.rewrite.setup import main_rewriter
from pymta.smtp.server import parse_path

_NOOPS = ("VRFY", "EXPN", "ETRN", "HELP", "NOOP")


class BatchError(Exception):
    """What ends the batch: the SMTP-style reply, and the command at fault (None for an
    error in a message rather than in a command)."""

    def __init__(self, reply: str, line: int, command: str | None = None) -> None:
        super().__init__(reply)
        self.reply, self.line, self.command = reply, line, command


@dataclass
class _Transaction:
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)
    started: int = 0                  # lines read before its MAIL command (Exim's count)


class BatchReader:
    """Reads a batch and submits its messages; ``accepted`` lists their ids."""

    def __init__(self, config: Any, opts: Any, stdin: BinaryIO, log: Any,
                 after_accept: Callable[[str], Any]) -> None:
        self.config, self.opts, self.stdin, self.log = config, opts, stdin, log
        self.after_accept = after_accept
        self.lines = 0
        self.accepted: list[str] = []
        self.tx = _Transaction()
        self.qualify_sender, self.qualify_recipient = qualify_domains(config)
        # rewrite rules with the S flag apply to batched MAIL and RCPT too
        rewriter = main_rewriter(config, log)
        self.rewriter = rewriter if rewriter is not None and rewriter.has_smtp_rules \
            else None

    def _readline(self) -> bytes | None:
        raw = self.stdin.readline()
        if not raw:
            return None
        self.lines += 1
        return raw.rstrip(b"\n").rstrip(b"\r")

    def run(self) -> None:
        """Process the whole batch; raises BatchError at the first error."""
        while True:
            raw = self._readline()
            if raw is None:
                return
            line = raw.decode("utf-8", "surrogateescape")
            verb = line.split(None, 1)[0].upper() if line.strip() else ""
            upper = line.upper()
            if upper.startswith("MAIL FROM:"):
                self._mail(line, line[10:])
            elif upper.startswith("RCPT TO:"):
                self._rcpt(line, line[8:])
            elif verb == "DATA":
                self._data(line)
            elif verb in ("HELO", "EHLO", "RSET"):
                self.tx = _Transaction(started=self.tx.started)
            elif verb in _NOOPS:
                continue
            elif verb == "QUIT":
                return
            else:
                raise BatchError("500 Command unrecognized", self.lines, line)

    def _mail(self, line: str, arg: str) -> None:
        if self.tx.sender is not None:
            raise BatchError("503 Sender already given", self.lines, line)
        self.tx = _Transaction(started=self.lines - 1)
        if self.rewriter is not None:
            arg = rewrite_command_path(self.rewriter, arg)
        address, error = _address(arg, "sender", self.config)
        if error:
            raise BatchError(f"501 {error}", self.lines, line)
        self.tx.sender = qualify(address, self.qualify_sender)

    def _rcpt(self, line: str, arg: str) -> None:
        if self.tx.sender is None:
            raise BatchError("503 No sender yet given", self.lines, line)
        if self.rewriter is not None:
            arg = rewrite_command_path(self.rewriter, arg)
        address, error = _address(arg, "recipient", self.config)
        if error or not address:
            raise BatchError(f"501 {error or 'empty recipient address'}", self.lines, line)
        self.tx.recipients.append(qualify(address, self.qualify_recipient))

    def _data(self, line: str) -> None:
        if not self.tx.recipients:
            raise BatchError("503 RCPT TO:<recipient> must precede DATA", self.lines, line)
        body: list[bytes] = []
        while True:
            raw = self._readline()
            if raw is None:
                raise BatchError("421 Lost incoming connection", self.lines + 1)
            if raw == b".":
                break
            body.append((raw[1:] if raw.startswith(b".") else raw) + b"\n")
        data = b"".join(body)
        env = local_envelope(self.config, self.opts, self.tx.sender, self.tx.recipients)
        env.protocol = self.opts.received_protocol or "local-bsmtp"
        env.authenticated_sender = None      # -oMas: MAIL sets it afresh, as in Exim
        refusal = run_not_smtp_acl(self.config, env, data, self.log)
        if refusal is not None:
            raise BatchError(f"550 {refusal}", self.lines)
        msgid = receive_message(self.config, env, data, self.log)
        self.accepted.append(msgid)
        self.tx = _Transaction(started=self.tx.started)
        self.after_accept(msgid)


def _address(arg: str, role: str, config: Any) -> tuple[str, str | None]:
    """(address, error) of a MAIL/RCPT argument; an unqualified address is no error
    here (it is qualified, as Exim does for batched input)."""
    path = parse_path(arg.strip(), role,
                      strip_excess_angle_brackets=bool(
                          main_opt(config, "strip_excess_angle_brackets")),
                      strip_trailing_dot=bool(main_opt(config, "strip_trailing_dot")),
                      allow_utf8_domains=bool(main_opt(config, "allow_utf8_domains")))
    if path.error and path.error.endswith("must contain a domain"):
        return path.raw.strip().strip("<>").strip(), None
    return path.address or "", path.error


def run_batch(config: Any, opts: Any, stdin: BinaryIO, stdout: TextIO, stderr: TextIO,
              log: Any, after_accept: Callable[[str], Any]) -> int:
    """``-bS``: returns the exit status (0, or 1/2 after an error)."""
    reader = BatchReader(config, opts, stdin, log, after_accept)
    try:
        reader.run()
    except BatchError as err:
        started = reader.tx.started
        stdout.write(f"{err.reply}\nTransaction started in line {started}\n"
                     f"Error detected in line {err.line}\n"
                     + (f"{err.command}\n" if err.command is not None else ""))
        n = len(reader.accepted)
        stderr.write("An error was detected while processing a file of BSMTP input.\n"
                     f"The error message was:\n\n  {err.reply}\n\n"
                     f"The SMTP transaction started in line {started}.\n"
                     f"The error was detected in line {err.line}.\n"
                     + (f"The SMTP command at fault was:\n\n   {err.command}\n\n"
                        if err.command is not None else "")
                     + f"{n} previous message{' was' if n == 1 else 's were'} "
                     "successfully processed.\nThe rest of the batch was abandoned.\n")
        stdout.flush()
        return 1 if reader.accepted else 2
    return 0
