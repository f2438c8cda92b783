"""The smtp transport's tls_dh_min_bits: a server whose Diffie-Hellman prime is shorter
fails the TLS session (a defer under hosts_require_tls), one at least as long is
used.  The server offers only DHE key exchange over TLS 1.2, with RFC 3526's 2048-bit
group 14.

Exim documents the option for its GnuTLS builds only; Debian's exim4 4.96 (GnuTLS 3.7)
delivered to this server with tls_dh_min_bits = 3072 all the same, since GnuTLS's own
security level now decides (see tests/data/dh_min_bits/README.md).  pymta does what the
manual says the option is for."""
from __future__ import annotations

import re
import ssl

import pytest

from pymta.tls.dhprimes import named_dh_pem
from tests.support import certs
from tests.support.daemon import PymtaDaemon
from tests.support.relayconf import relay_config
from tests.support.sink import SmtpSink

CONFIG = relay_config("  hosts_require_tls = *\n  tls_dh_min_bits = MIN_BITS")


def _dhe_only_server(tmp_path) -> ssl.SSLContext:
    files = certs.make_cert(tmp_path, "sink.test")
    ctx = certs.server_context(files)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256")
    dh = tmp_path / "ike14.pem"
    dh.write_bytes(named_dh_pem("ike14"))
    ctx.load_dh_params(str(dh))
    return ctx


@pytest.mark.parametrize("min_bits, delivered", [(2048, True), (3072, False)])
def test_dh_prime_shorter_than_tls_dh_min_bits_fails_tls(tmp_path, min_bits, delivered):
    with SmtpSink(tls_context=_dhe_only_server(tmp_path)) as sink:
        d = PymtaDaemon(CONFIG, tmp_path / "pymta",
                        macros={"SINK_PORT": str(sink.port), "MIN_BITS": str(min_bits)})
        d.prepare()
        d.run("-odi", "-f", "a@test.example", "u@remote.example", input=b"\nbody\n")
        log = d.log()
        if delivered:
            assert len(sink.messages) == 1
            assert re.search(r" => u@remote\.example .* X=TLS1\.2:DHE-RSA-AES128-GCM-SHA256:"
                             r"128 ", log), log
        else:
            assert sink.messages == []
            assert ("TLS session: (SSL_connect): the Diffie-Hellman prime sent by the "
                    "server is not acceptable (not long enough): 2048 bits, "
                    "tls_dh_min_bits is 3072") in log, log
            assert re.search(r" == u@remote\.example R=remote T=remote_smtp defer "
                             r"\(-37\)", log), log
