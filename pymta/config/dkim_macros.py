"""Exim's builtin macros for DKIM signing, which pymta defines too.

``_DKIM_SIGN_HEADERS`` is the default of the smtp transport's dkim_sign_headers (the
header fields RFC 4871 lists), ``_DKIM_OVERSIGN_HEADERS`` the same names each with the
"+" prefix, and ``_CRYPTO_SIGN_ED25519`` says Ed25519 keys can sign (values as
``exim4 -bP macro NAME`` shows them for Exim 4.96).
"""
from __future__ import annotations

DKIM_SIGN_HEADERS = (
    "From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:"
    "Content-Transfer-Encoding:Content-ID:Content-Description:Resent-Date:Resent-From:"
    "Resent-Sender:Resent-To:Resent-Cc:Resent-Message-ID:In-Reply-To:References:List-Id:"
    "List-Help:List-Unsubscribe:List-Subscribe:List-Post:List-Owner:List-Archive")

DKIM_MACROS = {
    "_DKIM_SIGN_HEADERS": DKIM_SIGN_HEADERS,
    "_DKIM_OVERSIGN_HEADERS": ":".join("+" + n for n in DKIM_SIGN_HEADERS.split(":")),
    "_CRYPTO_SIGN_ED25519": "y",
}
