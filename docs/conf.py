"""Sphinx configuration for the capif8sec documentation.

Built by ``make docs`` (``sphinx-build -q -W --keep-going -b html docs .venv/docs-html``): every
warning is an error.  autodoc imports :mod:`capif8sec` from the installed package (``pip install
-e .`` in the project's virtual environment), so this file does not touch ``sys.path`` for it; only
the local extension directory ``docs/_ext`` is added.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

# Imported from the installed package (not via sys.path): fails early when it is not installed.
import capif8sec

project = "capif8sec"
author = "capif8sec developers"
copyright = "capif8sec developers"
release = capif8sec.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "myst_parser",
    "capif8sec_rules",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# Markdown (MyST): heading anchors for in-page and cross-page links such as (#data-flow).
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# autodoc: signatures keep their type hints; members in source order, as the modules present them.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = False

# sphinx.ext.doctest (``sphinx-build -b doctest docs ...``) runs the guides' testcode blocks.
doctest_test_doctest_blocks = ""
# ``:skipif: not HAS_PSK`` marks the blocks that need TLS-level PSK (Python 3.13's ssl): they are
# rendered on every interpreter and run where the interpreter has it.
doctest_global_setup = "from capif8sec.tls.psk import HAS_PSK"

nitpicky = False

html_theme = "furo"
html_title = f"capif8sec {release}"
