"""Access control lists: :func:`run_acl` and :class:`AclResult` (spec chapter 44)."""
from pymta.acl.engine import (
                              KNOWN_CONTROLS,
                              AclResult,
                              acl_is_unset_default,
                              acl_smtp_reply,
                              find_acl,
                              run_acl,
                              split_code,
)
from pymta.acl.parse import parse_acl_text

__all__ = ["AclResult", "KNOWN_CONTROLS", "acl_is_unset_default", "acl_smtp_reply",
           "find_acl", "parse_acl_text", "run_acl", "split_code"]
