"""One BLAS thread while fitting mixed models (threadpoolctl, if installed).

The engines' BLAS calls are thin (a few columns); extra BLAS threads gain nothing and, on a
machine whose cores are busy, spin-wait each other into 5-10x slower fits. The library scan
behind a threadpoolctl limit costs a few ms (as much as a small refit), so one controller is
made per process and reused by every engine and refit.
"""

from __future__ import annotations

import contextlib

__all__ = ["one_blas_thread"]

_CONTROLLER = None


def one_blas_thread():
    """A context manager limiting BLAS to one thread (a no-op without threadpoolctl).

    Examples
    --------
    >>> with one_blas_thread():
    ...     pass
    """
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
