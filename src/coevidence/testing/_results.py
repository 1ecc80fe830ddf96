"""``check_result``: the conformance check every fitted result must pass (the result contract)."""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass

import numpy as np
import pandas as pd

from coevidence.testing._runner import run_checks

__all__ = ["RESULT_CHECKS", "check_result"]

#: Names of the checks :func:`check_result` runs, in order (for ``pytest.mark.parametrize``).
RESULT_CHECKS = (
    "tidy_columns",
    "conf_level_stored",
    "conf_level_honoured",
    "glance_keys",
    "estimates_are_copies",
    "diagnostics_read_only",
    "attributes_immutable",
    "pickle_round_trip",
    "repr_and_html",
    "compare_keeps_terms",
    "predict_uses_tidy_vcov",
)


def _mutate(obj: object) -> bool:
    """Try to change ``obj`` in place; True if something was changed (or could be)."""
    if isinstance(obj, pd.DataFrame | pd.Series):
        if obj.size == 0:
            return False
        try:
            obj.iloc[(0,) * obj.ndim] = 1e300  # type: ignore[index]
        except (ValueError, TypeError):
            return False
        return True
    if isinstance(obj, np.ndarray):
        if obj.size == 0 or not obj.flags.writeable:
            return False
        obj.flat[0] = 1e300
        return True
    if isinstance(obj, dict):
        try:
            obj["__check_result__"] = 1
        except TypeError:
            return False
        return True
    if isinstance(obj, list):
        obj.append("__check_result__")
        return True
    return False


def _same(a: object, b: object) -> bool:
    if isinstance(a, pd.DataFrame | pd.Series):
        return isinstance(b, type(a)) and a.equals(b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=True)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def _leak(get: Callable[[], object]) -> str:
    """'' if mutating what ``get()`` returns leaves the next ``get()`` unchanged, else why not."""
    before = copy.deepcopy(get())
    if _mutate(get()) and not _same(get(), before):
        return "changing the returned object changed the result"
    return ""


