"""Builtin macros and -bV's "Support for:" line (pymta/features.py)."""
from __future__ import annotations

from pymta.config.reader import load_config
from pymta.features import builtin_macros, support_words


def test_macros_for_what_pymta_has_and_none_for_what_it_refuses():
    macros = builtin_macros()
    for name in ("_HAVE_SPF", "_HAVE_TLS", "_HAVE_OPENSSL", "_HAVE_DKIM", "_HAVE_SOCKS",
                 "_HAVE_LOOKUP_LSEARCH", "_HAVE_LOOKUP_MYSQL", "_HAVE_MALWARE_CLAMD",
                 "_DRIVER_ROUTER_DNSLOOKUP", "_DRIVER_TRANSPORT_SMTP",
                 "_DRIVER_AUTHENTICATOR_PLAINTEXT", "_LOG_SMTP_CONNECTION", "_LOG_ALL",
                 "_ACL_COND_SPF", "_ACL_MOD_ADD_HEADER",
                 "_OPT_MAIN_SMTPUTF8_ADVERTISE_HOSTS", "_OPT_ROUTERS_DOMAINS",
                 "_OPT_TRANSPORTS_HEADERS_ADD", "_OPT_AUTHENTICATORS_PUBLIC_NAME",
                 "_OPT_TRANSPORT_SMTP_HOSTS_REQUIRE_TLS", "_OPT_ROUTER_REDIRECT_DATA",
                 "_OPT_AUTHENTICATOR_PLAINTEXT_CLIENT_SEND"):
        assert macros.get(name) == "y", name
    # what pymta refuses: an Exim build without it
    for name in ("_HAVE_PERL", "_HAVE_GNUTLS", "_DRIVER_AUTHENTICATOR_SPA",
                 "_OPT_MAIN_PERL_STARTUP", "_OPT_TRANSPORT_APPENDFILE_MBX_FORMAT",
                 "_HAVE_TRANSPORT_APPEND_MBX", "_HAVE_MALWARE_SOPHIE"):
        assert name not in macros, name
    assert macros["_DKIM_SIGN_HEADERS"].startswith("From:Sender:")
    assert "SPF" in support_words() and "OpenSSL" in support_words()


def test_ifdef_sees_them(tmp_path):
    conf = tmp_path / "conf"
    conf.write_text(".ifdef _HAVE_SPF\nqualify_domain = spf.example\n.endif\n"
                    ".ifdef _HAVE_PERL\nprimary_hostname = perl.example\n.endif\n")
    config = load_config(str(conf), None, builtin_macros())
    assert config.main.qualify_domain == "spf.example"
    assert config.main.primary_hostname != "perl.example"
