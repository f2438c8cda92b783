"""The redirect router: aliasing, forwarding and users' filter files."""
from __future__ import annotations

import contextlib
import grp
import os
import re
from typing import Any, Iterator

from pymta.address import Address
from pymta.config.model import ConfigError
from pymta.drivers import register
from pymta.filter import bare_address, filter_kind
from pymta.finduser import getpwnam
from pymta.osutil import can_switch_ids, switched_ids
from pymta.rewrite import Where
from pymta.rewrite.setup import main_rewriter
from pymta.routing import support
from pymta.routing.base import ACCEPT, DECLINE, DEFER, DISCARD, FAIL, Router, RouterReply
from pymta.routing.filtering import run_user_filter
from pymta.routing.options import router_options
from pymta.taint import TaintError, check_untainted, taint


def split_redirect_items(text: str) -> list[str]:
    """Split redirection data into items.

    Items are separated by commas or newlines; an item wholly in double quotes loses its
    quotes; ``#`` starts a comment at the start of a line or after a comma; ``:fail:`` and
    ``:defer:`` swallow the rest of the line (a comma does not end their text).
    """
    items: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        if text[i] == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        low = text[i:i + 7].lower()
        if low.startswith(":fail:") or low.startswith(":defer:"):
            j = text.find("\n", i)
            j = n if j < 0 else j
            items.append(text[i:j].rstrip("\r"))   # the text keeps trailing spaces
            i = j + 1
            continue
        cur: list[str] = []
        quote = angle = False
        while i < n:
            c = text[i]
            if c == '"':
                quote = not quote
            elif c == "<" and not quote:
                angle = True
            elif c == ">" and not quote:
                angle = False
            elif c == "\\" and quote and i + 1 < n:
                cur.append(c)
                i += 1
                c = text[i]
            elif (c in ",\n") and not quote and not angle:
                break
            cur.append(c)
            i += 1
        item = "".join(cur).strip()
        if len(item) >= 2 and item[0] == '"' and item[-1] == '"':
            item = item[1:-1]
        if item:
            items.append(item)
    return items


class _FileRefused(Exception):
    """The redirect file exists but may not be used (mode, owner, group, directory)."""


