"""coevidence: does co-creation technical assistance raise research use more than push TA?

Schemas for TA studies, research-use and capacity measures, multilevel growth and panel models,
and power analysis. The public API is re-exported here and loaded lazily, so ``import
coevidence`` stays fast; everything not listed in ``__all__`` is private.

Examples
--------
>>> import coevidence as cv
>>> study = cv.load_example_study()
>>> panel = study.panel(unit="organization")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # exceptions (also importable from coevidence.exceptions)
    "CoevidenceError": "coevidence.exceptions",
    "CoevidenceWarning": "coevidence.exceptions",
    "StudyValidationError": "coevidence.exceptions",
    "OptionError": "coevidence.exceptions",
    "TableReadError": "coevidence.exceptions",
    "ModelSpecificationError": "coevidence.exceptions",
    "DesignDfWarning": "coevidence.exceptions",
    "AgreementWarning": "coevidence.exceptions",
    "EstimabilityWarning": "coevidence.exceptions",
    # schemas
    "TAModel": "coevidence.schemas.enums",
    "Provider": "coevidence.schemas.actors",
    "Organization": "coevidence.schemas.actors",
    "Respondent": "coevidence.schemas.actors",
    "Engagement": "coevidence.schemas.engagement",
    "Encounter": "coevidence.schemas.engagement",
    "Component": "coevidence.schemas.engagement",
    "Adaptation": "coevidence.schemas.engagement",
    "Agreement": "coevidence.schemas.engagement",
    "RelationshipRating": "coevidence.schemas.engagement",
    "EngagementPhase": "coevidence.schemas.engagement",
    "StudyDesign": "coevidence.schemas.design",
    "Arm": "coevidence.schemas.design",
    "Wave": "coevidence.schemas.design",
    "MeasureDefinition": "coevidence.schemas.measure",
    # data
    "Study": "coevidence.data.study",
    "read_study": "coevidence.data.datapackage",
    "read_table": "coevidence.data.readers",
    "load_example_study": "coevidence.datasets",
    "load_grunfeld": "coevidence.datasets.panel",
    "load_mpdta": "coevidence.datasets.panel",
    "within_between": "coevidence.data.decompose",
    "engagement_features": "coevidence.data.features",
    # measures
    "score": "coevidence.measures.scoring",
    "reliability": "coevidence.measures.reliability",
    "agreement": "coevidence.measures.agreement",
    "register_measure": "coevidence.measures.registry",
    "get_measure": "coevidence.measures.registry",
    "list_measures": "coevidence.measures.registry",
    "load_measures": "coevidence.measures.loaders",
    "check_measure": "coevidence.testing",
    "check_result": "coevidence.testing",
    # mixed models
    "fit_mixed": "coevidence.models.mixed.api",
    "fit_growth": "coevidence.models.mixed.growth",
    "anova": "coevidence.models.mixed.anova",
    "ranova": "coevidence.models.mixed.anova",
    "contrast": "coevidence.models.mixed.contrasts",
    "effect_size": "coevidence.models.mixed.contrasts",
    "marginal_means": "coevidence.models.mixed.contrasts",
    "slopes": "coevidence.models.mixed.contrasts",
    "assignment_level": "coevidence.models.mixed.growth",
    "fit_growth_two_stage": "coevidence.models.mixed.two_stage",
    "adjust_pvalues": "coevidence.models.mixed.contrasts",
    "response_contrast": "coevidence.models.mixed.glmm_contrasts",
    "compare": "coevidence.results.compare",
    # panel and staggered adoption
    "fit_panel": "coevidence.models.panel.model",
    "hausman": "coevidence.models.panel.model",
    "fit_event_study": "coevidence.models.did.event_study",
    "fit_stepped_wedge": "coevidence.models.stepped_wedge.model",
    "randomization_test": "coevidence.models.randomization.model",
    # moderation and mediation
    "simple_slopes": "coevidence.models.moderation.model",
    "johnson_neyman": "coevidence.models.moderation.model",
    "fit_mediation": "coevidence.models.mediation.model",
    # missing data and non-randomised comparisons
    "pool": "coevidence.results.pooling",
    "impute": "coevidence.data.impute",
    "tipping_point": "coevidence.data.impute",
    "plot_tipping_point": "coevidence.data.impute",
    "propensity_weights": "coevidence.models.weighting.propensity",
    "balance": "coevidence.models.weighting.balance",
    "love_plot": "coevidence.models.weighting.balance",
    # design and power
    "mdes": "coevidence.design.analytic",
    "power": "coevidence.design.analytic",
    "mrss": "coevidence.design.analytic",
    "SimulationSpec": "coevidence.design.simulate",
    "simulate_study": "coevidence.design.simulate",
    "simulate_power": "coevidence.design.simulation_power",
    # plots (matplotlib Axes)
    "plot_trajectories": "coevidence.plotting.trajectories",
    "plot_event_study": "coevidence.plotting.event_study",
    "plot_power_curve": "coevidence.plotting.power",
    # report
    "report": "coevidence.report",  # the package is callable: cv.report(study, ...)
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'coevidence' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__

