"""Weights for non-randomised comparisons: propensity scores, IPW and overlap weights, balance.

:mod:`~coevidence.models.weighting.propensity` holds :func:`propensity_weights` and the
:class:`PropensityWeights` it returns; :mod:`~coevidence.models.weighting.balance` the balance
table (:func:`balance`) and the love plot (:func:`love_plot`).
"""

from coevidence.models.weighting.balance import balance, love_plot
from coevidence.models.weighting.propensity import PropensityWeights, propensity_weights

__all__ = ["PropensityWeights", "balance", "love_plot", "propensity_weights"]
