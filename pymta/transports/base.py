"""The transport base class and Exim's generic transport options.

A transport is constructed once per configured instance as ``cls(instance, config)`` and
called with a :class:`pymta.delivery.job.DeliveryJob` for a batch of addresses.  It sets
``result``/``message``/``basic_errno`` (and for remote transports ``host_used`` and
``smtp_confirmation``) on every address of the job; it never raises for delivery problems.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import time
from dataclasses import replace
from email.utils import formatdate
from typing import Any

from pymta.config.option_tables import generic_options
from pymta.config.options import OptionSpec, parse_int
from pymta.config.values import main_option
from pymta.errnos import EximErrno
from pymta.expand import ExpandFail, expand_string
from pymta.expand import lists as _lists
from pymta.expand.lists import nonempty_items as split_list
from pymta.finduser import getpwnam
from pymta.log import log_selected
from pymta.osutil import can_switch_ids, user_groups
from pymta.rewrite import rewrite_header_text
from pymta.rewrite.transport import transport_rewriter
from pymta.taint import taint

#: Options every transport accepts; the shared Exim 4.96 table is the one source of
#: option names, types and defaults (drivers use ``driver_options("transport", name)``).
GENERIC_TRANSPORT_OPTIONS: dict[str, OptionSpec] = generic_options("transport")


class TransportError(Exception):
    """A problem that ends this delivery attempt for all the job's addresses.

    ``result`` is "defer" or "fail"; ``errno`` goes to ``Address.basic_errno``;
    ``panic`` marks a deferral that is the configuration's fault (``Address.panic``).
    """

    def __init__(self, message: str, result: str = "defer",
                 errno: int = EximErrno.UNKNOWNERROR, panic: bool = False):
        super().__init__(message)
        self.message = message
        self.result = result
        self.errno = errno
        self.panic = panic


def expand(text: str, ctx: Any) -> str:
    """Expand ``text`` (raises the expander's ExpandFail/ExpandError/ExpandDefer)."""
    return expand_string(text, ctx)


def is_forced_fail(exc: BaseException) -> bool:
    """True for the expander's forced failure (``${if ...{}fail}``)."""
    return isinstance(exc, ExpandFail)


def _header_name_matches(header: str, names: list[str]) -> bool:
    hname = header.split(":", 1)[0].strip().lower()
    for n in names:
        n = n.strip().lower().rstrip(":")
        if n.endswith("*"):
            if hname.startswith(n[:-1]):
                return True
        elif hname == n:
            return True
    return False


class Transport:
    """Base class: option access, context set-up and the header block for the message."""

    options: dict[str, OptionSpec] = GENERIC_TRANSPORT_OPTIONS
    is_local: bool = True
    driver_name: str = ""

    def __init__(self, instance: Any, config: Any):
        self.instance = instance
        self.config = config
        self.name: str = instance.name
        # headers_rewrite: rules read (and checked) when the configuration is loaded
        self.headers_rewriter = transport_rewriter(config, instance)

    def opt(self, name: str) -> Any:
        """The configured value of an option, or its default."""
        if name in self.instance.options:
            return self.instance.options[name]
        spec = self.options.get(name)
        return spec.default if spec is not None else None

    def is_set(self, name: str) -> bool:
        """Whether the configuration sets ``name`` (the loader also stores defaults, so
        a stored None means unset; ``message_prefix =`` stores "" and counts as set)."""
        if self.instance.options.get(name) is not None:
            return True
        return any(getattr(s, "name", None) == name for s in self.instance.settings)

    def delivery_groups(self, ids: tuple[int, int] | None, addr: Any) -> list[int] | None:
        """initgroups (on this transport, or on the router that gave the uid): all the
        user's groups; None means the delivery gid alone."""
        if ids is None:
            return None
        from_router = self.opt("user") in (None, "")
        if self.opt("initgroups") or (from_router and getattr(addr, "initgroups", False)):
            return user_groups(*ids)
        return None

    def delivery_ids(self, ctx: Any, addr: Any) -> tuple[int, int] | None:
        """uid/gid from the user/group options, or None when no switch is wanted.

        Switching is only possible as root (or in a daemon worker that kept a saved uid
        0); otherwise the options are ignored and the delivery runs as the current user
        (as Exim does when it is not setuid).  With no user here or from the router, a
        daemon worker delivers as the Exim user it runs as.
        """
        user = self.opt("user")
        if not can_switch_ids():
            return None
        try:
            if user is None or user == "":
                # No user here: use the one the router found (check_local_user), if any.
                uid = getattr(addr, "uid", None) if addr is not None else None
                if uid is None:
                    return None
                gid = getattr(addr, "gid", None)
                return int(uid), self._group_option(ctx, int(gid if gid is not None else uid))
            u = expand(user, ctx) if isinstance(user, str) else user
            pw = pwd.getpwuid(int(u)) if str(u).isdigit() else getpwnam(str(u))
            return pw.pw_uid, self._group_option(ctx, pw.pw_gid)
        except (KeyError, ValueError) as e:
            raise TransportError(f"unknown user or group for {self.name} transport: {e}",
                                 errno=EximErrno.BADUGID)

    def _group_option(self, ctx: Any, gid: int) -> int:
        """The group option's gid, which overrides the user's or the router's (Exim's
        default configuration sets only ``group = mail`` for /var/mail); else ``gid``."""
        group = self.opt("group")
        if group is None or group == "":
            return gid
        g = expand(group, ctx) if isinstance(group, str) else group
        return int(g) if str(g).isdigit() else grp.getgrnam(str(g)).gr_gid

    # -- delivery ------------------------------------------------------------
    def deliver(self, job: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------
    def check_size_limit(self, job: Any, ctx: Any, size: int) -> None:
        """Apply the generic message_size_limit: fail a message bigger than the limit;
        a bad or failing expansion defers."""
        text = self.opt("message_size_limit")
        if not text or text == "0":
            return
        try:
            value = expand(str(text), ctx).strip()
            if not re.fullmatch(r"\d+[KkMm]?", value):
                raise ValueError(value)
            limit = parse_int(value)
        except Exception as e:  # noqa: BLE001 - any failure defers, as in Exim
            raise TransportError(f"failed to expand or interpret message_size_limit "
                                 f"for {self.name} transport: {e}",
                                 errno=EximErrno.EXPANDFAIL)
        if limit > 0 and size > limit:
            raise TransportError(f"message is too big (transport limit = {limit})",
                                 result="fail", errno=EximErrno.UNKNOWNERROR)

    def context(self, job: Any, addr: Any = None) -> Any:
        """A child ExpandContext with the transport-time variables set.

        The delivery code fills the job context for the first address; values it did
        not set are taken from ``addr`` (tainted: an address comes from the message).
        """
        extra: dict[str, str] = {"transport_name": self.name,
                                 "return_path": self.return_path(job)}
        if job.ctx is None:
            return None
        ctx = job.ctx.child(**extra)
        if addr is not None:
            for k in ("local_part", "domain"):
                if k not in ctx.variables:
                    ctx.variables[k] = taint(getattr(addr, k))
        home = self.opt("home_directory") if "home_directory" in self.options else None
        if home:
            ctx.variables["home"] = expand(home, ctx)
        return ctx

    def working_directories(self, ctx: Any, addr: Any) -> tuple[str | None, str]:
        """($home, current directory) for a local delivery: the transport's
        home_directory / current_directory, else the router's transport_* options,
        else the home found by the router; the current directory defaults to $home,
        then "/"."""
        home = ctx.variables.get("home") if ctx is not None else None
        if not home:
            home = getattr(addr, "transport_home", None) or getattr(addr, "home", None)
        cwd = self.opt("current_directory") if "current_directory" in self.options else None
        cwd = expand(cwd, ctx) if cwd else getattr(addr, "transport_cwd", None)
        cwd = cwd or home
        return home, cwd if cwd and os.path.isdir(cwd) else "/"

    def return_path(self, job: Any) -> str:
        """The envelope sender for this delivery (Exim's $return_path)."""
        rp = job.message.sender
        for a in job.addresses:
            if a.errors_address is not None:
                rp = a.errors_address
                break
        if self.opt("return_path") and job.ctx is not None:
            ctx = job.ctx.child(return_path=rp)
            try:
                rp = expand(self.opt("return_path"), ctx)
            except Exception as e:  # noqa: BLE001 - forced fail keeps the old value
                if not is_forced_fail(e):
                    raise TransportError(
                        f'Failed to expand return path "{self.opt("return_path")}" '
                        f"in {self.name} transport: {e}", errno=EximErrno.EXPANDFAIL)
        for a in job.addresses:
            a.return_path = rp                   # P= on the delivery line
        return rp

    def _expand_items(self, text: str | None, ctx: Any, sep: str) -> list[str]:
        out: list[str] = []
        for item in split_list(text or "", sep):
            try:
                v = expand(item, ctx)
            except Exception as e:  # noqa: BLE001
                if is_forced_fail(e):
                    continue
                raise TransportError(f'Failed to expand "{item}": {e}',
                                     errno=EximErrno.CHHEADER_FAIL)
            if v:
                out.append(v)
        return out

    def bsmtp_envelope(self, job: Any, return_path: str, nl: str) -> bytes:
        """use_bsmtp (appendfile, pipe): the envelope as batch SMTP commands, the
        recipients as an SMTP envelope names them (rcpt_include_affixes)."""
        affixes = bool(self.opt("rcpt_include_affixes"))
        return (f"MAIL FROM:<{return_path}>{nl}"
                + "".join(f"RCPT TO:<{a.rcpt_address(affixes)}>{nl}" for a in job.addresses)
                + f"DATA{nl}").encode("utf-8", "surrogateescape")

    def header_block(self, job: Any, ctx: Any, return_path: str | None = None) -> bytes:
        """The header section as delivered, ending with the blank line (LF endings).

        Adds Return-path:, Envelope-to: and Delivery-date: when asked (in that order, at
        the top, as Exim 4.96 does), drops headers named by the routers' and this transport's
        headers_remove, and appends the routers' and this transport's headers_add.
        """
        parts: list[str] = []
        if self.opt("return_path_add"):
            rp = self.return_path(job) if return_path is None else return_path
            parts.append(f"Return-path: <{rp}>\n")
        if self.opt("envelope_to_add"):
            seen: list[str] = []

            def add(a: Any) -> None:
                # Exim records the original envelope recipient (the progenitor), after
                # those of the duplicates dropped in favour of it or of its ancestors.
                top = a
                while True:
                    for dup in getattr(top, "duplicates", ()):
                        add(dup)
                    if top.parent is None:
                        break
                    top = top.parent
                if top.address not in seen:
                    seen.append(top.address)
            for a in job.addresses:
                add(a)
            parts.append("Envelope-to: " + ",\n ".join(seen) + "\n")
        if self.opt("delivery_date_add"):
            parts.append(f"Delivery-date: {formatdate(time.time(), localtime=True)}\n")
        remove: list[str] = []
        for a in job.addresses[:1]:
            remove.extend(a.remove_headers)
        remove.extend(self._expand_items(self.opt("headers_remove"), ctx, ":"))
        rewriter = None
        if self.headers_rewriter is not None:
            rewriter = replace(self.headers_rewriter, log=job.log, msgid=job.message.id,
                               log_rewrites=log_selected(self.config, "address_rewrite"),
                               variables=dict(getattr(ctx, "variables", {}) or {}))
        for h in job.message.headers:
            if h.flag == "*":
                continue
            if remove and _header_name_matches(h.text, remove):
                continue
            text = h.text
            if rewriter is not None:
                # the received headers and those ACLs or the system filter added; not
                # the routers' and this transport's headers_add (appended below)
                text = rewrite_header_text(rewriter, text) or text
            parts.append(text if text.endswith("\n") else text + "\n")
        added: list[str] = []
        for a in job.addresses[:1]:
            added.extend(a.extra_headers)
        added.extend(self._expand_items(self.opt("headers_add"), ctx, "\n"))
        for h in added:
            parts.append(h if h.endswith("\n") else h + "\n")
        parts.append("\n")
        return "".join(parts).encode("utf-8", "surrogateescape")


def set_results(addresses: list, result: str, message: str | None = None,
                errno: int = 0, more_errno: int = 0) -> None:
    """Record the same outcome on every address."""
    for a in addresses:
        a.result = result
        a.message = message
        a.basic_errno = errno
        if more_errno:
            a.more_errno = more_errno


#: Users no delivery may ever run as, whatever never_users says (Exim's FIXED_NEVER_USERS).
FIXED_NEVER_USERS = ("root",)


def check_never_users(config: Any, uid: int, transport_name: str) -> None:
    """Refuse (defer) a delivery that would switch to a uid on the never_users list.

    Only applies when the delivery really changes to ``uid`` (a ``user`` option or a
    router's check_local_user while running as root); a delivery that runs as the
    process's own user is not switched and not checked.
    """
    import pwd
    names = list(FIXED_NEVER_USERS) + _lists.split_list(str(main_option(config, "never_users", "")
                                                    or ""))
    for name in names:
        name = name.strip()
        if not name:
            continue
        try:
            banned = int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        if banned == uid:
            raise TransportError(f"User {uid} set for {transport_name} transport is on "
                                 "the never_users list", errno=EximErrno.BADUGID)

