"""Sphinx helpers for the coevidence site: generated API page, schema guide, optional globs.

* ``config-inited``: writes ``api/generated/index.rst``, an autosummary of every name in
  ``coevidence.__all__`` grouped by area (autosummary then writes one page per name).
* ``{schema-guide}`` directive: one section per record class in ``coevidence.schemas``, with a
  field-by-field table built from the pydantic ``model_fields`` (type, default, constraints and
  the description from ``Field(description=...)`` or the class docstring's Parameters section).
* ``{glob-toctree}`` directive: a ``toctree`` whose glob entries that match nothing are dropped
  (a plain glob toctree warns, which fails the ``-W`` build while a folder is still empty).

Names or modules that cannot be imported yet are logged and skipped. Set
``COEVIDENCE_STRICT=1`` (the default; ``0`` relaxes it) to turn those messages (and undocumented schema fields) into
warnings, i.e. errors under ``-W``.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import os
import pkgutil
import re
import types
import typing
from pathlib import Path
from typing import Any

from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.directives.other import TocTree
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.matching import patfilter

logger = logging.getLogger(__name__)

STRICT = os.environ.get("COEVIDENCE_STRICT", "1") != "0"

#: area of the package (second part of the module path) -> API page section title, in order
API_SECTIONS = {
    "exceptions": "Errors and warnings",
    "schemas": "Study schemas",
    "data": "Study data",
    "datasets": "Study data",
    "measures": "Measures",
    "models": "Models",
    "results": "Results",
    "design": "Design and power",
    "plotting": "Plotting",
}

#: schema modules shown first in the guide, in this order (others follow alphabetically)
SCHEMA_ORDER = ("enums", "actors", "engagement", "design", "measure")


def _report(message: str) -> None:
    if STRICT:
        logger.warning(message)
    else:
        logger.info("coevidence docs: %s", message)


# --------------------------------------------------------------------------- API reference


def _resolvable(name: str, module: str) -> str | None:
    """None if ``module.name`` imports, else the reason it does not."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure means "not documented yet"
        return f"{module} cannot be imported ({type(exc).__name__}: {exc})"
    if not hasattr(mod, name):
        return f"{module} does not define {name}"
    return None


#: packages searched for result classes (subclasses of ResultBase) to document
RESULT_PACKAGES = ("coevidence.models", "coevidence.results", "coevidence.design",
                   "coevidence.data")


def result_classes() -> list[str]:
    """Dotted paths of every result class (a ``ResultBase`` subclass) defined in the package.

    Results are returned by the ``fit_*`` functions rather than imported, so they are not in
    ``coevidence.__all__``; they still need pages (``tidy``, ``glance``, their own methods).
    """
    from coevidence.results.base import ResultBase

    found: dict[str, None] = {}
    for package in RESULT_PACKAGES:
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, package + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_") or ".tests" in info.name:
                continue
            try:
                mod = importlib.import_module(info.name)
            except Exception as exc:  # noqa: BLE001 - reported like other unimportable names
                _report(f"result classes: {info.name} cannot be imported ({exc})")
                continue
            for name, obj in vars(mod).items():
                if (inspect.isclass(obj) and issubclass(obj, ResultBase) and obj is not ResultBase
                        and obj.__module__ == mod.__name__ and not name.startswith("_")):
                    found[f"{obj.__module__}.{name}"] = None
    return sorted(found, key=lambda p: p.rsplit(".", 1)[-1].lower())


