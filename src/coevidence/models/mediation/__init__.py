"""Multilevel mediation (2-1-1 and 1-1-1 designs; within/between b paths).

See :func:`~coevidence.models.mediation.model.fit_mediation` and ``docs/models/mediation.md``.
"""

from coevidence.models.mediation.model import fit_mediation
from coevidence.models.mediation.results import MediationResult

__all__ = ["MediationResult", "fit_mediation"]
