"""Sphinx configuration for the coevidence documentation (Sphinx + MyST-NB + numpydoc).

Build locally with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
Notebooks (``notebooks/*.py``, jupytext percent scripts, linked here as ``docs/notebooks``) are
executed by the build (MyST-NB, in a fresh kernel each) and shown with their outputs; a cell
that raises fails the build. ``COEVIDENCE_NB_EXECUTION=off`` renders them without running them
(quick local builds of the prose pages).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
# Sphinx itself never draws; notebook kernels inherit this process's environment and must use
# the inline backend (an inherited MPLBACKEND=Agg would leave the pages without figures).
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

import coevidence  # noqa: E402  (after the path set-up above)

project = "coevidence"
author = "The coevidence developers"
copyright = "2026, the coevidence developers"  # noqa: A001 - Sphinx's name
version = release = coevidence.__version__

extensions = [
    "myst_nb",  # Markdown pages (MyST) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "coevidence_docs",  # generated API page, schema guide, optional glob toctrees
]

# Sources: Markdown pages, rst (generated API pages), jupytext percent notebooks.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".py": "myst-nb"}
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
exclude_patterns = [
    "_build",
    "_ext",
    "_templates",
    "conf.py",
    "**/.ipynb_checkpoints",
    "**/__pycache__",
]
templates_path = ["_templates"]

# Notebooks are executed by the build so that their pages show outputs (tables, figures).
nb_execution_mode = os.environ.get("COEVIDENCE_NB_EXECUTION", "force")
nb_execution_timeout = 300  # seconds per cell
nb_execution_in_temp = True  # each notebook runs in an empty working directory
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True  # ...and the log shows its traceback
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference: coevidence_docs writes api/generated/index.rst (autosummary of __all__)
coevidence_api_page = True
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc renders types from the docstrings
autodoc_default_options = {"member-order": "bysource"}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# HTML
html_theme = "pydata_sphinx_theme"
html_title = f"coevidence {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_static_path: list[str] = []
