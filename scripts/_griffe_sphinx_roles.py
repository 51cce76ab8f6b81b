"""A griffe extension for the docs site (mkdocs.yml): Sphinx roles in docstrings become code.

The docstrings are Sphinx-style and name other objects with roles (:class:`EtelecomClient`), which
Markdown would show literally, colons and all. This turns each role into inline code
(`EtelecomClient`; ``~a.b.C`` shows as `C`, as Sphinx would). Loaded by mkdocstrings from
./scripts/docs only; the package never imports it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:attr|class|data|exc|func|meth|mod|obj|const):`([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    target = match.group(1)
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the object tree is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_as_code, obj.docstring.value)
