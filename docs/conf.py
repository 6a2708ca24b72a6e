"""Sphinx configuration: furo, MyST pages, myst-nb notebooks, an API reference from __all__."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

from python_inventory import write_inventory  # noqa: E402

project = "persidict"
author = "persidict developers"
copyright = "persidict developers"

extensions = [
    "myst_nb",  # Markdown pages (myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "public_api",
    "rest_toctree",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "_ext"]
html_theme = "furo"
html_title = "persidict"

# The notebooks live in ../notebooks (run by the test suite); the site renders the committed
# outputs, so the build needs no kernel and stays fast.
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_typehints_description_target = "documented_params"  # no second, bare parameter list
autodoc_preserve_defaults = True
autodoc_default_options = {"undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # dataclass fields are documented once, by the class docstring

# Built offline from introspection (the build has no network); links go to docs.python.org.
_inventory = write_inventory(Path(tempfile.gettempdir()) / "persidict-docs" / "python.inv")
intersphinx_mapping = {"python": ("https://docs.python.org/3", str(_inventory))}

# The notebooks live in ../notebooks, where the test suite runs them; the site renders copies.
_NOTEBOOKS = DOCS / "notebooks"
_NOTEBOOKS.mkdir(exist_ok=True)
for _nb in sorted((DOCS.parent / "notebooks").glob("*.ipynb")):
    _copy = _NOTEBOOKS / _nb.name
    if not _copy.exists() or _copy.read_bytes() != _nb.read_bytes():
        _copy.write_bytes(_nb.read_bytes())
for _stale in _NOTEBOOKS.glob("*.ipynb"):
    if not (DOCS.parent / "notebooks" / _stale.name).exists():
        _stale.unlink()
