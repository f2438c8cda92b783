"""Less common expansion items: prvs/prvscheck (BATV), readsocket, imapfolder, srs."""
from __future__ import annotations

import hashlib
import hmac
import re
import socket
import time
from typing import Any

from .bytesutil import from_bytes, to_bytes
from .errors import ExpandError, ExpandFail
from .evaluator import _Scoped, evaluate


def _prvs_day(offset: int = 7) -> str:
    return "%03d" % ((int(time.time()) // 86400 + offset) % 1000)


def _prvs_hash(address: str, secret: str, key: str, day: str) -> str:
    return hmac.new(to_bytes(secret), to_bytes(key + day + address),
                    hashlib.sha1).hexdigest()[:6]


def item_prvs(node: Any, ctx: Any) -> str:
    """``${prvs{address}{secret}{keynumber}}``: a BATV-signed address."""
    if len(node.args) < 2:
        raise ExpandError("missing argument for \"prvs\"")
    address = evaluate(node.args[0], ctx)
    secret = evaluate(node.args[1], ctx)
    key = evaluate(node.args[2], ctx).strip() if len(node.args) > 2 else "0"
    key = key or "0"
    if not re.fullmatch(r"\d", key):
        raise ExpandError("prvs key number must be a single digit")
    if "@" not in address:
        raise ExpandError("prvs first argument must be a qualified email address")
    day = _prvs_day()
    local, _, domain = address.rpartition("@")
    return f"prvs={key}{day}{_prvs_hash(address, secret, key, day)}={local}@{domain}"


_PRVS_RE = re.compile(r"^prvs=(\d)(\d{3})([A-Fa-f0-9]{6})=(.+)@([^@]+)$", re.IGNORECASE)


def item_prvscheck(node: Any, ctx: Any) -> str:
    """``${prvscheck{address}{secret}{string}}``; sets $prvscheck_result."""
    if len(node.args) < 2:
        raise ExpandError("missing argument for \"prvscheck\"")
    address = evaluate(node.args[0], ctx)
    m = _PRVS_RE.match(address)
    if not m:
        return ""
    key, day, sig, local, domain = m.groups()
    plain = f"{local}@{domain}"
    with _Scoped(ctx, prvscheck_address=plain, prvscheck_keynum=key):
        secret = evaluate(node.args[1], ctx)
        ok = hmac.compare_digest(_prvs_hash(plain, secret, key, day), sig.lower())
        if ok:
            today = int(time.time()) // 86400 % 1000
            ok = (int(day) - today) % 1000 <= 7     # not expired (days wrap at 1000)
        ctx.variables["prvscheck_result"] = "1" if ok else ""
        result = evaluate(node.args[2], ctx) if len(node.args) > 2 else ""
    return result or plain


def item_readsocket(node: Any, ctx: Any) -> str:
    """``${readsocket{name}{request}{options}{eol}{fail}}`` over a Unix or TCP socket."""
    if len(node.args) < 2:
        raise ExpandError("missing argument for \"readsocket\"")
    name = evaluate(node.args[0], ctx)
    request = evaluate(node.args[1], ctx)
    timeout = 5.0
    shutdown = True
    if len(node.args) > 2:
        from .operators import readconf_time
        for opt in evaluate(node.args[2], ctx).split(","):
            opt = opt.strip()
            if opt.startswith("shutdown="):
                shutdown = opt[9:] != "no"
            elif opt.startswith("tls="):
                pass
            elif opt:
                t = readconf_time(opt[8:] if opt.startswith("timeout=") else opt)
                if t is None:
                    raise ExpandError(f"bad time value {opt}")
                timeout = float(t)
    eol = evaluate(node.args[3], ctx) if len(node.args) > 3 else None
    try:
        if name.startswith("inet:"):
            hostport = name[5:]
            if hostport.startswith("["):
                host, _, port = hostport[1:].partition("]:")
            else:
                host, _, port = hostport.rpartition(":")
            port_n = int(port) if port.isdigit() else socket.getservbyname(port, "tcp")
            sock = socket.create_connection((host, port_n), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(name)
        with sock:
            if request:
                sock.sendall(to_bytes(request))
            if shutdown:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except (OSError, ValueError) as e:
        if len(node.args) > 4:
            return evaluate(node.args[4], ctx)
        if node.fail:
            raise ExpandFail(f"failed to connect to socket {name}: {e}") from None
        raise ExpandError(f"failed to connect to socket {name}: {e}") from None
    text = from_bytes(b"".join(chunks))
    if eol is not None:
        text = text.replace("\n", eol)
    return text


def _mutf7(text: str) -> str:
    """IMAP modified UTF-7 for the non-ASCII runs of ``text``."""
    import base64
    out = []
    run: list[str] = []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in text:
        if 0x20 <= ord(ch) < 0x7F:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def item_imapfolder(node: Any, ctx: Any) -> str:
    """``${imapfolder{name}{sep}{specials}}``: a mailbox name in IMAP's encoding."""
    if not node.args:
        raise ExpandError("missing argument for \"imapfolder\"")
    name = evaluate(node.args[0], ctx)
    sep = evaluate(node.args[1], ctx) if len(node.args) > 1 else "."
    specials = evaluate(node.args[2], ctx) if len(node.args) > 2 else ""
    sep = sep[:1] or "."
    # '/' is the hierarchy separator in the input; it becomes sep.  Characters that
    # are the separator (or listed specials) inside names are encoded.
    parts = name.split("/")
    enc_chars = set(specials) | {sep}
    out = []
    for part in parts:
        buf = []
        for ch in part:
            buf.append(ch if ch not in enc_chars or ch == "/" else "\0" + ch)
        encoded = []
        run: list[str] = []
        for ch in "".join(buf).replace("\0", ""):
            encoded.append(ch)
        s = "".join(encoded)
        out.append(_mutf7_special(s, enc_chars - {"/"} if sep != "/" else enc_chars))
    joined = sep.join(out)
    return joined


def _mutf7_special(text: str, specials: set) -> str:
    import base64
    out = []
    run: list[str] = []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in text:
        if 0x20 <= ord(ch) < 0x7F and ch not in specials:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)
