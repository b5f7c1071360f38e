"""`tisdiss serve`: a local web page and a versioned HTTP API over the one separation engine.

Layer: above training, below cli. The server needs the ``serve`` extra (FastAPI, uvicorn,
python-multipart); :func:`missing_extra` says so without importing it, so the command line can
print one line instead of a traceback.
"""

from __future__ import annotations

import importlib.util

EXTRA_MODULES = ("fastapi", "uvicorn", "python_multipart")
INSTALL_HINT = "pip install 'tisdiss[serve]'"


def missing_extra() -> str | None:
    """One line naming what to install when the ``serve`` extra is absent; None when it is there."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"tisdiss serve needs {', '.join(missing)}: {INSTALL_HINT}"
