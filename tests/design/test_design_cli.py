"""``coevidence power ...`` command line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from coevidence.cli import main


def test_power_mdes_cra3(capsys):
    assert main(["power", "mdes", "--design", "cra3", "--rho3", ".06", "--rho2", ".17",
                 "--n", "15", "--J", "3", "--K", "60"]) == 0
    out = capsys.readouterr().out
    assert "Minimum detectable effect size: 0.269 95% CI [0.080, 0.458]" in out
    assert "df method: K - g3 - 2 = 58" in out


def test_power_power_json_and_mrss(capsys):
    assert main(["power", "power", "--design", "cra2", "--es", ".629", "--rho2", ".17",
                 "--n", "15", "--J", "20", "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["quantity"] == "power" and abs(res["value"] - 0.8001) < 5e-4
    assert res["inputs"]["J"] == 20
    assert main(["power", "mrss", "--design", "ira", "--es", ".25", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 504
    assert main(["power", "mrss", "--design", "diggle_slopes", "--es", ".5", "--times", "0,2,5",
                 "--sigma2", "100", "--rho", ".2", "--two_tailed", "false",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 313


def test_power_cli_rejects_parameters_of_other_designs(capsys):
    assert main(["power", "mdes", "--design", "cra2", "--rho3", ".1", "--rho2", ".1",
                 "--n", "5", "--J", "20"]) == 1
    assert "rho3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["power", "mdes", "--design", "cra2", "--rho", "x"])


def test_power_simulate_yaml(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "n_providers: 2\norgs_per_provider: 5\nrespondents_per_org: 2\nn_waves: 2\n"
        "assignment: organization\nencounter_logs: false\nresponses: scores\n"
        "outcomes:\n  - arm_effect: 0.5\n")
    out = tmp_path / "run"
    assert main(["power", "simulate", str(spec), "--reps", "3", "--seed", "2",
                 "--analysis", "cluster_means", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Simulation-based power: 3 replicates" in text
    assert len(pd.read_parquet(out / "replicates")) == 3  # the Parquet parts read as one table
    assert pd.read_csv(out / "summary.csv")["n_reps"][0] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_provider: 3\n")
    assert main(["power", "simulate", str(bad), "--reps", "2"]) == 1
    assert "n_provider" in capsys.readouterr().err


def test_simulate_refuses_a_yaml_alias_bomb(tmp_path, capsys):
    from coevidence.cli import main as cli_main

    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    names = "abcdefghi"
    for prev, cur in zip(names, names[1:]):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 500
    assert cli_main(["power", "simulate", str(bomb)]) == 1  # refused by the guard, not expanded
    assert "alias bomb" in capsys.readouterr().err
