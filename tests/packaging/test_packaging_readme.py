"""README's set-up commands are the ones CI runs, and its tour only uses public names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import coevidence

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _setup_commands() -> list[str]:
    """The lines of the first code block, which must come right after the title."""
    match = re.match(r"# coevidence\n\n```bash\n(.*?)\n```", README, flags=re.S)
    assert match, "README must open with its title and then the set-up code block"
    return match.group(1).splitlines()


def test_readme_opens_with_two_setup_commands():
    """Exactly two commands: install and run the demo; install and run the tests."""
    main_job, tests = _setup_commands()
    venv = "python -m venv .venv && . .venv/bin/activate && "
    assert main_job.startswith(venv + "pip install . && ")
    assert main_job.endswith("&& coevidence demo --out demo-out")
    assert tests.startswith(venv + 'pip install -e ".[test]" && ')


def test_ci_runs_the_readme_test_command():
    """.ci/run installs the same extra and runs the README's pytest command verbatim, last."""
    tests = _setup_commands()[1]
    pytest_command = tests.split(" && ")[-1]
    assert pytest_command.startswith("python -m pytest")
    ci_lines = [ln.strip() for ln in CI.splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci_lines[-1] == pytest_command
    assert 'pip install -e ".[test]"' in ci_lines
    assert "set -euo pipefail" in ci_lines
    assert "python3 -m venv" in CI


def test_tour_uses_public_names_only():
    """Every `cv.<name>` in the README is exported by coevidence."""
    used = set(re.findall(r"\bcv\.([A-Za-z_]\w*)", README))
    assert used, "the tour shows no API"
    assert used <= set(coevidence.__all__), sorted(used - set(coevidence.__all__))


@pytest.mark.slow
def test_tour_code_runs(tmp_path):
    """The tour's Python blocks run, in order, as written (a scores.sav is provided)."""
    import pandas as pd
    import pyreadstat

    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 6
    pyreadstat.write_sav(
        pd.DataFrame({"org_id": ["O1", "O2"], "arm": [1.0, 2.0]}),
        str(tmp_path / "scores.sav"),
        variable_value_labels={"arm": {1.0: "push", 2.0: "co_creation"}},
    )
    script = tmp_path / "tour.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
