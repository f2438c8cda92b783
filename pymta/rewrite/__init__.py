"""Address rewriting (Exim spec chapter 31): the rules of the ``begin rewrite`` section
applied at reception, the S rules at SMTP time, and ``-brw``."""
from pymta.rewrite.engine import Outcome, RewriteLog, Rewriter, split_address
from pymta.rewrite.headers import qualify_domains, rewrite_header_text, rewrite_headers
from pymta.rewrite.rules import Rule, Where, compile_rules, header_where

__all__ = ["Outcome", "RewriteLog", "Rewriter", "Rule", "Where", "compile_rules",
           "header_where", "qualify_domains", "rewrite_header_text", "rewrite_headers",
           "split_address"]
