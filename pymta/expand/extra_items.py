"""Less common expansion items: prvs/prvscheck (BATV), readsocket, imapfolder, srs,
certextract."""
from __future__ import annotations

import hashlib
import hmac
import re
import socket
from typing import Any

from ..clock import day_number
from ..taint import is_tainted, taint
from ..tls.certinfo import certextract, load_pem_text
from ..tls.errors import TLSConfigError
from .bytesutil import from_bytes, to_bytes
from .errors import ExpandError, ExpandFail
from .evaluator import _Scoped, _yes_no, evaluate
from .operators import parse_address
from .parser import Item, Var, missing_arg, not_enough


def _prvs_day(today: int, offset: int = 7) -> str:
    """The BATV day stamp: the last three digits of the day number ``offset`` days on."""
    return "%03d" % ((today + offset) % 1000)


def _prvs_hash(address: str, secret: str, key: str, day: str) -> str:
    return hmac.new(to_bytes(secret), to_bytes(key + day + address),
                    hashlib.sha1).hexdigest()[:6]


def item_prvs(node: Any, ctx: Any) -> str:
    """``${prvs{address}{secret}{keynumber}}``: a BATV-signed address."""
    if len(node.args) < 2:
        raise ExpandError(not_enough("prvs"))
    address = evaluate(node.args[0], ctx)
    secret = evaluate(node.args[1], ctx)
    key = evaluate(node.args[2], ctx).strip() if len(node.args) > 2 else "0"
    key = key or "0"
    if not re.fullmatch(r"\d", key):
        raise ExpandError("prvs third argument must be a single digit")
    if "@" not in address:
        raise ExpandError("prvs first argument must be a qualified email address")
    day = _prvs_day(day_number(ctx.clock))
    local, _, domain = address.rpartition("@")
    return f"prvs={key}{day}{_prvs_hash(address, secret, key, day)}={local}@{domain}"


_PRVS_RE = re.compile(r"^prvs=(\d)(\d{3})([A-Fa-f0-9]{6})=(.+)@([^@]+)$", re.IGNORECASE)


def item_prvscheck(node: Any, ctx: Any) -> str:
    """``${prvscheck{address}{secret}{string}}``; sets $prvscheck_result."""
    if len(node.args) < 2:
        raise ExpandError(not_enough("prvscheck"))
    address = evaluate(node.args[0], ctx)
    m = _PRVS_RE.match(address)
    if len(node.args) > 3 or node.fail:
        # Exim counts what follows a prvs address's secret, else the two it skips
        raise ExpandError(f"Too many arguments for 'prvscheck' (max is {1 if m else 2})")
    if not m:
        return ""
    key, day, sig, local, domain = m.groups()
    plain = f"{local}@{domain}"
    with _Scoped(ctx, prvscheck_address=plain, prvscheck_keynum=key):
        secret = evaluate(node.args[1], ctx)
        ok = hmac.compare_digest(to_bytes(_prvs_hash(plain, secret, key, day)),
                                 to_bytes(sig.lower()))
        if ok:
            today = day_number(ctx.clock) % 1000
            ok = (int(day) - today) % 1000 <= 7     # not expired (days wrap at 1000)
        ctx.variables["prvscheck_result"] = "1" if ok else ""
        result = evaluate(node.args[2], ctx) if len(node.args) > 2 else ""
    return result or plain


def item_readsocket(node: Any, ctx: Any) -> str:
    """``${readsocket{name}{request}{options}{eol}{fail}}`` over a Unix or TCP socket."""
    if len(node.args) < 2:
        raise ExpandError(not_enough("readsocket"))
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
                # Exim 4.96 goes on with an option it cannot read (checked with exim4)
                t = readconf_time(opt[8:] if opt.startswith("timeout=") else opt)
                if t is not None:
                    timeout = float(t)
    eol = evaluate(node.args[3], ctx) if len(node.args) > 3 else None
    from ..taint import is_tainted
    if is_tainted(name):        # Exim 4.96 opens the socket through its search code
        raise ExpandError(f"Tainted '{name}' (socket name for readsocket) not permitted")
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
        why = (e.strerror if isinstance(e, OSError) else None) or e     # as strerror() words it
        if len(node.args) > 4:
            return evaluate(node.args[4], ctx)
        if node.fail:
            raise ExpandFail(f"failed to connect to socket {name}: {why}") from None
        raise ExpandError(f"failed to connect to socket {name}: {why}") from None
    text = from_bytes(b"".join(chunks))
    if eol is not None:
        text = text.replace("\n", eol)
    return text


