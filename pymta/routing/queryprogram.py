"""The queryprogram router: run a command and route as its one line of output says
(Exim 4.96 manual, "The queryprogram router").

The command is split into words before each word is expanded, as for the pipe
transport, and no expanded word may be tainted.  It runs in a process group of its own
as ``command_user``/``command_group`` (when pymta may switch ids), in
``current_directory``; after ``timeout`` the group is killed and the message frozen.
The first word of its output is ACCEPT (with TRANSPORT=, HOSTS=, LOOKUP=, DATA=),
DECLINE, FAIL, DEFER, FREEZE, PASS or REDIRECT (followed by the new addresses).
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from typing import Any

from pymta.address import Address, Host
from pymta.config.model import ConfigError
from pymta.drivers import register
from pymta.expand.command import CommandExpansionFailed, CommandTainted, command_argv
from pymta.finduser import getpwnam
from pymta.osutil import become_user_in_child, can_switch_ids, kill_process_group
from pymta.routing import hosts as hostmod
from pymta.routing import listed_hosts
from pymta.routing.base import ACCEPT, DECLINE, DEFER, FAIL, PASS, Router, RouterReply
from pymta.routing.dnslookup import DnssecPolicy
from pymta.routing.options import router_options

MAX_LINE = 1023
_KEYED = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


@register("router", "queryprogram")
class QueryprogramRouter(Router):
    """Route by asking an external command."""

    options = router_options("queryprogram")

    def __init__(self, instance: Any, config: Any):
        super().__init__(instance, config)
        if not self.opt("command"):
            raise ConfigError(f"command must be set for the {self.name} router")
        if self.opt("command_user") is None:
            raise ConfigError(f"command_user must be set for the {self.name} router")

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        try:
            argv = self._argv(ctx)
        except _Refused as e:
            return RouterReply(DEFER, str(e))
        line, problem = self._run(argv)
        if problem:
            return RouterReply(DEFER, problem)
        return self._interpret(addr, line, ctx)

    # -- the command --------------------------------------------------------------
    def _argv(self, ctx: Any) -> list[str]:
        try:
            argv = command_argv(str(self.opt("command")), ctx, f"{self.name} router")
        except (CommandExpansionFailed, CommandTainted) as e:
            raise _Refused(str(e)) from None
        if not argv or not argv[0].startswith("/"):
            raise _Refused(f"{self.name} router: command \"{argv[0] if argv else ''}\" "
                           "is not an absolute path")
        return argv

    def _ids(self) -> tuple[int, int] | None:
        if not can_switch_ids():
            return None          # as Exim: without root the command runs as we are
        user = str(self.opt("command_user"))
        pw = pwd.getpwuid(int(user)) if user.isdigit() else getpwnam(user)
        gid = pw.pw_gid
        group = self.opt("command_group")
        if group is not None:
            group = str(group)
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        return pw.pw_uid, gid

    def _run(self, argv: list[str]) -> tuple[str, str | None]:
        """The command's first output line, or why it gave none (Exim's words)."""
        try:
            ids = self._ids()
        except (KeyError, ValueError) as e:
            return "", f"{self.name} router: unknown command_user or command_group: {e}"
        cwd = str(self.opt("current_directory") or "/")

        def child_setup() -> None:
            become_user_in_child(ids)
            os.chdir(cwd)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, close_fds=True,
                                    preexec_fn=child_setup, env={"PATH": "/bin:/usr/bin"})
        except (OSError, subprocess.SubprocessError) as e:
            return "", (f"{self.name} router: failed to run command {argv[0]}: "
                        f"{getattr(e, 'strerror', None) or e}")
        timeout = int(self.opt("timeout") or 0)
        try:
            out, _ = proc.communicate(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            kill_process_group(proc.pid)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass                # unkillable (another user's): not waited for
            return "", f"{self.name} router: command timed out"
        if proc.returncode > 0:
            return "", f"{self.name} router: command returned non-zero code {proc.returncode}"
        if proc.returncode < 0:
            return "", f"{self.name} router: command killed by signal {-proc.returncode}"
        text = out.decode("utf-8", "replace").strip()
        if not text:
            return "", f"{self.name} router: command failed to return data"
        return text.split("\n", 1)[0][:MAX_LINE].strip(), None

    # -- its answer ------------------------------------------------------------------
    def _interpret(self, addr: Address, line: str, ctx: Any) -> RouterReply:
        word, _, rest = line.partition(" ")
        verb, rest = word.upper(), rest.strip()
        if verb == "DECLINE":
            return RouterReply(DECLINE)
        if verb == "PASS":
            return RouterReply(PASS)
        if verb == "FAIL":
            return RouterReply(FAIL, rest or None)
        if verb in ("DEFER", "FREEZE"):
            return RouterReply(DEFER, rest or f"command deferred in {self.name} router",
                               freeze=verb == "FREEZE")
        if verb == "REDIRECT":
            children = [Address(a.strip(), parent=addr)
                        for a in rest.replace(",", " ").split() if a.strip()]
            if not children:
                return RouterReply(DEFER, f"bad command yield: {line}")
            return RouterReply(ACCEPT, children=children)
        if verb != "ACCEPT":
            return RouterReply(DEFER, f"bad command yield: {line}")
        keyed = {k.lower(): v[1:-1].replace('\\"', '"') if v.startswith('"') else v
                 for k, v in _KEYED.findall(rest)}
        addr.transport = keyed.get("transport") or self.transport_name(ctx)
        if not addr.transport:
            return RouterReply(DEFER, f"{self.name} router: no transport set")
        if "data" in keyed:
            addr.address_data = keyed["data"]
        if keyed.get("hosts"):
            method = "bydns" if keyed.get("lookup", "").lower() == "bydns" else "byname"
            try:
                addr.hosts = self._hosts(keyed["hosts"], method,
                                         listed_hosts.router_policy(self, ctx))
            except listed_hosts.InsecureHostLookup as e:
                return RouterReply(DEFER, str(e))
            except hostmod.HostLookupDefer as e:
                return RouterReply(DEFER, str(e) or "host lookup did not complete")
            except (hostmod.HostNotFound, ValueError) as e:
                return RouterReply(DEFER, f"lookup of host failed in {self.name} router: {e}")
        return RouterReply(ACCEPT)

    @staticmethod
    def _hosts(text: str, method: str, dnssec: DnssecPolicy) -> list[Host]:
        hosts: list[Host] = []
        for name, port, is_mx in hostmod.parse_host_list(text):
            hosts += listed_hosts.find(name, port, is_mx, method, dnssec)
        return hosts


class _Refused(Exception):
    """The command cannot be run (expansion failure, taint, relative path)."""
