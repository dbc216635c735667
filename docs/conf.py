"""Sphinx configuration: the Markdown pages (MyST) plus the API reference from the numpydoc docstrings.

Build (CI does this with warnings as errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

from importlib.metadata import version as _version

project = "skdefect"
author = "skdefect developers"
copyright = "2026, skdefect developers"  # noqa: A001
release = _version("skdefect")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "none"  # numpydoc's parameter sections carry the types
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping: dict = {}  # no network at build time

html_theme = "alabaster"
html_title = f"skdefect {release}"
html_static_path: list[str] = []
autodoc_inherit_docstrings = False  # torch's and sklearn's docstrings cite labels of their own sites


def _skip_metadata_requests(app, what, name, obj, skip, options):  # noqa: ANN001, ANN202
    """sklearn's generated ``set_*_request`` methods document sklearn's site, not ours."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-skip-member", _skip_metadata_requests)
