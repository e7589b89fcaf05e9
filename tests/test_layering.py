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


def test_no_module_outside_common_redeclares_a_table_or_column_name():
    """Every table and column name is defined once, in common.schema: no other module assigns one as a literal.

    Flags module-level `NAME = "as_of"` (also unpacked: `A, B = "mase", "coverage_95"`) and `*_COLUMNS` tuples
    holding a literal name (`FAILURE_COLUMNS = (ID, MODEL, "error_type", "message")`). Model names such as
    "naive" are values of the model column, not names, and registries list them freely.
    """
    import ast

    from common import schema

    model_names = {schema.NAIVE, schema.BUY_AND_HOLD, schema.CHAMPION, schema.BASE_RATE}
    names = {v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str) and v not in model_names}
    packages = ("pricecast", "flows", "tasks", "ingest", "features", "models", "backtest", "reports", "store")
    found = []
    for path in sorted(p for package in packages for p in (ROOT / package).rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                pairs = (
                    list(zip(target.elts, value.elts, strict=False))
                    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                    else [(target, value)]
                )
                for name, assigned in pairs:
                    if not isinstance(name, ast.Name):
                        continue
                    elts = assigned.elts if isinstance(assigned, ast.Tuple | ast.List) else []
                    literals = [assigned, *elts] if name.id.endswith("_COLUMNS") else [assigned]
                    hits = [e.value for e in literals if isinstance(e, ast.Constant) and e.value in names]
                    if hits:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name.id}: {hits}")
    assert not found, "names re-declared outside common.schema (import them from there):\n" + "\n".join(found)
