"""fastregen: data-centric sequential recommendation with a compiled core.

Regenerate a sequential-recommendation training set (DR4SR, DR4SR+, UniDS)
so that any model trained on it recommends better.
"""

from __future__ import annotations

from ._threads import passive_wait_policy as _passive_wait_policy
from ._version import __version__

# Before anything imports torch (whose OpenMP runtime reads it once, when it
# loads): waiting threads sleep instead of spinning, see fastregen._threads.
_passive_wait_policy()

__all__ = ["__version__", "show_config", "config_info", "DR4SR", "RegenConfig", "UniDS", "UniDSConfig"]

# Submodules load on first attribute access (`fastregen.patterns.mine_patterns`),
# so `import fastregen` stays cheap and never imports torch or triton.
_SUBMODULES = ("data", "patterns", "entropy", "models", "training", "evaluation", "generator", "pipeline", "dr4sr", "unids", "ops", "config", "reference")


def config_info() -> dict:
    """Versions and capabilities of this installation, as a dict."""
    import platform

    from . import _core

    info = {
        "fastregen": __version__,
        "core": _core.__version__,
        "python": platform.python_version(),
        "openmp": bool(_core.have_openmp()),
        "omp_threads": int(_core.max_threads()),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        info["numpy"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        info["torch"] = None
        info["cuda"] = False
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    backends = ["torch"]
    if info["triton"] is not None:
        backends.append("triton" + ("" if info["cuda"] else " (interpreter only: no CUDA device)"))
    info["backends"] = backends
    return info


def show_config() -> None:
    """Print versions of the core, torch, triton, OpenMP threads and the available backends."""
    for key, value in config_info().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<14}{value}")


def __getattr__(name: str):
    import importlib

    # Lazy: `fastregen.DR4SR` imports torch only when first used.
    if name in ("DR4SR", "RegenConfig"):
        return getattr(importlib.import_module(".dr4sr", __name__), name)
    if name in ("UniDS", "UniDSConfig"):
        return getattr(importlib.import_module(".unids", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastregen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
