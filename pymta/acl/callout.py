"""Verification callouts (spec 44.46-44.48): ask the remote hosts of an address whether
they would accept it, with ``MAIL FROM`` / ``RCPT TO`` and no message.

:func:`parse_callout_options` reads the ``callout=...`` parameters of a ``verify``
condition; :func:`run_callout` performs one callout, consulting and updating the callout
cache (:mod:`pymta.hints.callout`), and returns a :class:`CalloutOutcome` carrying the
texts Exim gives for each kind of failure.  Callouts never use TLS or AUTH.  With
``hold`` a successful recipient callout's connection stays open
(:mod:`pymta.acl.callout_hold`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import pymta.smtp.client as smtp_client
from pymta.acl import callout_events
from pymta.acl.callout_hold import CalloutHoldSlot, HeldCallout, HeldHost
from pymta.config.model import ConfigError
from pymta.config.options import OptionSpec, parse_value
from pymta.events import ConnectionEvents
from pymta.hints.callout import (
    ACCEPT,
    REJECT,
    REJECT_MFNULL,
    UNKNOWN,
    CalloutCache,
    DomainRecord,
)
from pymta.smtp.socks import SocksProxy

_BOUNCE_TEXT = (
    "The initial connection, or a HELO or MAIL FROM:<> command was\n"
    "rejected. Refusing MAIL FROM:<> does not help fight spam, disregards\n"
    "RFC requirements, and stops you from receiving standard bounce\n"
    "messages. This host does not accept mail from domains whose servers\n"
    "refuse bounces.")
_POSTMASTER_TEXT = (
    "Several RFCs state that you are required to have a postmaster\n"
    "mailbox for each mail domain. This host does not accept mail\n"
    "from domains whose servers reject the postmaster address.")
CACHED_ADDRESS_FAILURE = "Previous (cached) callout verification failure"
CACHED_DOMAIN_FAILURE = "(result of an earlier callout reused)."
CACHED_POSTMASTER_FAILURE = "(result of earlier verification reused)."


@dataclass
class CalloutOptions:
    """The parameters of ``callout[=...]`` (spec 44.47); times in seconds."""

    timeout: float = 30.0
    connect: float | None = None
    defer_ok: bool = False
    no_cache: bool = False
    random: bool = False
    postmaster_mailfrom: str | None = None     # set by postmaster / postmaster_mailfrom
    fullpostmaster: bool = False
    mailfrom: str | None = None
    maxwait: float | None = None
    use_sender: bool = False
    use_postmaster: bool = False
    hold: bool = False

    @property
    def holds(self) -> bool:
        """Whether a successful callout keeps its connection (hold only pays off, and
        a delivery can only use it, when the real sender was sent and nothing else)."""
        return self.hold and self.use_sender and not self.random and \
            not self.use_postmaster and self.postmaster_mailfrom is None

    @property
    def total_wait(self) -> float:
        """The overall limit checked before trying another host (default 4 x timeout)."""
        return self.maxwait if self.maxwait is not None else 4 * self.timeout


class CalloutTimeError(ConfigError):
    """A callout time without its unit or otherwise unreadable: like Exim, a temporary
    rejection whose logged reason names the whole verify condition, not an error in
    the configuration."""


def _time(text: str, what: str) -> float:
    try:
        return float(parse_value(OptionSpec(what, "time", 0), text.strip()))
    except (ValueError, ConfigError):
        raise CalloutTimeError(f'bad time value in ACL condition "verify {what}"') from None


def parse_callout_options(text: str | None) -> CalloutOptions:
    """The options of ``callout=<text>`` (None or "" for a bare ``callout``)."""
    opts = CalloutOptions()
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not eq and name[:1].isdigit():
            opts.timeout = _time(item, "callout")
        elif name == "defer_ok" and not eq:
            opts.defer_ok = True
        elif name == "no_cache" and not eq:
            opts.no_cache = True
        elif name == "random" and not eq:
            opts.random = True
        elif name == "postmaster" and not eq:
            opts.postmaster_mailfrom = ""
        elif name == "fullpostmaster" and not eq:
            opts.postmaster_mailfrom, opts.fullpostmaster = "", True
        elif name == "postmaster_mailfrom" and eq:
            opts.postmaster_mailfrom = value.strip()
        elif name == "mailfrom" and eq:
            opts.mailfrom = value.strip()
        elif name == "use_sender" and not eq:
            opts.use_sender = True
        elif name == "use_postmaster" and not eq:
            opts.use_postmaster = True
        elif name == "connect" and eq:
            opts.connect = _time(value, "callout connect")
        elif name == "maxwait" and eq:
            opts.maxwait = _time(value, "callout maxwait")
        elif name == "hold" and not eq:
            opts.hold = True
        else:
            raise ConfigError(f'bad parameter "{item}" in callout option in ACL verify '
                              "condition")
    return opts


@dataclass(frozen=True)
class CalloutHost:
    """One host to call: its name, IP address and port."""

    name: str
    address: str
    port: int


@dataclass
class CalloutTarget:
    """Where and how to call: the hosts in order, the HELO name, LHLO for LMTP, the
    local address to bind (the transport's ``interface``)."""

    hosts: list[CalloutHost]
    helo: str
    lmtp: bool = False
    source: Callable[[CalloutHost], tuple[str, int] | None] | None = None
    address: str = ""         # the routed address (after a redirection to one address)
    events: ConnectionEvents | None = None    # the transport's event_action
    socks: list[SocksProxy] = field(default_factory=list)   # the transport's socks_proxy


@dataclass
class CalloutOutcome:
    """The result of a callout.

    ``status`` is "ok", "fail" or "defer".  ``failure`` is the word for
    ``$sender_verify_failure`` / ``$recipient_verify_failure`` ("mail", "recipient",
    "postmaster", or "random" on a success through the random check).  For a failure
    ``stage`` says which ("rcpt", "setup", "postmaster"), ``host`` names the host
    called, ``sent``/``response`` the command and reply, ``log_text`` is Exim's text for
    the log ("" when only a cache record is known) and ``cached`` the text used instead
    of the details when the result came from the cache.
    """

    status: str
    failure: str = ""
    stage: str = ""
    host: CalloutHost | None = None
    sent: str = ""
    response: str = ""
    log_text: str = ""
    cached: str | None = None
    connected: CalloutHost | None = None

    def recipient_text(self) -> str:
        """What the client is told when a recipient callout fails."""
        if self.cached is not None:
            return self.cached
        return f"Callout verification failed:\n{self.response}"

    def recipient_log(self) -> str:
        return self.cached if self.cached is not None else self.log_text

    def sender_head(self, address: str) -> str:
        """The first line of the reply when a sender callout fails."""
        if self.stage == "setup":
            return f"Callback setup failed while verifying <{address}>"
        if self.stage == "postmaster":
            return f"Postmaster verification failed while checking <{address}>"
        return f"Verification failed for <{address}>"

    def sender_detail(self) -> str:
        """The lines between the head and "Sender verify failed"."""
        if self.cached is not None:
            lines = [self.cached]
        else:
            lines = [f"Called:   {self.host.address if self.host else ''}"]
            if self.sent:
                lines.append(f"Sent:     {self.sent}")
            lines.append(f"Response: {self.response}")
        if self.stage == "setup":
            lines.append(_BOUNCE_TEXT)
        elif self.stage == "postmaster":
            lines.append(_POSTMASTER_TEXT)
        return "\n".join(lines)


class _HostFailure(Exception):
    """This host could not give an answer: try the next one (a temporary failure).
    ``silent``: it stopped answering, so saying QUIT would only wait again."""

    def __init__(self, text: str, silent: bool = False):
        super().__init__(text)
        self.text = text
        self.silent = silent


@dataclass
class _Dialogue:
    """One callout's conversation with the hosts and its cache updates."""

    address: str
    domain: str
    sender: str                          # the MAIL FROM address
    opts: CalloutOptions
    target: CalloutTarget
    cache: CalloutCache
    random_local_part: str
    now: float
    domain_rec: DomainRecord
    write_domain: bool = False
    connected: CalloutHost | None = None     # the last host a connection was made to
    hold_slot: CalloutHoldSlot | None = None  # callout=hold: where a success is kept
    starttls: bool = False                    # the host's EHLO reply offered STARTTLS

    # -- SMTP helpers -----------------------------------------------------------------
    def _where(self, host: CalloutHost) -> str:
        return f"{host.name} [{host.address}]"

    def _command(self, cl: smtp_client.SmtpClient, host: CalloutHost,
                 line: str) -> smtp_client.SmtpReply:
        if "\r" in line or "\n" in line:
            # Addresses from header lines are remote data: never let them add commands.
            raise _HostFailure(f"{self._where(host)} : line break in callout command")
        try:
            return cl.command(line)
        except smtp_client.SmtpClosed:
            raise _HostFailure(f'{self._where(host)} : response to "{line}" was: '
                               "connection dropped", silent=True) from None
        except smtp_client.SmtpError as e:
            raise _HostFailure(f"{self._where(host)} : {e.message}",
                               silent=isinstance(e, smtp_client.SmtpTimeout)) from None

    def _error(self, host: CalloutHost, stage: str, reply: smtp_client.SmtpReply) -> str:
        return (f"{self._where(host)} : SMTP error from remote mail server after {stage}: "
                f"{_one_line(reply)}")

    def _setup_failure(self, host: CalloutHost, sent: str, reply: smtp_client.SmtpReply,
                       log_text: str, result: str) -> CalloutOutcome:
        self.domain_rec.result = result
        self.write_domain = True
        return CalloutOutcome("fail", "mail", "setup", host, sent, reply.text, log_text)

    # -- the conversation ---------------------------------------------------------------
    def with_host(self, host: CalloutHost, postmaster_needed: bool,
                  random_needed: bool) -> CalloutOutcome:
        """Call one host.  Raises _HostFailure for a temporary problem."""
        kept = False
        cl = smtp_client.SmtpClient(
            connect_timeout=self.opts.connect or self.opts.timeout,
            command_timeout=self.opts.timeout,
            source_address=self.target.source(host) if self.target.source else None,
            socks=self.target.socks)
        try:
            refused = callout_events.connect_refusal(self.target.events, host.name,
                                                     host.address, host.port, cl)
            if refused:
                raise _HostFailure(refused)
            try:
                banner = cl.connect(host.address, host.port)
            except smtp_client.SmtpError as e:
                raise _HostFailure(f"{self._where(host)} : {e.message}") from None
            self.connected = host
            try:
                outcome = self._session(cl, host, banner, postmaster_needed, random_needed)
            except _HostFailure as e:
                if not e.silent:
                    cl.quit()
                raise
            if outcome.status == "ok" and self.hold_slot is not None:
                self.hold_slot.keep(HeldCallout(
                    cl, HeldHost(host.name, host.address, host.port), self.sender,
                    self.target.helo, [self.address], self.starttls))
                kept = True             # open for the next recipient or the delivery
                return outcome
            cl.quit()
            return outcome
        finally:
            if not kept:
                cl.close()

    def _session(self, cl: smtp_client.SmtpClient, host: CalloutHost,
                 banner: smtp_client.SmtpReply, postmaster_needed: bool,
                 random_needed: bool) -> CalloutOutcome:
        """The conversation after the connection: greeting, then the transactions."""
        if banner.kind == "5":
            # As Exim: an ordinary failure, not remembered for the domain.
            return CalloutOutcome("fail", "mail", "rcpt", host, "", banner.text,
                                  self._error(host, "initial connection", banner))
        if not banner.ok():
            raise _HostFailure(self._error(host, "initial connection", banner))
        refused = callout_events.banner_refusal(self.target.events, host.name, host.address,
                                                host.port, banner)
        if refused:
            raise _HostFailure(refused)
        hello_cmd = f"{'LHLO' if self.target.lmtp else 'EHLO'} {self.target.helo}"
        reply = self._command(cl, host, hello_cmd)
        if reply.kind == "5" and not self.target.lmtp:
            hello_cmd = f"HELO {self.target.helo}"
            reply = self._command(cl, host, hello_cmd)
        if reply.kind == "5":
            return self._setup_failure(host, hello_cmd, reply,
                                       self._error(host, hello_cmd, reply), REJECT)
        if not reply.ok():
            raise _HostFailure(self._error(host, hello_cmd, reply))
        callout_events.ehlo(self.target.events, host.name, host.address, host.port,
                            hello_cmd, reply)
        self.domain_rec.result = ACCEPT
        self.write_domain = True
        self.starttls = any(line[4:].strip().upper().split(" ")[0] == "STARTTLS"
                            for line in reply.lines[1:])
        return self._transactions(cl, host, postmaster_needed, random_needed)

    def _mail(self, cl: smtp_client.SmtpClient, host: CalloutHost,
              sender: str) -> CalloutOutcome | None:
        line = f"MAIL FROM:<{sender}>"
        reply = self._command(cl, host, line)
        if reply.ok():
            return None
        log_text = f'{self._where(host)} : response to "{line}" was: {_one_line(reply)}'
        if reply.kind == "5":
            if not sender:
                return self._setup_failure(host, line, reply, log_text, REJECT_MFNULL)
            return CalloutOutcome("fail", "mail", "setup", host, line, reply.text, log_text)
        raise _HostFailure(log_text)

    def _transactions(self, cl: smtp_client.SmtpClient, host: CalloutHost,
                      postmaster_needed: bool, random_needed: bool) -> CalloutOutcome:
        failed = self._mail(cl, host, self.sender)
        if failed is not None:
            return failed
        if random_needed:
            line = f"RCPT TO:<{self.random_local_part}@{self.domain}>"
            reply = self._command(cl, host, line)
            if reply.ok():
                # The host accepts anything: checking the real local part tells nothing.
                self.domain_rec.random_result, self.domain_rec.random_stamp = \
                    ACCEPT, self.now
                return CalloutOutcome("ok", "random")
            if reply.kind == "5":
                self.domain_rec.random_result, self.domain_rec.random_stamp = \
                    REJECT, self.now
            self._command(cl, host, "RSET")
            failed = self._mail(cl, host, self.sender)
            if failed is not None:
                return failed
        line = f"RCPT TO:<{self.address}>"
        reply = self._command(cl, host, line)
        if reply.kind == "5":
            return CalloutOutcome("fail", "recipient", "rcpt", host, line, reply.text,
                                  self._error(host, line, reply))
        if not reply.ok():
            raise _HostFailure(self._error(host, line, reply))
        if postmaster_needed:
            return self._postmaster(cl, host)
        return CalloutOutcome("ok")

    def _postmaster(self, cl: smtp_client.SmtpClient, host: CalloutHost) -> CalloutOutcome:
        self._command(cl, host, "RSET")
        failed = self._mail(cl, host, self.opts.postmaster_mailfrom or "")
        if failed is not None:
            return failed
        line = f"RCPT TO:<postmaster@{self.domain}>"
        reply = self._command(cl, host, line)
        if reply.kind == "5" and self.opts.fullpostmaster:
            # RFC 5321 4.5.1: the bare local part "postmaster" must be accepted.
            line, first = "RCPT TO:<postmaster>", reply
            reply = self._command(cl, host, line)
            if reply.kind == "5":
                reply, line = first, f"RCPT TO:<postmaster@{self.domain}>"
        if reply.ok():
            self.domain_rec.postmaster_result, self.domain_rec.postmaster_stamp = \
                ACCEPT, self.now
            return CalloutOutcome("ok")
        if reply.kind == "5":
            self.domain_rec.postmaster_result, self.domain_rec.postmaster_stamp = \
                REJECT, self.now
            return CalloutOutcome("fail", "postmaster", "postmaster", host, line, reply.text,
                                  self._error(host, line, reply))
        raise _HostFailure(self._error(host, line, reply))


def _one_line(reply: smtp_client.SmtpReply) -> str:
    """A reply for a log line: continuation lines joined by newline escapes."""
    return "\\n".join(reply.lines)


def _held_rcpt(slot: CalloutHoldSlot, address: str, sender: str,
               target: CalloutTarget) -> CalloutOutcome | None:
    """callout=hold: RCPT on the connection held for this message, when it goes to one
    of ``target``'s hosts with the same sender and greeting.  None: make a new callout
    (the held connection, if any, is given up)."""
    held = slot.held
    if held is None:
        return None
    same = held.sender == sender and held.helo == target.helo and any(
        h.address == held.host.address and h.port == held.host.port for h in target.hosts)
    line = f"RCPT TO:<{address}>"
    if not same or "\r" in line or "\n" in line:
        slot.release()
        return None
    host = CalloutHost(held.host.name, held.host.address, held.host.port)
    try:
        reply = held.client.command(line)
    except smtp_client.SmtpError:
        slot.take()
        held.client.close()
        return None
    if reply.ok():
        held.recipients.append(address)
        return CalloutOutcome("ok", connected=host)
    # As Exim: a refusal ends the held connection; the next recipient opens a new one.
    slot.release()
    log_text = f'response to "{line}" was: {_one_line(reply)}'
    if reply.kind == "5":
        return CalloutOutcome("fail", "recipient", "rcpt", host, line, reply.text, log_text,
                              connected=host)
    return CalloutOutcome("defer", log_text=f"{host.name} [{host.address}] : {log_text}",
                          connected=host)


def run_callout(address: str, sender: str, opts: CalloutOptions, target: CalloutTarget,
                cache: CalloutCache, random_local_part: str,
                now: float, hold_slot: CalloutHoldSlot | None = None) -> CalloutOutcome:
    """Do (or answer from the cache) one callout for ``address`` using ``sender`` in the
    MAIL command.  ``now`` is the wall-clock time for cache records.  The outcome's
    ``connected`` is the host last connected to (None when none was).  With
    ``callout=hold``, ``hold_slot`` is the session's held connection: used when it
    fits, and where a successful callout's connection is left open."""
    domain = address.rpartition("@")[2].lower()
    use_cache = not opts.no_cache
    rec = cache.domain(domain, now) if use_cache else None
    postmaster_needed = opts.postmaster_mailfrom is not None
    random_needed = opts.random
    if rec is not None:
        if rec.result == REJECT or (rec.result == REJECT_MFNULL and not sender):
            return CalloutOutcome("fail", "mail", "setup", cached=CACHED_DOMAIN_FAILURE)
        if random_needed and rec.random_result == ACCEPT:
            return CalloutOutcome("ok", "random")
        if random_needed and rec.random_result == REJECT:
            random_needed = False
        if postmaster_needed and rec.postmaster_result == REJECT:
            return CalloutOutcome("fail", "postmaster", "postmaster",
                                  cached=CACHED_POSTMASTER_FAILURE)
        if postmaster_needed and rec.postmaster_result == ACCEPT:
            postmaster_needed = False
    key = cache.address_key(address, sender)
    if use_cache:
        known = cache.address(key, now)
        if known == REJECT:
            return CalloutOutcome("fail", "recipient", "rcpt", cached=CACHED_ADDRESS_FAILURE)
        if known == ACCEPT and not postmaster_needed:
            return CalloutOutcome("ok")
    holding = hold_slot if hold_slot is not None and opts.holds and not target.lmtp \
        else None
    if holding is not None:
        held = _held_rcpt(holding, address, sender, target)
        if held is not None:
            _cache_address(cache, key, held, now, use_cache)
            return held
    dialogue = _Dialogue(address, domain, sender, opts, target, cache, random_local_part,
                         now, rec or DomainRecord(now), hold_slot=holding)
    dialogue.domain_rec.time_stamp = now
    deadline = time.monotonic() + opts.total_wait
    last_error = "no hosts to call"
    outcome: CalloutOutcome | None = None
    for i, host in enumerate(target.hosts):
        if i and time.monotonic() > deadline:
            break
        try:
            outcome = dialogue.with_host(host, postmaster_needed, random_needed)
            break
        except _HostFailure as e:
            last_error = e.text
    if use_cache and dialogue.write_domain:
        cache.put_domain(domain, dialogue.domain_rec)
    if outcome is None:
        outcome = CalloutOutcome("defer", log_text=last_error)
    outcome.connected = dialogue.connected
    _cache_address(cache, key, outcome, now, use_cache)
    return outcome


def _cache_address(cache: CalloutCache, key: str, outcome: CalloutOutcome, now: float,
                   use_cache: bool) -> None:
    if not use_cache or outcome.status == "defer" or outcome.failure == "random":
        return
    if outcome.status == "ok":
        cache.put_address(key, ACCEPT, now)
    elif outcome.failure == "recipient":
        cache.put_address(key, REJECT, now)


__all__ = ["CalloutOptions", "CalloutTarget", "CalloutHost", "CalloutOutcome",
           "parse_callout_options", "run_callout", "UNKNOWN"]
