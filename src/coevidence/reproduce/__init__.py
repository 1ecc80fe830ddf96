"""Published analyses re-run from the library (``coevidence reproduce``)."""

from coevidence.reproduce._registry import Check, Replication, registry, replication, run, run_all

__all__ = ["Check", "Replication", "registry", "replication", "run", "run_all"]
