"""Griffe extension for the documentation build: Sphinx markup in docstrings to Markdown.

slopeshift's numpydoc docstrings use a little reStructuredText that Markdown would print
verbatim. Before mkdocstrings renders them, this extension (used only by ``mkdocs build``)
rewrites, outside code spans:

- cross-reference roles, ``:func:`target``` (and ``:meth:``, ``:class:``, ``:attr:``, ``:data:``,
  ``:mod:``, ``:exc:``, ``:obj:``; ``~`` shows the last name only): an optional autorefs link to
  the object's entry when the target resolves inside slopeshift (relative to the docstring's
  class and module, or to the package), else inline code, so that no link can dangle;
- ``.. math::`` blocks: display maths for ``pymdownx.arithmatex``;
- indexing in prose such as ``C[j][k]``: escaped, so that Markdown does not read a link;
- a ``>`` that starts a line of prose: escaped, so that it is not a block quote;
- ``text::`` before a literal block: ``text:`` (the indented block stays a code block);
- ``#:`` comments above a module constant (Sphinx's convention): its docstring.

The source files are not changed.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|attr|data|mod|exc|obj):`(~?)([^`]+)`")
_MATH = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+\S.*\n|[ \t]*\n)+)",
    re.MULTILINE,
)
_INDEXING = re.compile(r"(?<=\w)((?:\[[^\[\]\n`]*\])+)")
_CODE = re.compile(r"(``.+?``|`[^`\n]+`)")


def _resolve(pkg: griffe.Module, obj: griffe.Object, target: str) -> str | None:
    """Canonical path of ``target`` seen from ``obj``, or None when it is not in the package."""
    scopes = []
    node: griffe.Object | None = obj
    while node is not None:
        if node.is_class or node.is_module:
            scopes.append(node.path)
        node = node.parent
    candidates = [f"{scope}.{target}" for scope in scopes] + [target, f"{pkg.path}.{target}"]
    for path in candidates:
        if path != pkg.path and not path.startswith(pkg.path + "."):
            continue
        rel = path.removeprefix(pkg.path).lstrip(".")
        try:
            found = pkg.get_member(rel) if rel else pkg
        except (KeyError, ValueError, griffe.AliasResolutionError):
            continue  # not in the package (e.g. through an imported module's alias)
        try:
            return found.final_target.path if found.is_alias else found.path
        except griffe.AliasResolutionError:
            return None
    return None


def _roles(text: str, pkg: griffe.Module, obj: griffe.Object) -> str:
    def link(match: re.Match) -> str:
        short, target = match.group(1) == "~", match.group(2).strip()
        shown = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(pkg, obj, target)
        if path is None:
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(link, text)


def _math(text: str) -> str:
    def block(match: re.Match) -> str:
        indent = match.group("indent")
        body = textwrap.dedent(match.group("body")).strip("\n")
        return f"{indent}$$\n{body}\n{indent}$$\n\n"

    return _MATH.sub(block, text)


def _outside_code(text: str, fix) -> str:
    parts = _CODE.split(text)
    return "".join(p if i % 2 else fix(p) for i, p in enumerate(parts))


def convert(text: str, pkg: griffe.Module, obj: griffe.Object) -> str:
    """The docstring ``text`` of ``obj`` with its Sphinx markup rewritten as Markdown."""
    text = _math(text)
    text = re.sub(r"(?<=\S)::\n(?=[ \t]*\n)", ":\n", text)
    text = re.sub(r"^([ \t]{0,3})>", r"\1\\>", text, flags=re.MULTILINE)
    out = []
    for chunk in re.split(r"(\$\$\n.*?\n[ \t]*\$\$)", text, flags=re.DOTALL):
        if chunk.startswith("$$"):
            out.append(chunk)
            continue
        chunk = _roles(chunk, pkg, obj)
        out.append(_outside_code(chunk, lambda s: _INDEXING.sub(
            lambda m: m.group(1).replace("[", r"\[").replace("]", r"\]"), s)))
    return "".join(out)


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines just above a module attribute, as its docstring."""
    if not (obj.is_attribute and obj.parent is not None and obj.parent.is_module and obj.lineno):
        return None
    lines = obj.parent.lines
    text: list[str] = []
    i = obj.lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        text.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return griffe.Docstring(" ".join(text), parent=obj) if text else None


class SphinxMarkup(griffe.Extension):
    """Rewrite Sphinx roles, maths and indexing in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _walk(pkg):
            if obj.docstring is None:
                obj.docstring = _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, pkg, obj)
