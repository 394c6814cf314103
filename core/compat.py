"""The one place where we adapt third-party packages to current dependency versions.

parallel-wavegan 0.6.1 does `from scipy.signal import kaiser` (in layers/pqmf.py). SciPy 1.13
removed that alias; the window lives in `scipy.signal.windows`. Restoring the alias before the
first import of parallel_wavegan fixes it without editing site-packages. Always import the
package through `parallel_wavegan()`.
"""
from __future__ import annotations

import importlib
import types


def parallel_wavegan() -> types.ModuleType:
    import scipy.signal
    import scipy.signal.windows

    if not hasattr(scipy.signal, "kaiser"):
        scipy.signal.kaiser = scipy.signal.windows.kaiser
    pwg = importlib.import_module("parallel_wavegan")
    importlib.import_module("parallel_wavegan.models")
    importlib.import_module("parallel_wavegan.layers")
    importlib.import_module("parallel_wavegan.losses")
    return pwg
