"""An :class:`~pymta.auth.expander.Expander` on pymta's string expansion."""
from __future__ import annotations

from collections.abc import Mapping

from pymta.expand import ExpandContext, ExpandError, ExpandFail, expand_string
from pymta.taint import taint

from .expander import ExpansionError, ExpansionForcedFail


class ContextExpander:
    """Expand authenticator options in a copy of ``ctx`` with the auth variables added.

    Values from the client ($auth1..) are tainted.  $auth<n> are also set as $1.. for
    compatibility with old configurations, as Exim does.
    """

    def __init__(self, ctx: ExpandContext):
        self.ctx = ctx

    def __call__(self, text: str, variables: Mapping[str, str]) -> str:
        child = self.ctx.child(**{k: taint(v) for k, v in variables.items()})
        numbered = [variables.get(f"auth{i}", "") for i in range(1, 4)]
        if any(numbered):
            child.numbered = [""] + [taint(v) for v in numbered]
        try:
            return expand_string(text, child)
        except ExpandFail as e:
            raise ExpansionForcedFail(str(e)) from None
        except ExpandError as e:
            raise ExpansionError(str(e)) from None
