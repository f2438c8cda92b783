"""The message as the spam and malware scanners see it: an mbox-style ``.eml`` file.

Exim writes ``<spool_directory>/scan/<id>/<id>.eml`` the first time a scanner needs the
message and reuses it for every later scan of the same message; the directory goes when
the DATA ACL is over (unless ``control = no_mbox_unspool``), which
:meth:`~pymta.acl.content.ContentScan.cleanup` does.  The file is a "From " line, the
envelope as ``X-Envelope-From:`` and ``X-Envelope-To:`` lines, the header lines, a blank
line and the body, so scores and signatures match what Exim's scanners are given.
"""
from __future__ import annotations

import os
import time

from pymta.acl.content import ContentScan
from pymta.acl.scanconn import ScanDefer


def mbox_path(scan: ContentScan) -> str:
    return os.path.join(scan.scan_dir, f"{scan.message_id}.eml")


def spool_mbox(scan: ContentScan, sender: str, recipients: str) -> tuple[str, int]:
    """Write the .eml file once per message; its path and size."""
    if scan.mbox is not None and os.path.exists(scan.mbox[0]):
        return scan.mbox
    path = mbox_path(scan)
    stamp = time.strftime("%a %b %d %H:%M:%S %Y")     # $tod_bsdinbox
    head = [f"From MAILER-DAEMON {stamp}\n"]
    if sender:
        head.append(f"X-Envelope-From: <{sender}>\n")
    if recipients:
        head.append(f"X-Envelope-To: {recipients}\n")
    head.extend(h if h.endswith("\n") else h + "\n" for h in scan.headers)
    head.append("\n")
    try:
        os.makedirs(scan.scan_dir, mode=0o750, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write("".join(head).encode("utf-8", "surrogateescape"))
            if scan.write_body is not None:
                scan.write_body(fh)
            else:
                fh.write(scan.body)
            size = fh.tell()
    except OSError as exc:
        raise ScanDefer(f"error while creating mbox spool file: {exc}") from exc
    scan.mbox = (path, size)
    return scan.mbox
