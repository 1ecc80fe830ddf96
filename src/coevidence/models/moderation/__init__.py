"""Moderation: simple slopes and Johnson-Neyman regions of significance for any interaction.

See :func:`~coevidence.models.moderation.model.simple_slopes`,
:func:`~coevidence.models.moderation.model.johnson_neyman` and ``docs/models/moderation.md``.
"""

from coevidence.models.moderation.model import johnson_neyman, simple_slopes
from coevidence.models.moderation.results import JohnsonNeymanResult, SimpleSlopesResult

__all__ = ["JohnsonNeymanResult", "SimpleSlopesResult", "johnson_neyman", "simple_slopes"]
