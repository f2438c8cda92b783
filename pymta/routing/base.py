"""The router base class: generic options and Exim's precondition checks.

A driver subclass implements :meth:`Router.route`, which runs only after every
precondition (section "Router preconditions" of the spec) has passed.
"""
from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from typing import Any

from pymta.address import Address
from pymta.expand import debugprint
from pymta.finduser import getpwnam
from pymta.routing import support
from pymta.routing.options import GENERIC_ROUTER_OPTIONS
from pymta.taint import is_tainted, taint

# What a router can answer for one address (section "Running an individual router").
ACCEPT = "accept"
PASS = "pass"
DECLINE = "decline"
FAIL = "fail"
DEFER = "defer"
DISCARD = "discard"     # :blackhole: - accepted, nothing to deliver


#: Router preconditions whose setting makes retry_use_local_part default to true.
_LOCAL_PART_PRECONDITIONS = ("local_parts", "condition", "local_part_prefix",
                             "local_part_suffix", "senders", "require_files")


@dataclass
class RouterReply:
    """A driver's answer: status, error text, and any generated child addresses."""

    status: str
    message: str | None = None
    children: list[Address] = field(default_factory=list)
    freeze: bool = False
    unseen: bool = False        # the router's unseen, expanded when it accepted
    #: main-log lines for the delivery to write (skip_syntax_errors), and a message to
    #: send (syntax_errors_to): (recipient, text)
    notes: list[str] = field(default_factory=list)
    report: tuple[str, str] | None = None
    #: a deferral the router could not help (bad redirection data: Exim's ERROR)
    error: bool = False
    #: a deferral's text meant for the sender (":defer: text")
    user_message: str | None = None
    #: ``self = freeze``: "<why>: <domain>", for the log line Exim writes then
    self_frozen: str | None = None


_TRUE = {"true", "yes", "1", ""}


def to_bool(value: Any) -> bool:
    """Coerce an option value that may still be raw text to a boolean."""
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