def _mutf7(text: str, encode: set) -> str:
    """IMAP modified UTF-7 (RFC 2060), also encoding the characters in ``encode``."""
    import base64
    out: list[str] = []
    run: list[str] = []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in text:
        if 0x20 <= ord(ch) < 0x7F and ch not in encode:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def item_imapfolder(node: Any, ctx: Any) -> str:
    """``${imapfolder{name}{sep}{specials}}``: a Maildir folder name (Courier style).

    ``sep`` (default "/") becomes "."; other dots and slashes, and the ``specials``,
    are encoded like non-ASCII characters.
    """
    if not node.args:
        raise ExpandError(not_enough("imapfolder"))
    name = evaluate(node.args[0], ctx)
    sep = evaluate(node.args[1], ctx) if len(node.args) > 1 else "/"
    specials = evaluate(node.args[2], ctx) if len(node.args) > 2 else ""
    if len(sep) != 1:
        raise ExpandError(f"IMAP folder separator must be one character, found \"{sep}\"")
    # as Exim 4.96: the one of "." and "/" that is not the separator may not appear
    if sep != "." and "." in name and "." not in specials:
        raise ExpandError("imapfolder: illegal character '.'")
    if sep == "." and "/" in name and "/" not in specials:
        raise ExpandError("imapfolder: illegal character '/'")
    encode = ({".", "/"} - {sep}) | set(specials)
    if sep == ".":
        encode.discard(".")
    return ".".join(_mutf7(part, encode) for part in name.split(sep))


# -- SRS (sender rewriting scheme, Exim's SRS0 format) ---------------------------------

_B32_SRS = "abcdefghijklmnopqrstuvwxyz234567"


def _srs_timestamp(day: int) -> str:
    """SRS's two-letter time stamp: the day number modulo 1024 in base 32."""
    d = day % 1024
    return _B32_SRS[d >> 5] + _B32_SRS[d & 31]


def _srs_hash(secret: str, address: str) -> str:
    return hmac.new(to_bytes(secret), to_bytes(address.lower()), hashlib.md5).hexdigest()[:4]


def item_srs_encode(node: Any, ctx: Any) -> str:
    """``${srs_encode{secret}{return path}{original domain}}`` -> SRS0=HHHH=TT=dom=lp@orig."""
    if len(node.args) < 3:
        raise ExpandError(not_enough("srs_encode"))
    secret, path, orig = (evaluate(a, ctx) for a in node.args[:3])
    if not path:
        return ""
    # The address is parsed as Exim parses one (brackets, phrase and comments go; no
    # domain is allowed); the signature covers the text as given, as in exim4 4.96.
    if not path.strip():
        raise ExpandError("empty address")
    bare = parse_address(path)
    if not bare:
        local, at, domain = path.strip().rpartition("@")
        if bare == "" or path.strip().startswith("<"):
            raise ExpandError("missing or malformed local part")
        if at and not local:
            raise ExpandError("no local part")
        if at and not domain:
            raise ExpandError("domain missing or malformed")
        raise ExpandError(f"bad address \"{path}\" for srs_encode")
    local, at, domain = bare.rpartition("@")
    if not at:
        local, domain = bare, ""
    stamp = _srs_timestamp(day_number(ctx.clock))
    return f"SRS0={_srs_hash(secret, path)}={stamp}={domain}={local}@{orig}"


_SRS_RE = re.compile(r"^SRS0=([0-9a-fA-F]{4})=([a-z2-7]{2})=([^=]+)=(.+)$", re.IGNORECASE)


def cond_inbound_srs(local_part: str, secret: str, ctx: Any) -> bool:
    """``inbound_srs{local part}{secret}``: decode (and, with a secret, verify) an SRS0
    local part; sets ``$srs_recipient``."""
    m = _SRS_RE.match(local_part)
    if not m:
        return False
    sig, ts, domain, local = m.groups()
    recipient = f"{local}@{domain}"
    if secret:
        if not hmac.compare_digest(to_bytes(_srs_hash(secret, recipient)),
                                   to_bytes(sig.lower())):
            return False
        t = _B32_SRS.index(ts[0].lower()) * 32 + _B32_SRS.index(ts[1].lower())
        age = (day_number(ctx.clock) - t) % 1024
        if age > 31:            # stale signature
            return False
    ctx.variables["srs_recipient"] = recipient
    return True


