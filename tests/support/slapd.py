"""A private OpenLDAP server (Debian's slapd) for the ldap lookup tests.

:func:`private_slapd` starts ``slapd`` in a temporary directory with an mdb database
for ``dc=test,dc=example`` loaded by ``slapadd`` from :data:`DIRECTORY`, listening on
ldap:// and ldaps:// on ephemeral loopback ports and on an ldapi:// Unix socket.  The
certificate is made at test time.  The manager DN is ``cn=manager,dc=test,dc=example``
with password ``secret``; the users' passwords are in :data:`DIRECTORY`.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.support.certs import make_cert
from tests.support.ports import free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=test,dc=example"
MANAGER = f"cn=manager,{SUFFIX}"
MANAGER_PASSWORD = "secret"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {d}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
sizelimit unlimited
database mdb
suffix "{suffix}"
rootdn "{manager}"
rootpw {password}
directory {d}/db
maxsize 10485760
access to attrs=userPassword
  by anonymous auth
  by * none
access to * by * read
"""

#: The directory's entries.  ``alice`` has two mail addresses (one with a comma), a
#: ``description`` with a quote and a backslash; two entries share ``ou=sales``.
DIRECTORY = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Test
dc: test

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@test.example
mail: alice,wonder@test.example
description: says "hello" \\ bye
departmentNumber: sales
userPassword: wonderland

dn: uid=bob,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@test.example
departmentNumber: sales
userPassword: canwefixit

dn: uid=carol (admin),ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: carol (admin)
cn: Carol*Star
sn: Star
mail: carol@test.example

dn: uid=nomail,ou=people,{SUFFIX}
objectClass: account
uid: nomail
"""


@dataclass
class Slapd:
    """A running private slapd."""

    directory: str
    port: int
    tls_port: int
    socket_path: str
    ca_file: str
    log_path: str

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def connections(self) -> int:
        """How many connections the server has accepted so far."""
        with open(self.log_path, errors="replace") as f:
            return sum(1 for line in f if " ACCEPT from " in line)

    @property
    def ldapi_host(self) -> str:
        """The socket path as an ldapi:// URL writes it (slashes as %2F)."""
        return urllib.parse.quote(self.socket_path, safe="")


def _wait_port(port: int, proc: subprocess.Popen, log_path: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise RuntimeError(f"slapd exited: {f.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("slapd did not start listening")


@contextmanager
def private_slapd() -> Iterator[Slapd]:
    """Start slapd for the duration of the block (skips the test when not installed)."""
    if not (os.access(SLAPD, os.X_OK) and os.access(SLAPADD, os.X_OK)):
        pytest.skip("slapd is not installed (Debian package slapd)")
    d = tempfile.mkdtemp(prefix="pymta-slapd-")
    os.chmod(d, 0o755)
    try:
        os.mkdir(os.path.join(d, "db"))
        certs = make_cert(d, "ldap.test.example")
        conf = os.path.join(d, "slapd.conf")
        with open(conf, "w") as f:
            f.write(SLAPD_CONF.format(d=d, cert=certs.cert, key=certs.key, suffix=SUFFIX,
                                      manager=MANAGER, password=MANAGER_PASSWORD))
        ldif = os.path.join(d, "directory.ldif")
        with open(ldif, "w") as f:
            f.write(DIRECTORY)
        subprocess.run([SLAPADD, "-f", conf, "-l", ldif], check=True,
                       capture_output=True)
        port, tls_port = free_port(), free_port()
        sock_path = os.path.join(d, "ldapi")
        urls = (f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/ "
                f"ldapi://{urllib.parse.quote(sock_path, safe='')}/")
        log_path = os.path.join(d, "slapd.log")
        with open(log_path, "wb") as log:
            # -d 256 (stats): stay in the foreground, a child of the test, and log each
            # connection and operation (the tests count connections)
            proc = subprocess.Popen([SLAPD, "-f", conf, "-h", urls, "-d", "256"],
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_port(port, proc, log_path)
            _wait_port(tls_port, proc, log_path)
            yield Slapd(d, port, tls_port, sock_path, certs.ca, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    finally:
        shutil.rmtree(d, ignore_errors=True)