class Router:
    """Base class of all routers; constructed as ``cls(instance, config)``.

    ``instance`` is the :class:`~pymta.config.model.DriverInstance` holding the option
    values; unset options take the defaults from the class's ``options`` table.
    """

    options: dict[str, Any] = GENERIC_ROUTER_OPTIONS
    driver_name = "router"

    def __init__(self, instance: Any, config: Any):
        self.instance = instance
        self.config = config
        self.name: str = instance.name
        # Exim's defaults for these depend on other settings; storing the effective
        # value makes -bP show what Exim shows.  retry_use_local_part is set by
        # check_local_user and by any precondition that looks at more than the domain
        # (as exim4 -bP shows); log_as_local is true for the accept router only.
        defaults = {"retry_use_local_part": self.flag("check_local_user") or any(
                        self.is_set(name) for name in _LOCAL_PART_PRECONDITIONS),
                    "log_as_local": instance.driver == "accept"}
        for name, value in defaults.items():
            if name in self.options and not self.is_set(name):
                instance.options[name] = value

    # -- option access -------------------------------------------------------------
    def is_set(self, name: str) -> bool:
        """Whether the option was set in the file (the loader records ``explicit``)."""
        explicit = getattr(self.instance, "explicit", None)
        if explicit:
            return name in explicit
        return self.instance.options.get(name) is not None

    def opt(self, name: str) -> Any:
        if name in self.instance.options and self.instance.options[name] is not None:
            return self.instance.options[name]
        spec = self.options.get(name)
        return getattr(spec, "default", None) if spec is not None else None

    def flag(self, name: str) -> bool:
        return to_bool(self.opt(name))

    def verify_flag(self, which: str) -> bool:
        """verify_sender / verify_recipient, where a plain ``verify`` sets both."""
        if self.is_set(which):
            return self.flag(which)
        return self.flag("verify")

    # -- preconditions -------------------------------------------------------------
    def check_preconditions(self, addr: Address, ctx: Any, verify: Any = False,
                            address_test: bool = False) -> str | None:
        """Run the preconditions in Exim's order; return None to run the router or a
        short reason for skipping it.  Affixes are stripped from ``addr`` and the
        address variables in ``ctx`` are updated as a side effect."""
        if not self._strip_affixes(addr, ctx):
            return "affix"
        if verify and verify != "expn":
            kind = "verify_sender" if verify == "sender" else "verify_recipient"
            if not self.verify_flag(kind):
                return "verify"
        if address_test and not self.flag("address_test"):
            return "address_test"
        if self.flag("verify_only") and not verify:
            return "verify_only"
        if verify == "expn" and not self.flag("expn"):
            return "expn"
        domains = self.opt("domains")
        if domains is not None and not support.match_domain(addr.domain, domains, ctx):
            return "domains"
        if "domain_data" in ctx.variables:
            addr.domain_data = ctx.variables["domain_data"]
        local_parts = self.opt("local_parts")
        lp = ctx.variables.get("local_part", addr.local_part)
        if local_parts is not None and not support.match_localpart(
                self._caseful_local_part(addr, ctx), local_parts, ctx,
                caseless=not self.flag("caseful_local_part")):
            return "local_parts"
        if "local_part_data" in ctx.variables:
            addr.local_part_data = ctx.variables["local_part_data"]
        if self.flag("check_local_user"):
            try:
                pw = getpwnam(str(lp))
            except KeyError:
                return "check_local_user"
            ctx.variables["home"] = pw.pw_dir
            ctx.variables["local_user_uid"] = str(pw.pw_uid)
            ctx.variables["local_user_gid"] = str(pw.pw_gid)
            ctx.variables["local_part_data"] = pw.pw_name   # untainted: from the system
            addr.local_part_data = pw.pw_name
            addr.home = pw.pw_dir
            # local transports without a user option run as this user
            addr.uid, addr.gid = pw.pw_uid, pw.pw_gid
        text = self.opt("debug_print")
        if text is not None and debugprint.wanted(address_test):
            # after domains, local_parts and check_local_user, before the rest (Exim's place)
            debugprint.debug_print(str(text), ctx.child(router_name=self.name),
                                   f"{self.name} router", address_test=address_test)
        self._set_user(addr, ctx)
        home = self.opt("router_home_directory")
        if home is not None:
            addr.home = support.expand(home, ctx)
            ctx.variables["home"] = addr.home
        senders = self.opt("senders")
        if senders is not None:
            sender = ctx.variables.get("sender_address", "")
            if not support.match_address(str(sender), senders, ctx):
                return "senders"
        require = self.opt("require_files")
        if require is not None and not self._require_files(require, ctx):
            return "require_files"
        condition = self.opt("condition")
        if condition is not None and not support.condition_true(condition, ctx):
            return "condition"
        return None

    def _set_user(self, addr: Address, ctx: Any) -> None:
        """The generic user/group options: the ids the router's own work (a filter) and
        local transports without a user of their own run as."""
        user = self.opt("user")
        if user in (None, ""):
            return
        value = str(support.expand(str(user), ctx)).strip()
        try:
            pw = pwd.getpwuid(int(value)) if value.isdigit() else getpwnam(value)
        except KeyError:
            raise support.ExpandError(f'user "{value}" was not found') from None
        addr.uid, addr.gid = pw.pw_uid, pw.pw_gid
        group = self.opt("group")
        if group not in (None, ""):
            import grp
            gvalue = str(support.expand(str(group), ctx)).strip()
            try:
                addr.gid = int(gvalue) if gvalue.isdigit() else grp.getgrnam(gvalue).gr_gid
            except KeyError:
                raise support.ExpandError(f'group "{gvalue}" was not found') from None

    @staticmethod
    def _caseful_local_part(addr: Address, ctx: Any) -> str:
        """The local part without its affixes in the case it was written in (what
        local_parts matches, caselessly unless told otherwise, as Exim does); $local_part
        when that is not the address's own (changed on the way)."""
        lp = str(ctx.variables.get("local_part", addr.local_part))
        cased = addr.unaffixed_local_part()
        if cased.lower() != lp.lower():
            return lp
        return taint(cased) if is_tainted(lp) or is_tainted(addr.local_part) else cased

    def _strip_affixes(self, addr: Address, ctx: Any) -> bool:
        lp = addr.local_part if self.flag("caseful_local_part") else addr.local_part.lower()
        addr.prefix = addr.suffix = ""
        for which in ("prefix", "suffix"):
            setting = self.opt(f"local_part_{which}")
            optional = self.flag(f"local_part_{which}_optional")
            found = None
            if setting is not None:
                for item in support.split_list(setting):
                    found = _affix_match(lp, item, which)
                    if found is not None:
                        break
                if found is None and not optional:
                    return False
            affix = found or ""
            if which == "prefix":
                addr.prefix, lp = affix, lp[len(affix):]
            else:
                addr.suffix, lp = affix, lp[:len(lp) - len(affix)]
            ctx.variables[f"local_part_{which}"] = taint(affix) if affix else ""
            wild = _affix_wild_part(affix, setting or "", which) if affix else ""
            ctx.variables[f"local_part_{which}_v"] = taint(wild) if wild else ""
        ctx.variables["local_part"] = taint(lp)
        return True

    @staticmethod
    def _require_files(text: str, ctx: Any) -> bool:
        for item in support.split_list(support.expand(text, ctx) or ""):
            neg = item.startswith("!")
            path = item[1:] if neg else item
            if path.startswith("+"):
                continue        # user/group qualifiers: not needed yet
            if os.path.exists(path) == neg:
                return False
        return True

    # -- the driver's work ---------------------------------------------------------
    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        """Route ``addr`` (preconditions already passed); drivers override this."""
        raise NotImplementedError

    def transport_name(self, ctx: Any) -> str | None:
        """The expanded ``transport`` option (None when unset)."""
        value = self.opt("transport")
        return None if value is None else str(support.expand(value, ctx)).strip()


def _affix_match(lp: str, item: str, which: str) -> str | None:
    """Return the part of ``lp`` matched by one prefix/suffix item (``*`` wildcards)."""
    if which == "prefix":
        if item.startswith("*"):
            fixed = item[1:]
            pos = lp.find(fixed) if fixed else -1
            return lp[:pos + len(fixed)] if pos >= 0 and pos + len(fixed) < len(lp) else None
        return item if lp.startswith(item) and len(lp) > len(item) else None
    if item.endswith("*"):
        fixed = item[:-1]
        pos = lp.rfind(fixed) if fixed else -1
        return lp[pos:] if pos > 0 else None
    return item if lp.endswith(item) and len(lp) > len(item) else None


def _affix_wild_part(affix: str, setting: str, which: str) -> str:
    for item in support.split_list(setting):
        if which == "prefix" and item.startswith("*") and affix.endswith(item[1:]):
            return affix[:len(affix) - len(item) + 1]
        if which == "suffix" and item.endswith("*") and affix.startswith(item[:-1]):
            return affix[len(item) - 1:]
    return ""
