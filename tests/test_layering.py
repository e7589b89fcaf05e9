"""The architecture holds: pure packages never import prefect, heavy libraries load only on demand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    """CLI -> flows -> tasks -> pure packages; no prefect below tasks; reports never import models."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and "0 broken" in proc.stdout


def test_importing_pure_packages_loads_no_heavy_library():
    """`import models` (and the other pure packages) must not pull in tensorflow, prophet or prefect."""
    code = (
        "import sys, models, features, ingest, backtest, reports, models.base;"
        "import models.rnn, models.prophet_model;"
        "heavy = [m for m in ('tensorflow', 'keras', 'prophet', 'prefect') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"heavy modules imported eagerly: {proc.stdout.strip()}"