#: Where the checks of a message leave their parts of ${authresults}, in the order
#: they are shown (the colon keeps these names out of reach of ``$name``): the SPF
#: and DMARC conditions, DKIM verification, ``verify = arc``, and a successful AUTH.
AUTHRES_SPF = "authres:spf"
AUTHRES_DKIM = "authres:dkim"
AUTHRES_DMARC = "authres:dmarc"
AUTHRES_ARC = "authres:arc"
AUTHRES_AUTH = "authres:auth"
_AUTHRES_CHECKS = (AUTHRES_SPF, AUTHRES_DKIM, AUTHRES_DMARC, AUTHRES_ARC)


def _authres_auth(v: dict[str, Any]) -> str:
    """The auth part: the mechanism (the authenticator's public name, which the AUTH
    glue leaves in AUTHRES_AUTH) and the id."""
    mechanism = v.get(AUTHRES_AUTH) or v.get("sender_host_authenticated") or ""
    ident = v.get("authenticated_id") or ""
    part = f";\n\tauth=pass ({mechanism}"
    if mechanism.lower() == "tls":
        part += f") x509.auth={ident}" if ident else ") reason=x509.auth"
    else:
        part += f") smtp.auth={ident}" if ident else ", no id saved)"
    sender = v.get("authenticated_sender")
    return part + (f" smtp.mailfrom={sender}" if sender else "")


def _authres_iprev(v: dict[str, Any]) -> str:
    """The iprev part: how the client's host name lookup went (nothing if none was
    tried)."""
    if v.get("sender_host_name"):
        part = f";\n\tiprev=pass ({v['sender_host_name']})"
    elif v.get("host_lookup_deferred") == "1":
        part = ";\n\tiprev=temperror"
    elif v.get("host_lookup_failed") == "1":
        part = ";\n\tiprev=fail"
    else:
        return ""
    address = v.get("sender_host_address")
    return part + (f" smtp.remote-ip={address}" if address else "")


def item_authresults(node: Any, ctx: Any) -> str:
    """``${authresults{authserv-id}}``: the start of an Authentication-Results: header.

    The header name and the server id, then as Exim 4.96: iprev (the host name
    lookup), auth (SMTP AUTH), and the results of the checks the message has had:
    spf, dkim, dmarc, arc.  Nothing but the id when there is nothing to say.
    """
    if not node.args:
        raise ExpandError(not_enough("authresults"))
    v = ctx.variables
    parts = ["Authentication-Results: " + evaluate(node.args[0], ctx), _authres_iprev(v)]
    if v.get("sender_host_authenticated"):
        parts.append(_authres_auth(v))
    parts += [v.get(key) or "" for key in _AUTHRES_CHECKS]
    text = "".join(parts)
    return taint(text) if any(is_tainted(p) for p in parts) else text


_CERT_VARIABLES = frozenset({"tls_in_ourcert", "tls_in_peercert", "tls_out_ourcert",
                             "tls_out_peercert"})


def item_certextract(node: Any, ctx: Any) -> str:
    """``${certextract{field}{$tls_in_peercert}{yes}{no}}``: a field of a certificate
    ($value in yes/no; the field itself without them)."""
    if len(node.args) < 2:
        raise ExpandError(missing_arg("certextract", len(node.args)) or "")
    field = evaluate(node.args[0], ctx)
    parts = node.args[1].parts
    if len(parts) == 1 and isinstance(parts[0], Var) and parts[0].name not in _CERT_VARIABLES:
        # Exim looks the name up: only its certificate variables will do
        from .variables import lookup_variable
        name = parts[0].name
        raise ExpandError(f"\"{name}\" is not a certificate"
                          if lookup_variable(name, ctx) is not None
                          else f"no variable named \"{name}\"")
    text = evaluate(node.args[1], ctx)
    cert = load_pem_text(str(text)) if text else None
    value = None
    if cert is not None:
        try:
            value = certextract(str(field), cert)
        except TLSConfigError as e:
            raise ExpandError(str(e)) from None
    tail = Item("certextract", [], node.args[2] if len(node.args) > 2 else None,
                node.args[3] if len(node.args) > 3 else None, node.fail)
    return _yes_no(tail, ctx, value is not None, value, "certextract")