def api_page_text() -> str:
    """The reStructuredText of the API reference page."""
    import coevidence

    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(coevidence._LAZY, key=str.lower):
        module = coevidence._LAZY[name]
        area = module.split(".")[1]
        groups.setdefault(API_SECTIONS.get(area, "Other"), []).append((name, module))

    lines = [
        "API reference",
        "=============",
        "",
        "Everything importable from the top-level ``coevidence`` namespace",
        "(``import coevidence as cv``). Anything not listed here is private.",
        "",
        ".. currentmodule:: coevidence",
        "",
    ]
    for title in [*dict.fromkeys(API_SECTIONS.values()), "Other"]:
        members = []
        for name, module in groups.get(title, []):
            reason = _resolvable(name, module)
            if reason is None:
                members.append(name)
            else:
                _report(f"API page skips coevidence.{name}: {reason}")
        if not members:
            continue
        lines += [title, "-" * len(title), "", ".. autosummary::", "   :toctree: .", ""]
        lines += [f"   {name}" for name in members]
        lines.append("")
    results = result_classes()
    if results:
        title = "Result classes"
        lines += [title, "-" * len(title), "",
                  "What the ``fit_*`` functions and :func:`coevidence.pool` return: every result",
                  "has ``tidy()``, ``glance()`` and ``summary()`` (see :doc:`../../results`).", "",
                  ".. autosummary::", "   :toctree: .", "   :template: class.rst", ""]
        # relative to the current module (coevidence): autosummary warns on a repeated prefix
        lines += [f"   {path.removeprefix('coevidence.')}" for path in results]
        lines.append("")
    return "\n".join(lines)


def write_api_page(app: Sphinx, config: Any) -> None:
    if not config.coevidence_api_page:
        return
    out = Path(app.srcdir) / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.rst"
    text = api_page_text()
    if not page.exists() or page.read_text(encoding="utf-8") != text:
        page.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- schema guide


def type_text(annotation: Any) -> str:
    """A short, readable rendering of a field's type annotation."""
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_CONSTRAINT_FORMS = {
    "gt": "> {}",
    "ge": "≥ {}",
    "lt": "< {}",
    "le": "≤ {}",
    "multiple_of": "multiple of {}",
    "min_length": "min length {}",
    "max_length": "max length {}",
    "pattern": "pattern `{}`",
}


def constraint_text(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        found = False
        for attr, form in _CONSTRAINT_FORMS.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(form.format(value))
                found = True
        if not found:
            parts.append(repr(item))
    return "; ".join(parts)


def docstring_params(cls: type) -> dict[str, str]:
    """Parameter/attribute descriptions from numpydoc class docstrings.

    The class's own docstring first, then its bases' (a record extending another documents
    only the fields it adds).
    """
    from numpydoc.docscrape import NumpyDocString

    out: dict[str, str] = {}
    for klass in cls.__mro__:
        doc = klass.__dict__.get("__doc__") or ""
        if not doc.strip():
            continue
        try:
            parsed = NumpyDocString(inspect.cleandoc(doc))
        except Exception:  # noqa: BLE001 - a malformed docstring only loses descriptions
            continue
        for section in ("Parameters", "Attributes", "Other Parameters"):
            for param in parsed[section]:
                for name in param.name.split(","):
                    out.setdefault(name.strip(), " ".join(param.desc).strip())
    return out


def docstring_summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc) if p.strip()]
    summary = []
    for para in paragraphs:
        if re.match(r"^[A-Z][A-Za-z ]+\n-{3,}", para):  # numpydoc section header
            break
        summary.append(" ".join(line.strip() for line in para.splitlines()))
    return "\n\n".join(summary)


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        factory = field.default_factory
        return f"`{getattr(factory, '__name__', repr(factory))}()`"
    default = field.default
    if isinstance(default, enum.Enum):
        default = default.value
    return f"`{default!r}`"


def import_line(cls: type) -> str:
    """The shortest public import of a class: top level, then its package, then its module."""
    import coevidence

    name = cls.__name__
    if coevidence._LAZY.get(name) == cls.__module__:
        return f"from coevidence import {name}"
    package = cls.__module__.rpartition(".")[0]
    if package and name in getattr(importlib.import_module(package), "__all__", ()):
        return f"from {package} import {name}"
    return f"from {cls.__module__} import {name}"