@register("router", "redirect")
class RedirectRouter(Router):
    """Generate new addresses from ``data`` or ``file``: a redirection list, or (with
    allow_filter) an Exim or Sieve filter."""

    options = router_options("redirect")

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        if self.flag("allow_filter") and not self.flag("check_local_user") and \
                self.opt("user") is None:
            # a user's filter runs as that user (logwrite, and the deliveries it makes)
            raise ConfigError(f"{self.name} router: allow_filter requires check_local_user "
                              "or user to be set")
        # check_owner and check_group default from other options (Exim computes them
        # when it reads the configuration; -bP shows the result)
        local = self.flag("check_local_user")
        if not self.is_set("check_owner"):
            instance.options["check_owner"] = bool(local or self.opt("owners"))
        if not self.is_set("check_group"):
            instance.options["check_group"] = bool(
                (local and not self._modemask() & 0o020) or self.opt("owngroups"))

    def _modemask(self) -> int:
        return int(self.opt("modemask") if self.opt("modemask") is not None else 0o022)

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        try:
            text = self._get_data(ctx, addr)
        except support.ExpandFail:
            return RouterReply(DECLINE)
        except _FileRefused as exc:
            return RouterReply(DEFER, str(exc))
        except OSError as exc:
            return RouterReply(DEFER, f"failed to read redirection file: {exc.strerror}")
        except TaintError as exc:
            return RouterReply(DEFER, f"{self.name} router: {exc}")
        if text is None or not text.strip():
            return RouterReply(DECLINE)
        kind = filter_kind(text) if self.flag("allow_filter") else None
        if kind is not None:
            if self.flag(f"forbid_{kind}_filter"):
                name = "Exim" if kind == "exim" else "Sieve"
                return RouterReply(DEFER, f"{name} filtering not enabled")
            if verify:
                return RouterReply(ACCEPT)  # a filter is not run to verify an address
            source = "filter file" if self.opt("data") is None else "filter data"
            return run_user_filter(self, kind, text, addr, ctx, source)
        try:
            items = self._expand_includes(split_redirect_items(text), ctx)
        except (OSError, TaintError, ValueError) as exc:
            return RouterReply(DEFER, f"error in redirect data: {exc}", error=True)

        # :defer: and :fail: apply to the whole list; :blackhole: discards it.
        for special, allowed, status in ((":defer:", "allow_defer", DEFER),
                                         (":fail:", "allow_fail", FAIL)):
            for item in items:
                if item.lower().startswith(special):
                    if not self.flag(allowed):
                        return RouterReply(
                            DEFER, f'error in redirect data: "{item}" is not permitted',
                            error=True)
                    text = item[len(special):].lstrip()
                    if self.flag("forbid_smtp_code"):
                        # the default codes only: a leading SMTP code is dropped
                        text = re.sub(r"^[45]\d\d(?:[ -]\d\.\d{1,3}\.\d{1,3})?\s*", "",
                                      text)
                    return RouterReply(status, text or None,
                                       user_message=text or None if status == DEFER else None)
        if any(i.lower() == ":blackhole:" for i in items):
            if self.flag("forbid_blackhole"):
                return RouterReply(DEFER, 'error in redirect data: ":blackhole:" is not '
                                   "permitted", error=True)
            return RouterReply(DISCARD)
        if any(i.lower() == ":unknown:" for i in items):
            return RouterReply(DECLINE)

        children: list[Address] = []
        skipped: list[str] = []
        for item in items:
            try:
                child = self._make_child(item, addr, ctx)
            except ValueError as exc:
                if self.flag("skip_syntax_errors"):
                    skipped.append(str(exc))
                    continue
                return RouterReply(DEFER, f"error in redirect data: {exc}", error=True)
            if child is None:
                continue
            if self.flag("check_ancestor") and child.kind == "address":
                anc = addr.parent
                while anc is not None:
                    if anc.address.lower() == child.address.lower():
                        child = Address(addr.address, local_part=addr.local_part,
                                        domain=addr.domain)
                        break
                    anc = anc.parent
            if self.flag("hide_child_in_errmsg"):
                child.hide_in_errmsg = True
            children.append(child)
        notes = [f"{self.name} router: skipped error: {e}" for e in skipped]
        report = self._syntax_report(skipped, ctx) if skipped else None
        if not children:
            return RouterReply(DECLINE, notes=notes, report=report)
        return RouterReply(ACCEPT, children=children, notes=notes, report=report)

    def _syntax_report(self, errors: list[str], ctx: Any) -> tuple[str, str] | None:
        """syntax_errors_to: a message listing the skipped items (after
        syntax_errors_text)."""
        to = support.expand(self.opt("syntax_errors_to"), ctx)
        if not to:
            return None
        intro = support.expand(self.opt("syntax_errors_text"), ctx) or ""
        body = "".join(f"  {e}\n\n" for e in errors)
        return to.strip(), (
            "Auto-Submitted: auto-replied\n"
            f"From: Mail Delivery System <Mailer-Daemon@{support.qualify_domain(self.config)}>\n"
            f"To: {to.strip()}\nSubject: error(s) in forwarding or filtering\n\n"
            + (intro.rstrip("\n") + "\n\n" if intro else "")
            + f"The {self.name} router encountered the following error(s):\n\n{body}"
            "Other addresses were processed normally.\n")

    def _get_data(self, ctx: Any, addr: Address) -> str | None:
        if self.opt("data") is not None:
            return support.expand(self.opt("data"), ctx)
        if self.opt("file") is not None:
            path = support.expand(self.opt("file"), ctx)
            check_untainted(path, "redirect file")
            try:
                with self._as_file_user(addr):
                    fh = open(path, encoding="utf-8", errors="replace")
            except FileNotFoundError:
                # a missing forward file means "decline" -- unless its directory is
                # missing too (an unmounted home directory, say): then wait
                with self._as_file_user(addr):
                    missing_dir = not os.path.isdir(os.path.dirname(path) or "/")
                if not self.flag("ignore_enotdir") and missing_dir:
                    raise _FileRefused(f"directory for {path} does not exist") from None
                return None
            except PermissionError:
                if self.flag("ignore_eacces"):
                    return None
                raise
            except NotADirectoryError:
                if self.flag("ignore_enotdir"):
                    return None
                raise
            with fh:
                self._check_file(path, os.fstat(fh.fileno()), addr)
                return fh.read()
        return None

    @staticmethod
    @contextlib.contextmanager
    def _as_file_user(addr: Address) -> Iterator[None]:
        """Open the file as the user check_local_user or the user option gave, as Exim
        does: a delivery worker runs as exim_user, to whom a home directory of mode
        0700 (Debian's default) is closed."""
        if addr.uid is not None and addr.gid is not None and can_switch_ids() \
                and addr.uid != os.geteuid():
            with switched_ids(addr.uid, addr.gid):
                yield
        else:
            yield

    def _check_file(self, path: str, st: os.stat_result, addr: Address) -> None:
        """modemask, check_owner/owners and check_group/owngroups on a redirect file."""
        modemask = self._modemask()
        if st.st_mode & modemask:
            raise _FileRefused(f"bad mode (0{st.st_mode:o}) for {path}: "
                               f"{modemask:03o} bit(s) unexpected")
        local = self.flag("check_local_user")
        owners = self._ids(self.opt("owners"), getpwnam, "pw_uid")
        if self.flag("check_owner"):
            allowed = set(owners) | ({addr.uid} if local and addr.uid is not None else set())
            if st.st_uid not in allowed:
                raise _FileRefused(f"bad owner for {path}")
        groups = self._ids(self.opt("owngroups"), grp.getgrnam, "gr_gid")
        if self.flag("check_group"):
            allowed = set(groups) | ({addr.gid} if local and addr.gid is not None else set())
            if st.st_gid not in allowed:
                raise _FileRefused(f"bad group for {path}")

    @staticmethod
    def _ids(text: Any, lookup: Any, field: str) -> list[int]:
        out = []
        for item in support.split_list(str(text)) if text else []:
            if item.isdigit():
                out.append(int(item))
                continue
            try:
                out.append(getattr(lookup(item), field))
            except KeyError:
                continue
        return out

    def _expand_includes(self, items: list[str], ctx: Any, depth: int = 0) -> list[str]:
        out: list[str] = []
        for item in items:
            if item.lower().startswith(":include:"):
                if self.flag("forbid_include"):
                    raise ValueError(f'"{item}" is not permitted')
                path = item[len(":include:"):].strip()
                check_untainted(path, "include file")
                inc_dir = self.opt("include_directory")
                if inc_dir and not path.startswith(inc_dir.rstrip("/") + "/"):
                    raise ValueError(f"included file {path} is not in directory {inc_dir}")
                if depth > 10:
                    raise ValueError("too many nested :include: items")
                with open(path, encoding="utf-8", errors="replace") as fh:
                    out.extend(self._expand_includes(split_redirect_items(fh.read()), ctx,
                                                     depth + 1))
            else:
                out.append(item)
        return out

    def _make_child(self, item: str, parent: Address, ctx: Any) -> Address | None:
        bare = item if item.startswith(("|", "/")) else bare_address(item)
        has_domain = "@" in bare and not bare.startswith(("|", "/"))
        if item.startswith("|") and not has_domain:
            self._check_allowed("pipe", "forbid_pipe", item)
            return self.special_child(item, "pipe", "pipe_transport", parent, ctx)
        if item.startswith("/") and not has_domain:
            if item == "/dev/null":
                return None     # delivery to /dev/null is bypassed entirely
            kind = "directory" if item.endswith("/") else "file"
            topt = "directory_transport" if kind == "directory" else "file_transport"
            self._check_allowed(kind, "forbid_file", item)
            return self.special_child(item, kind, topt, parent, ctx)
        if bare.startswith("\\"):
            bare = bare[1:]
            if "@" not in bare:
                bare = f"{bare}@{parent.domain}"
        if not bare or bare.startswith("@") or bare.endswith("@"):
            raise ValueError(f'domain missing or malformed in "{item}"')
        if bare.startswith('"') and not re.match(r'"(?:[^"\\]|\\.)*"', bare):
            raise ValueError(f'unmatched doublequote in local part in "{item}"')
        if " " in bare.strip('"'):
            raise ValueError('missing or malformed local part (expected word or "<") in '
                             f'"{item}"')
        if "@" not in bare:
            if self.flag("qualify_preserve_domain"):
                dom = parent.domain
            elif self.opt("qualify_domain"):
                dom = support.expand(self.opt("qualify_domain"), ctx)
            else:
                dom = support.qualify_recipient(self.config)
            bare = f"{bare}@{dom}"
        return Address(self.rewrite_child(bare, ctx), parent=parent)

    def rewrite_child(self, address: str, ctx: Any) -> str:
        """A generated address (from the data or a user's filter) goes through the
        rewrite section as an envelope recipient at once, unless ``no_rewrite`` is
        set (the spec's "When does rewriting happen?")."""
        if not self.flag("rewrite"):
            return address
        log = getattr(ctx, "log", None)
        rewriter = main_rewriter(self.config, log if hasattr(log, "main") else None,
                                 dict(getattr(ctx, "variables", {}) or {}))
        if rewriter is None:
            return address
        return rewriter.address(taint(address), Where.ENV_TO).address

    def _check_allowed(self, kind: str, forbid: str, item: str) -> None:
        if self.flag(forbid) or self.flag("one_time"):
            raise ValueError(f"{kind} delivery to {item} is not permitted")

    def special_child(self, item: str, kind: str, topt: str, parent: Address,
                      ctx: Any) -> Address:
        """A file, directory, pipe or reply delivery generated for ``parent``, to the
        transport the ``topt`` option names."""
        tname = self.opt(topt)
        if tname is None:
            raise ValueError(f"no transport specified for {kind} \"{item}\" ({topt} unset "
                             f"in {self.name} router)")
        child = Address(item, local_part=item, domain=parent.domain, parent=parent)
        child.kind = kind
        child.router = self.name
        # file and pipe deliveries run as the user the redirect router found
        child.uid, child.gid, child.home = parent.uid, parent.gid, parent.home
        child.transport = str(support.expand(tname, ctx)).strip()
        return child
