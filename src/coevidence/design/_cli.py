"""``coevidence power mdes|power|mrss|simulate``: analytic and simulation-based power.

Options carry PowerUpR's parameter names::

    coevidence power mdes --design cra3 --rho3 .06 --rho2 .17 --n 15 --J 3 --K 60
    coevidence power power --design cra2 --es .629 --rho2 .17 --n 15 --J 20
    coevidence power mrss --design cra2 --es .629 --rho2 .17 --n 15
    coevidence power simulate spec.yaml --reps 500 --backend dask --scheduler tcp://host:8786
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from coevidence.design._designs import PARAM_HELP

_INT_LIKE = {"n", "J", "K", "g1", "g2", "g3", "steps", "waves", "baseline_periods"}


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "t", "yes", "1"):
        return True
    if low in ("false", "f", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _times(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"times must be comma-separated numbers: {text!r}") from None


def _add_design_options(p: argparse.ArgumentParser, *, es: bool) -> None:
    p.add_argument("--design", required=True,
                   help="ira, bira2c1, bira2f1, bira2, cra2, bira3, cra3, bcra3r2, bcra3f2, "
                        "diggle_slopes, diggle_means, slopes_ira, slopes_cra2, stepped_wedge")
    if es:
        p.add_argument("--es", type=float, default=argparse.SUPPRESS,
                       help="effect size (default 0.25)")
    for name, text in PARAM_HELP.items():
        if name == "power" and es and p.prog.endswith(" power"):
            continue
        if name == "two_tailed":
            kind: Any = _bool
        elif name == "times":
            kind = _times
        else:
            kind = _number
        p.add_argument(f"--{name}", type=kind, default=argparse.SUPPRESS, help=text)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="print the summary (text) or the result as JSON")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("power", help="analytic and simulation-based power (PowerUpR names)")
    psub = top.add_subparsers(dest="power_command", metavar="{mdes,power,mrss,simulate}")
    top.set_defaults(handler=lambda args: (top.print_help(), 2)[1])
    for name, helptext, es in (("mdes", "minimum detectable effect size", False),
                               ("power", "power to detect --es", True),
                               ("mrss", "minimum required sample size for --es", True)):
        p = psub.add_parser(name, help=helptext)
        _add_design_options(p, es=es)
        p.set_defaults(handler=_analytic, quantity=name)
    s = psub.add_parser("simulate", help="simulation-based power from a YAML SimulationSpec")
    s.add_argument("spec", help="YAML file with the SimulationSpec fields")
    s.add_argument("--reps", type=int, default=200, help="replicates (default 200)")
    s.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    s.add_argument("--analysis", default=None,
                   help="growth, growth_two_stage or cluster_means (default: by number of waves)")
    s.add_argument("--backend", choices=("serial", "processes", "dask"), default="serial")
    s.add_argument("--scheduler", default=None, help="Dask scheduler address (backend dask)")
    s.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    s.add_argument("--chunk-size", type=int, default=None,
                   help="replicates per task (default: automatic, about n_reps / (4 x workers))")
    s.add_argument("--alpha", type=float, default=0.05)
    s.add_argument("--out", default=None,
                   help="folder for incremental Parquet results (rerun to resume)")
    s.add_argument("--progress", type=_bool, default=None, help="progress bar (default: if a tty)")
    s.set_defaults(handler=_simulate)


def _analytic(args: argparse.Namespace) -> int:
    from coevidence.design import analytic

    params = {k: v for k, v in vars(args).items()
              if k in PARAM_HELP or k == "es"}
    for k in list(params):
        if k in _INT_LIKE and isinstance(params[k], float) and params[k].is_integer():
            params[k] = int(params[k])
    func = {"mdes": analytic.mdes, "power": analytic.power, "mrss": analytic.mrss}[args.quantity]
    try:
        res = func(args.design, **params)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        out = {"design": res.design, "quantity": res.quantity, "value": res.value,
               "df": res.df, "sse": res.sse, "ci": res.ci, "achieved_power": res.achieved_power,
               "inputs": dict(res.inputs)}
        print(json.dumps(out, default=float, indent=1))
    else:
        print(res.summary())
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import yaml
    from pydantic import ValidationError

    from coevidence.design.simulate import SimulationSpec
    from coevidence.design.simulation_power import simulate_power
    from coevidence.measures.loaders import safe_load_text

    try:
        with open(args.spec, encoding="utf-8") as fh:
            text = fh.read(64 * 1024 * 1024 + 1)
        kind = "json" if str(args.spec).lower().endswith(".json") else "yaml"
        raw = safe_load_text(text, kind) or {}  # no alias bombs, bounded size and nesting
        spec = SimulationSpec.model_validate(raw)
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        print(f"error: cannot read {args.spec}: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"error: invalid simulation spec {args.spec}:\n{exc}", file=sys.stderr)
        return 1
    try:
        res = simulate_power(spec, args.analysis, n_reps=args.reps, seed=args.seed,
                             backend=args.backend, scheduler=args.scheduler, out=args.out,
                             progress=args.progress, alpha=args.alpha, n_workers=args.workers,
                             chunk_size=args.chunk_size)
    except (TypeError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(res.summary())
    if args.out:
        from pathlib import Path

        res.glance().to_csv(Path(args.out) / "summary.csv", index=False)
    return 0
