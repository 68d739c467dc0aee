"""Griffe extension: turn the Sphinx roles in snnjax's docstrings into API links.

The docstrings are Google style with reST-flavoured cross-references
(``:class:`~snnjax.neuron.LIFState```, ``:func:`load_images```, ``:meth:`Rule.plan```).
mkdocstrings renders Markdown, where those would show as raw text. Once the package is
loaded, each role is resolved the way Python resolves the name (the object itself, then its
enclosing class, module and packages; dotted names from the package root) and replaced by an
optional mkdocs-autorefs reference: a link where the target is rendered in the API reference,
plain code where it is not (a private helper, a module left out of the reference, ``jax``).
``~`` keeps the last component as the title, as in Sphinx.

Loaded by mkdocstrings (``extensions:`` in mkdocs.yml); it lives under ``docs/_ext/``, which
``exclude_docs`` keeps out of the site.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(class|func|meth|mod|attr|data|obj|exc):`(~?)([\w.]+)`")
_CALLABLE_ROLES = {"class", "func", "meth", "exc"}


def _lookup(scope: griffe.Object, dotted: str) -> Any:
    try:
        return scope[dotted]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _final(obj: Any) -> Any:
    """An alias's target (None when it cannot be resolved)."""
    if obj is None:
        return None
    try:
        return obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _resolve(obj: griffe.Object, role: str, name: str, root: griffe.Module) -> str | None:
    """The canonical path of ``name`` as seen from ``obj``, or None."""
    scopes: list[griffe.Object] = []
    if name.split(".")[0] == root.name:
        scopes.append(root)
        name = name.split(".", 1)[1] if "." in name else ""
    else:
        scope: Any = obj
        while scope is not None:
            if not scope.is_function:
                scopes.append(scope)
            scope = scope.parent
    for scope in scopes:
        found = _final(_lookup(scope, name)) if name else scope
        if found is None:
            continue
        # `from pkg.mod import mod as mod` shadows a submodule with a callable of its name:
        # a :func: or :class: role means the callable.
        if found.is_module and role in _CALLABLE_ROLES:
            inner = _final(_lookup(found, name.rsplit(".", 1)[-1]))
            if inner is not None and not inner.is_module:
                found = inner
        return found.path
    return None


def _rewrite(obj: griffe.Object, text: str, root: griffe.Module) -> str:
    def replace(m: re.Match) -> str:
        role, tilde, name = m.groups()
        title = name.rsplit(".", 1)[-1] if tilde else name
        path = _resolve(obj, role, name, root)
        if path is None:
            return f"`{title}`"
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return _ROLE.sub(replace, text)


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member)


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`name``` in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = _rewrite(obj, obj.docstring.value, pkg)
