"""SMTP authentication (RFC 4954) as a sans-IO library: SASL mechanisms and Exim's
authenticator drivers.

Layers, each usable alone:

* :mod:`pymta.auth.results` -- what one step of an exchange produces (a :class:`Challenge`
  to send as ``334 <base64>`` or a final :class:`AuthResult` with Exim's reply text), the
  decoding of client responses with Exim's rules, and the failure log line.
* :mod:`pymta.auth.expander` -- the :class:`Expander` protocol through which drivers expand
  their options (so this package does not depend on the SMTP code) and Exim's rules for
  ``server_condition``; :mod:`pymta.auth.expand_adapter` implements it on
  :mod:`pymta.expand`.
* Mechanisms and drivers: :mod:`~pymta.auth.plaintext` (PLAIN, LOGIN), :mod:`~pymta.auth.cram_md5`,
  :mod:`~pymta.auth.scram` (SCRAM-SHA-1/-256, Exim's ``gsasl`` driver subset),
  :mod:`~pymta.auth.external`, :mod:`~pymta.auth.dovecot` (Dovecot auth protocol client).
* :mod:`pymta.auth.registry` -- driver classes by Exim driver name.

Responses are passed to the server exchanges exactly as the client sent them (base64 text
without the CRLF); decoding, ``*`` cancellation and the length limit are handled here so
that every driver answers malformed input the way Exim does.

Not yet wired into SMTP: the configuration reader does not consult
:mod:`pymta.auth.registry`, and ``begin authenticators`` stays refused by
:mod:`pymta.config.unsupported` until the SMTP session drives these exchanges.
"""
