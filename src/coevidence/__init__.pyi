"""Type stub for :mod:`coevidence`: the lazily exported public names with their real types.

``coevidence/__init__.py`` loads these names on first use (``__getattr__``), which leaves them
typed ``Any`` for mypy, pyright and editors. This stub re-exports each name from the module
``_LAZY`` maps it to. Every name of ``__all__`` must be here and nothing else public:
``tests/packaging/test_packaging_stubs.py`` checks it, so a new export needs a line here.
"""

from coevidence.data.datapackage import read_study as read_study
from coevidence.data.decompose import within_between as within_between
from coevidence.data.features import engagement_features as engagement_features
from coevidence.data.impute import impute as impute
from coevidence.data.impute import plot_tipping_point as plot_tipping_point
from coevidence.data.impute import tipping_point as tipping_point
from coevidence.data.readers import read_table as read_table
from coevidence.data.study import Study as Study
from coevidence.datasets import load_example_study as load_example_study
from coevidence.datasets.panel import load_grunfeld as load_grunfeld
from coevidence.datasets.panel import load_mpdta as load_mpdta
from coevidence.design.analytic import mdes as mdes
from coevidence.design.analytic import mrss as mrss
from coevidence.design.analytic import power as power
from coevidence.design.simulate import SimulationSpec as SimulationSpec
from coevidence.design.simulate import simulate_study as simulate_study
from coevidence.design.simulation_power import simulate_power as simulate_power
from coevidence.exceptions import AgreementWarning as AgreementWarning
from coevidence.exceptions import CoevidenceError as CoevidenceError
from coevidence.exceptions import CoevidenceWarning as CoevidenceWarning
from coevidence.exceptions import DesignDfWarning as DesignDfWarning
from coevidence.exceptions import EstimabilityWarning as EstimabilityWarning
from coevidence.exceptions import ModelSpecificationError as ModelSpecificationError
from coevidence.exceptions import OptionError as OptionError
from coevidence.exceptions import StudyValidationError as StudyValidationError
from coevidence.exceptions import TableReadError as TableReadError
from coevidence.measures.agreement import agreement as agreement
from coevidence.measures.loaders import load_measures as load_measures
from coevidence.measures.registry import get_measure as get_measure
from coevidence.measures.registry import list_measures as list_measures
from coevidence.measures.registry import register_measure as register_measure
from coevidence.measures.reliability import reliability as reliability
from coevidence.measures.scoring import score as score
from coevidence.models.did.event_study import fit_event_study as fit_event_study
from coevidence.models.mediation.model import fit_mediation as fit_mediation
from coevidence.models.mixed.anova import anova as anova
from coevidence.models.mixed.anova import ranova as ranova
from coevidence.models.mixed.api import fit_mixed as fit_mixed
from coevidence.models.mixed.contrasts import adjust_pvalues as adjust_pvalues
from coevidence.models.mixed.contrasts import contrast as contrast
from coevidence.models.mixed.contrasts import effect_size as effect_size
from coevidence.models.mixed.contrasts import marginal_means as marginal_means
from coevidence.models.mixed.contrasts import slopes as slopes
from coevidence.models.mixed.glmm_contrasts import response_contrast as response_contrast
from coevidence.models.mixed.growth import assignment_level as assignment_level
from coevidence.models.mixed.growth import fit_growth as fit_growth
from coevidence.models.mixed.two_stage import fit_growth_two_stage as fit_growth_two_stage
from coevidence.models.moderation.model import johnson_neyman as johnson_neyman
from coevidence.models.moderation.model import simple_slopes as simple_slopes
from coevidence.models.panel.model import fit_panel as fit_panel
from coevidence.models.panel.model import hausman as hausman
from coevidence.models.randomization.model import randomization_test as randomization_test
from coevidence.models.stepped_wedge.model import fit_stepped_wedge as fit_stepped_wedge
from coevidence.models.weighting.balance import balance as balance
from coevidence.models.weighting.balance import love_plot as love_plot
from coevidence.models.weighting.propensity import propensity_weights as propensity_weights
from coevidence.plotting.event_study import plot_event_study as plot_event_study
from coevidence.plotting.power import plot_power_curve as plot_power_curve
from coevidence.plotting.trajectories import plot_trajectories as plot_trajectories
from coevidence.report import report as report
from coevidence.results.compare import compare as compare
from coevidence.results.pooling import pool as pool
from coevidence.schemas.actors import Organization as Organization
from coevidence.schemas.actors import Provider as Provider
from coevidence.schemas.actors import Respondent as Respondent
from coevidence.schemas.design import Arm as Arm
from coevidence.schemas.design import StudyDesign as StudyDesign
from coevidence.schemas.design import Wave as Wave
from coevidence.schemas.engagement import Adaptation as Adaptation
from coevidence.schemas.engagement import Agreement as Agreement
from coevidence.schemas.engagement import Component as Component
from coevidence.schemas.engagement import Encounter as Encounter
from coevidence.schemas.engagement import Engagement as Engagement
from coevidence.schemas.engagement import EngagementPhase as EngagementPhase
from coevidence.schemas.engagement import RelationshipRating as RelationshipRating
from coevidence.schemas.enums import TAModel as TAModel
from coevidence.schemas.measure import MeasureDefinition as MeasureDefinition
from coevidence.testing import check_measure as check_measure
from coevidence.testing import check_result as check_result

__version__: str
__all__: list[str]
_LAZY: dict[str, str]