def _checks(res: object, level: float) -> list[tuple[str, Callable[[], str]]]:
    from coevidence.results.base import GLANCE_KEYS, TIDY_COLUMNS
    from coevidence.results.compare import compare

    def tidy_columns() -> str:
        t = res.tidy()
        assert tuple(t.columns) == TIDY_COLUMNS, f"columns {list(t.columns)}"
        assert len(t) > 0, "no rows"
        return f"{len(t)} terms"

    def conf_level_stored() -> str:
        cl = getattr(res, "conf_level", None)
        assert isinstance(cl, float) and 0 < cl < 1, f"conf_level attribute {cl!r}"
        pd.testing.assert_frame_equal(res.tidy(), res.tidy(conf_level=cl))
        return f"conf_level={cl}"

    def conf_level_honoured() -> str:
        cl = res.conf_level
        t = res.tidy()
        if not np.isfinite(t["conf_low"].to_numpy(float)).any():
            return "no intervals (nothing to check)"
        if not np.isfinite(t["std_error"].to_numpy(float)).any():
            return "no standard errors"
        try:
            other = res.tidy(conf_level=level)
        except ValueError as exc:
            return f"refuses conf_level={level} ({exc})"
        w0 = (t["conf_high"] - t["conf_low"]).to_numpy(float)
        w1 = (other["conf_high"] - other["conf_low"]).to_numpy(float)
        ok = np.isfinite(w0) & np.isfinite(w1) & (w0 > 0)
        if level != cl:
            assert ok.any() and (np.sign(w1[ok] - w0[ok]) == np.sign(level - cl)).all(), (
                f"intervals at conf_level={level} are not {'wider' if level > cl else 'narrower'}")
        return f"conf_level={level} changes the intervals"

    def glance_keys() -> str:
        g = res.glance()
        assert isinstance(g, pd.DataFrame) and len(g) == 1, "glance() is not one row"
        assert tuple(g.columns[: len(GLANCE_KEYS)]) == GLANCE_KEYS, (
            f"glance() starts with {list(g.columns[:5])}, not {list(GLANCE_KEYS)}")
        for k in ("cov_type", "df_method", "estimator"):
            v = g[k].iloc[0]
            assert isinstance(v, str) and v and " " not in v, f"{k}={v!r} is not an option code"
        return ", ".join(f"{k}={g[k].iloc[0]}" for k in GLANCE_KEYS)

    def estimates_are_copies() -> str:
        seen = []
        for name in ("params", "vcov", "cov", "std_errors", "df", "estimate", "std_error",
                     "distribution", "cluster_slopes", "data", "terms", "extra"):
            if not hasattr(type(res), name) and name not in vars(res):
                continue
            value = getattr(res, name)
            if not isinstance(value, pd.DataFrame | pd.Series | np.ndarray | list):
                continue
            seen.append(name)
            why = _leak(lambda n=name: getattr(res, n))
            assert not why, f"{name}: {why}"
        t0 = res.tidy()
        _mutate(res.tidy())
        pd.testing.assert_frame_equal(res.tidy(), t0)
        return ", ".join(seen) or "no estimate accessors"

    def diagnostics_read_only() -> str:
        seen = []
        for name in ("diagnostics", "info"):
            obj = getattr(res, name, None)
            if obj is None:
                continue
            seen.append(name)
            if isinstance(obj, Mapping):
                assert not _mutate(obj), f"{name} is a mutable mapping"
                for k, v in obj.items():
                    assert not _mutate(v), f"{name}[{k!r}] is mutable"
            elif is_dataclass(obj):
                try:
                    setattr(obj, fields(obj)[0].name, None)
                except Exception:  # noqa: BLE001 - frozen, as it should be
                    frozen = True
                else:
                    frozen = False
                if not frozen:
                    raise AssertionError(f"{name} attributes can be set")
                for f in fields(obj):
                    why = _leak(lambda n=f.name, o=obj: getattr(o, n))
                    assert not why, f"{name}.{f.name}: {why}"
        return ", ".join(seen) or "no diagnostics"

    def attributes_immutable() -> str:
        try:
            res.__dict__  # noqa: B018
            res.conf_level = 0.5
        except AttributeError:
            return "ok"
        raise AssertionError("attributes can be set after construction")

    def pickle_round_trip() -> str:
        back = pickle.loads(pickle.dumps(res))
        assert type(back) is type(res)
        pd.testing.assert_frame_equal(back.tidy(), res.tidy())
        pd.testing.assert_frame_equal(back.glance(), res.glance())
        return "tidy() and glance() equal after pickle"

    def repr_and_html() -> str:
        r, h = repr(res), res._repr_html_()
        assert isinstance(r, str) and r, "repr is empty"
        assert isinstance(h, str) and h.startswith("<"), "_repr_html_ is not HTML"
        assert "could not be rendered" not in r + h, "rendering failed: " + r[:200]
        return "ok"

    def compare_keeps_terms() -> str:
        tab = compare([res])
        frame = tab.to_frame()
        terms = [str(t) for t in res.tidy()["term"]]
        missing = [t for t in terms if t not in frame.index]
        assert not missing, f"compare() lost {missing}"
        assert "nobs" not in frame.index or frame.loc["nobs"].iloc[0] != "" or \
            res.glance()["nobs"].isna().all(), "compare() lost nobs"
        for out in (str(tab), tab.to_markdown(), tab.to_latex(), tab._repr_html_()):
            assert isinstance(out, str) and out
        return f"{len(terms)} terms"

    def predict_uses_tidy_vcov() -> str:
        if not hasattr(res, "predict") or not hasattr(res, "fixed_matrix"):
            return "no predict()"
        data = res.data.iloc[:1]
        X = res.fixed_matrix(data)
        if not X.shape[1]:
            return "no fixed effects"
        tidy = res.tidy()
        j = int(np.argmax(np.abs(X[0])))
        # the prediction SE of one row, from tidy()'s covariance via the vcov accessor
        p = res.predict(data, interval="confidence")["std_error"].iloc[0]
        V = res.vcov.to_numpy()
        want = float(np.sqrt(X[0] @ V @ X[0]))
        assert np.isclose(p, want, rtol=1e-8), f"predict SE {p} != {want} from vcov"
        se = float(np.sqrt(V[j, j]))
        assert np.isclose(se, float(tidy["std_error"].iloc[j]), rtol=1e-10), (
            "vcov and tidy() disagree")
        return f"prediction SE {p:.6g} from the covariance tidy() uses"

    found = locals()
    return [(name, found[name]) for name in RESULT_CHECKS]


def check_result(
    result: object, *, conf_level: float = 0.8, raise_on_failure: bool = True
) -> pd.DataFrame:
    """Run the result-contract checks on a fitted result (any coevidence family).

    Checks: ``tidy()`` has :data:`~coevidence.results.base.TIDY_COLUMNS`; the result stores
    its ``conf_level`` and ``tidy()`` uses it by default; ``tidy(conf_level=...)`` honours
    another level (or refuses it with ``ValueError``, as wild-bootstrap intervals do);
    ``glance()`` is one row starting with estimator, outcome, nobs, cov_type, df_method (the
    last two option codes); ``params``/``vcov``/... return copies (mutating them does not
    change the result); ``diagnostics``/``info`` are read-only; attributes cannot be set; a
    pickle round trip keeps ``tidy()`` and ``glance()``; ``repr`` and ``_repr_html_`` render;
    ``compare([result])`` keeps every term; ``predict()`` (where there is one) uses the
    covariance ``tidy()`` uses.

    Parameters
    ----------
    result : a fitted coevidence result
    conf_level : float, default 0.8
        The other level ``tidy(conf_level=...)`` is asked for.
    raise_on_failure : bool, default True
        Raise ``AssertionError`` listing every failed check; otherwise return the table.

    Returns
    -------
    pandas.DataFrame
        One row per check (:data:`RESULT_CHECKS`): ``check``, ``passed``, ``detail``.

    Examples
    --------
    >>> import coevidence as cv
    >>> fe = cv.fit_panel(cv.load_grunfeld(), "inv", unit="firm", time="year",
    ...                   regressors=["value", "capital"])
    >>> bool(check_result(fe)["passed"].all())
    True
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_checks(_checks(result, conf_level),
                          f"{type(result).__name__} (result contract)",
                          raise_on_failure=raise_on_failure)
