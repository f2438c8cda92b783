"""Authenticated Received Chain (ARC, RFC 8617) as Exim 4.96's experimental support
has it: ``verify = arc`` in the DATA ACL (:mod:`pymta.arc.verify`) and the smtp
transport's ``arc_sign`` option (:mod:`pymta.arc.sign`)."""