def model_markdown(cls: type, level: int) -> list[str]:
    hashes = "#" * level
    lines = [f"({cls.__module__}.{cls.__name__})=", f"{hashes} `{cls.__name__}`", ""]
    summary = docstring_summary(cls)
    if summary:
        lines += [summary, ""]
    lines += [f"Import: `{import_line(cls)}`", ""]
    if issubclass(cls, enum.Enum):
        described = docstring_params(cls)
        if not any(described.get(m.name) for m in cls):
            values = ", ".join(f"`{m.value}`" for m in cls)
            return [*lines, f"Values: {values}.", ""]
        lines += ["| value | meaning |", "| --- | --- |"]
        for member in cls:
            lines.append(f"| `{member.value}` | {_cell(described.get(member.name, ''))} |")
        return [*lines, ""]
    described = docstring_params(cls)
    lines += [
        "| field | type | default | constraints | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in cls.model_fields.items():
        description = field.description or described.get(name, "")
        if not description:
            _report(f"schema field {cls.__name__}.{name} has no description")
        lines.append(
            f"| `{name}` | `{_cell(type_text(field.annotation))}` | {_cell(_default_text(field))}"
            f" | {_cell(constraint_text(field.metadata))} | {_cell(description)} |"
        )
    return [*lines, ""]


def schema_classes(module: types.ModuleType) -> list[type]:
    from pydantic import BaseModel

    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    found = []
    for name in names:
        obj = getattr(module, name, None)
        if (
            inspect.isclass(obj)
            and obj.__module__ == module.__name__
            and (issubclass(obj, BaseModel) or issubclass(obj, enum.Enum))
        ):
            found.append(obj)
    return found


def schema_guide_markdown(package: str = "coevidence.schemas", level: int = 2) -> str:
    pkg = importlib.import_module(package)
    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    ordered = [n for n in SCHEMA_ORDER if n in names] + sorted(
        n for n in names if n not in SCHEMA_ORDER
    )
    lines: list[str] = []
    for name in ordered:
        try:
            module = importlib.import_module(f"{package}.{name}")
        except Exception as exc:  # noqa: BLE001
            _report(f"schema guide skips {package}.{name}: {type(exc).__name__}: {exc}")
            continue
        classes = schema_classes(module)
        if not classes:
            continue
        title = docstring_summary(module).split("\n")[0].rstrip(".") or name
        lines += [f"{'#' * level} {title}", "", f"Module `{package}.{name}`.", ""]
        for cls in classes:
            lines += model_markdown(cls, level + 1)
    return "\n".join(lines)


class SchemaGuide(SphinxDirective):
    """Field-by-field tables for every record in ``coevidence.schemas`` (MyST pages only)."""

    optional_arguments = 1  # the package, default coevidence.schemas
    option_spec = {"level": int}

    def run(self) -> list[Any]:
        from docutils import nodes

        package = self.arguments[0] if self.arguments else "coevidence.schemas"
        text = schema_guide_markdown(package, self.options.get("level", 2))
        # rebuild this page whenever a schema module (or this extension) changes
        pkg = importlib.import_module(package)
        for path in sorted(Path(pkg.__path__[0]).glob("*.py")):
            self.env.note_dependency(str(path))
        self.env.note_dependency(__file__)
        container = nodes.section()  # temporary parent; its children are returned
        container.document = self.state.document
        self.state.nested_parse(StringList(text.splitlines()), 0, container, match_titles=True)
        return container.children


# --------------------------------------------------------------------------- optional globs


class GlobTocTree(TocTree):
    """A glob toctree that silently drops patterns matching no document yet."""

    def run(self) -> list[Any]:
        self.options["glob"] = True
        current = self.env.docname
        base = current.rpartition("/")[0]
        remaining = set(self.env.found_docs) - {current}  # as Sphinx's own glob sees them
        kept = []
        for entry in self.content:
            pattern = entry.strip()
            if not pattern:
                continue
            full = f"{base}/{pattern}" if base else pattern
            if not any(ch in pattern for ch in "*?["):
                remaining.discard(full.removesuffix(".md").removesuffix(".rst"))
                kept.append(entry)
                continue
            matched = set(patfilter(remaining, full))
            if matched:
                remaining -= matched
                kept.append(entry)
        if not kept:
            return []
        self.content = StringList(kept, source=self.content.source(0))
        return super().run()


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("coevidence_api_page", False, "env", bool)
    app.connect("config-inited", write_api_page)
    app.add_directive("schema-guide", SchemaGuide)
    app.add_directive("glob-toctree", GlobTocTree)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "0.1"}
