"""The autoreply transport: answer a message with a new one (vacation messages).

The reply is built from the transport's options (to, cc, bcc, from, reply_to, subject,
headers, text, file) and submitted as a new message with the null envelope sender, like
a bounce; its <= line carries R=<the original's id>.  Headers come in Exim's order: From,
Reply-To, To, Cc, Bcc (not written), Subject, In-Reply-To and References (from the
original's Message-ID), Auto-Submitted: auto-replied, then ``headers``.

``once`` remembers the To: recipients already answered (an LMDB file at that path, or a
fixed-size text file with ``once_file_size``) and ``once_repeat`` says how long; ``log``
appends a record of each reply (or of each reply not sent again); ``never_mail``
recipients are dropped quietly.

Beyond Exim (which leaves this to the filter's ``personal`` test): no reply goes to a
message that is itself automatic or bulk (RFC 3834) -- Auto-Submitted other than "no",
Precedence bulk/list/junk, a List-Id or List-Unsubscribe header -- so a vacation
message never answers a mailing list or another robot.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import time
from email.utils import getaddresses
from typing import Any

from pymta.config.option_tables import driver_options
from pymta.config.options import parse_time
from pymta.config.values import main_option
from pymta.drivers import register
from pymta.errnos import EximErrno
from pymta.expand import ExpandError, ExpandFail, expand_string
from pymta.expand.bytesutil import to_bytes
from pymta.match import match_address
from pymta.osutil import switched_ids
from pymta.printing import topbit_printing
from pymta.spool.files import read_body
from pymta.taint import is_tainted
from pymta.transports.base import Transport, TransportError, check_never_users, set_results
from pymta.transports.filter import TransportFilterFailed, transport_filter

_BULK_PRECEDENCE = {"bulk", "list", "junk"}
# Not allowed in the reply's header fields: control characters but tab, a newline
# that does not start a continuation line, and (without print_topbitchars) 8-bit text.
_NON_PRINTING_TOPBIT_OK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\n(?![ \t])")
_NON_PRINTING = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\U0010ffff]|\n(?![ \t])")
_RETURNED = "------ This is a copy of the message, including all the headers. ------\n"


@register("transport", "autoreply")
class AutoreplyTransport(Transport):
    """Generate an automatic reply instead of delivering the message."""

    options = driver_options("transport", "autoreply")
    is_local = True
    #: for a reply asked for by a filter: its once/log/file settings (else empty)
    _settings: dict[str, Any] = {}

    def deliver(self, job: Any) -> None:
        try:
            ids = self.delivery_ids(self.context(job, job.addresses[0]), job.addresses[0])
            if ids is not None:
                check_never_users(self.config, ids[0], self.name)
            groups = self.delivery_groups(ids, job.addresses[0])
            with switched_ids(*ids, groups) if ids is not None else contextlib.nullcontext():
                self._reply(job)
            set_results(job.addresses, "ok")
        except TransportError as e:
            set_results(job.addresses, e.result, e.message, e.errno)

    # -- options ------------------------------------------------------------------
    @staticmethod
    def _filter_settings(spec: Any, home: str | None) -> dict[str, Any]:
        """once, once_repeat, log, file and return_message from a filter's command;
        relative file names are in the user's home directory."""
        def path(name: str | None) -> str | None:
            if name and not name.startswith("/") and home:
                return os.path.join(home, name)
            return name or None
        return {"once": path(spec.once), "log": path(spec.log), "file": path(spec.file),
                "once_repeat": spec.once_repeat, "file_expand": spec.file_expand,
                "return_message": spec.return_message}

    def _value(self, name: str, ctx: Any) -> str | None:
        if self._settings:
            value = self._settings.get(name)
            return None if value in (None, "") else str(value)
        text = self.opt(name)
        if text is None or text == "":
            return None
        try:
            return expand_string(str(text), ctx)
        except ExpandFail:
            return None
        except ExpandError as e:
            raise TransportError(f'Expansion of "{text}" ({name}) in {self.name} transport '
                                 f"failed: {e}", errno=EximErrno.EXPANDFAIL)

    def _path(self, name: str, ctx: Any) -> str | None:
        value = self._value(name, ctx)
        if value and is_tainted(value):
            raise TransportError(f"Tainted '{value}' ({name} for {self.name} transport) "
                                 "not permitted")
        return value or None

    # -- the reply ------------------------------------------------------------------
    def _reply(self, job: Any) -> None:
        addr = job.addresses[0]
        ctx = self.context(job, addr)
        msg = job.message
        if self._automatic(msg):
            return
        spec = addr.reply
        if spec is not None:
            # a filter's mail/vacation command: the message is the filter's, wholly
            self._settings = self._filter_settings(spec, addr.home)
            fields = {"from": spec.from_, "reply_to": spec.reply_to, "to": spec.to,
                      "cc": spec.cc, "bcc": spec.bcc, "subject": spec.subject,
                      "headers": spec.headers, "text": spec.text}
        else:
            self._settings = {}
            fields = {n: self._value(n, ctx) for n in ("from", "reply_to", "to", "cc",
                                                       "bcc", "subject", "headers", "text")}
        for name, value in fields.items():
            if name not in ("text", "headers") and value:
                self._check_printing(name, value)
        never = self.opt("never_mail")

        def wanted(text: str | None) -> list[str]:
            out = []
            for _name, addr in getaddresses([text] if text else []):
                if addr and not (never and match_address(addr, str(never), ctx)):
                    out.append(addr)
            return out
        to, cc, bcc = wanted(fields["to"]), wanted(fields["cc"]), wanted(fields["bcc"])
        if not (to or cc or bcc):
            return       # nobody to answer (a bounce's empty $sender_address, never_mail)
        once = self._path("once", ctx)
        log_path = self._path("log", ctx)
        repeat = self._repeat(ctx)
        if once and to:
            previous = self._once_lookup(once, to[0])
            if previous is not None and (repeat == 0 or time.time() - previous < repeat):
                if log_path:
                    self._log(log_path, f"  previously sent to {to[0]}\n")
                return
        data = self._message(job, ctx, fields, to, cc)
        self._submit(job, data, to + cc + bcc)
        if once and to:
            self._once_record(once, to[0])
        if log_path:
            lines = [f"  {h}: {fields[k]}\n" for h, k in (
                ("From", "from"), ("To", "to"), ("Cc", "cc"), ("Bcc", "bcc"),
                ("Subject", "subject")) if fields[k]]
            if fields["headers"]:
                lines.append(f"  {fields['headers']}\n")
            self._log(log_path, "".join(lines))

    def _check_printing(self, name: str, value: str) -> None:
        """A header field of the reply may hold printing characters only (top-bit
        ones with print_topbitchars), and newlines only where a continuation line
        follows; else the delivery fails, in Exim's words."""
        bad = (_NON_PRINTING_TOPBIT_OK if topbit_printing() else _NON_PRINTING).search(value)
        if bad is None:
            return
        raw = self.opt(name) if not self._settings else value
        code = to_bytes(bad.group(0)[0])[0]
        raise TransportError(f'Expansion of "{raw}" in {self.name} transport contains '
                             f"non-printing character {code}", "fail")

    @staticmethod
    def _automatic(msg: Any) -> bool:
        """Is the original an automatic or bulk message (RFC 3834), or a bounce?"""
        if not msg.sender:
            return True
        for h in msg.headers:
            if h.flag == "*":
                continue
            name, _, value = h.text.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "auto-submitted" and value.split(";")[0].strip() != "no":
                return True
            if name == "precedence" and value in _BULK_PRECEDENCE:
                return True
            if name in ("list-id", "list-unsubscribe"):
                return True
        return False

    def _header(self, msg: Any, name: str) -> str | None:
        for h in msg.headers:
            hname, _, value = h.text.partition(":")
            if h.flag != "*" and hname.strip().lower() == name:
                return " ".join(value.split())
        return None

    def _message(self, job: Any, ctx: Any, fields: dict[str, str | None], to: list[str],
                 cc: list[str]) -> bytes:
        msg = job.message
        out = []
        if fields["from"]:
            out.append(f"From: {fields['from']}\n")
        if fields["reply_to"]:
            out.append(f"Reply-To: {fields['reply_to']}\n")
        if fields["to"]:
            out.append(f"To: {fields['to']}\n")
        if fields["cc"]:
            out.append(f"Cc: {fields['cc']}\n")
        if fields["subject"]:
            out.append(f"Subject: {fields['subject']}\n")
        message_id = self._header(msg, "message-id")
        if message_id:
            out.append(f"In-Reply-To: {message_id}\n")
            refs = self._header(msg, "references")
            out.append(f"References: {refs + ' ' if refs else ''}{message_id}\n")
        out.append("Auto-Submitted: auto-replied\n")
        if fields["headers"]:
            out.append(fields["headers"].rstrip("\n") + "\n")
        out.append("\n")
        if fields["text"]:
            out.append(fields["text"])
        body = "".join(out).encode("utf-8", "surrogateescape")
        body += self._file(ctx)
        if self.opt("return_message") or self._settings.get("return_message"):
            body += ("\n" + _RETURNED + "\n").encode()
            original = self.header_block(job, ctx)
            limit = int(main_option(self.config, "bounce_return_size_limit", 102400) or 0)
            content = read_body(job.spool_dir, msg.id)
            if limit and len(content) > limit:
                content = content[:limit]
                content = content[:content.rfind(b"\n") + 1]
            body += self._filtered(job, ctx, original + content)
        return body

    def _filtered(self, job: Any, ctx: Any, copy: bytes) -> bytes:
        """The copy of the message through transport_filter, when there is one.  As in
        Exim, a filter that fails leaves what it wrote (perhaps nothing) as the copy;
        the reply is sent all the same."""
        ids = self.delivery_ids(ctx, job.addresses[0])
        tf = transport_filter(self, job, ctx, ids, self.delivery_groups(ids, job.addresses[0]))
        if tf is None:
            return copy
        out: list[bytes] = []
        try:
            for chunk in tf.output(lambda stdin: stdin.write(copy)):
                out.append(chunk)
        except TransportFilterFailed:
            pass
        return b"".join(out)

    def _file(self, ctx: Any) -> bytes:
        path = self._path("file", ctx)
        if not path:
            return b""
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as e:
            if self.opt("file_optional"):
                return b""
            raise TransportError(f"Failed to open file {path} when sending message from "
                                 f"{self.name} transport: {e.strerror or e}",
                                 errno=e.errno or EximErrno.UNKNOWNERROR) from None
        if self._settings.get("file_expand") if self._settings else self.opt("file_expand"):
            try:
                text = expand_string(content.decode("utf-8", "surrogateescape"), ctx)
            except (ExpandError, ExpandFail) as e:
                raise TransportError(f"Expansion of {path} in {self.name} transport "
                                     f"failed: {e}", errno=EximErrno.EXPANDFAIL)
            return text.encode("utf-8", "surrogateescape")
        return content

    def _submit(self, job: Any, data: bytes, recipients: list[str]) -> None:
        if job.submit is None:
            raise TransportError(f"{self.name} transport: no way to submit a reply here")
        try:
            job.submit(data, recipients, job.message.id)
        except Exception as e:  # noqa: BLE001 - the reply is retried with the message
            raise TransportError(f"Failed to send message from {self.name} transport "
                                 f"({e})", errno=0) from None

    # -- once and log ---------------------------------------------------------------
    def _repeat(self, ctx: Any) -> int:
        text = self._value("once_repeat", ctx)
        if not text:
            return 0
        try:
            return parse_time(text.strip())
        except ValueError:
            raise TransportError(f"Invalid time value \"{text}\" for \"once_repeat\" in "
                                 f"{self.name} transport") from None

    def _mode(self) -> int:
        return int(self.opt("mode") or 0o600)

    def _once_lookup(self, path: str, address: str) -> float | None:
        """When a reply last went to ``address`` (None: never, or forgotten)."""
        size = int(self.opt("once_file_size") or 0)
        if size > 0:
            for when, addr in self._once_file(path):
                if addr == address:
                    return when
            return None
        env = self._once_db(path)
        try:
            with env.begin() as txn:
                raw = txn.get(address.encode("utf-8", "surrogateescape"))
        finally:
            env.close()
        return struct.unpack("<d", raw)[0] if raw and len(raw) == 8 else None

    def _once_record(self, path: str, address: str) -> None:
        size = int(self.opt("once_file_size") or 0)
        if size > 0:
            entries = [(w, a) for w, a in self._once_file(path) if a != address]
            entries.append((time.time(), address))
            lines = [f"{int(w)} {a}\n" for w, a in entries]
            while lines and sum(len(x) for x in lines) > size:
                lines.pop(0)            # the oldest go first when the file is full
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self._mode())
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write("".join(lines))
            return
        env = self._once_db(path)
        try:
            with env.begin(write=True) as txn:
                txn.put(address.encode("utf-8", "surrogateescape"), struct.pack("<d", time.time()))
        finally:
            env.close()

    def _once_file(self, path: str) -> list[tuple[float, str]]:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                out = []
                for line in f:
                    when, _, addr = line.strip().partition(" ")
                    if when.isdigit() and addr:
                        out.append((float(when), addr))
                return out
        except FileNotFoundError:
            return []

    def _once_db(self, path: str) -> Any:
        import lmdb
        try:
            return lmdb.open(path, subdir=False, map_size=16 << 20, mode=self._mode(),
                             lock=True, max_dbs=0)
        except lmdb.Error as e:
            raise TransportError(f"Failed to open {path} file for {self.name} transport: "
                                 f"{e}") from None

    def _log(self, path: str, record: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self._mode())
            with os.fdopen(fd, "a") as f:
                f.write(f"{stamp}\n{record}")
        except OSError as e:
            raise TransportError(f"Failed to open log file {path} for {self.name} "
                                 f"transport: {e.strerror or e}") from None
