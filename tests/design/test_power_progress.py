"""simulate_power's progress bar: on by default in a terminal or a Jupyter kernel, off in logs."""

from __future__ import annotations

import sys
import types

from coevidence.design import simulation_power as sp


class ZMQInteractiveShell:  # the class name IPython's kernel shell has
    pass


def test_progress_default_on_in_a_notebook_kernel(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False,
                                                             write=lambda s: None,
                                                             flush=lambda: None))
    assert sp._in_notebook()
    bar = sp._progress_bar(None, total=3, initial=0, desc="x")
    assert bar is not None
    bar.close()


def test_progress_default_off_without_terminal_or_kernel(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False))
    assert not sp._in_notebook()
    assert sp._progress_bar(None, total=3, initial=0, desc="x") is None
    assert sp._progress_bar(False, total=3, initial=0, desc="x") is None
