import ast
import pathlib
import re
import subprocess
import sys

import pytest

from service.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_service_and_core_never_import_training():
    for package in ("service", "asr"):
        for source in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(n == "training" or n.startswith("training.") for n in names), f"{source} imports {names}"


def test_importing_the_app_loads_no_training_module():
    code = "import sys, service.app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'training'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_client_loads_neither_torch_nor_the_service_nor_training():
    code = (
        "import sys, client.__main__, client.live; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'service', 'training', 'torchaudio'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_the_readme_lists_every_setting_with_its_default():
    rows = dict(re.findall(r"^\| `ASR_([A-Z0-9_]+)` \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.MULTILINE))
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        written = re.match(r"`([^`]*)`", rows[name.upper()].strip())
        if written and isinstance(field.default, int | float) and not isinstance(field.default, bool):
            assert float(written[1]) == field.default, f"README: ASR_{name.upper()} is {written[1]}"
        elif written and isinstance(field.default, str):
            assert written[1] == field.default, f"README: ASR_{name.upper()} is {written[1]}"


@pytest.mark.parametrize("module", sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__"))
def test_every_benchmark_still_starts(module):
    """Benchmarks run by hand, not in the suite, so an API they use can move without a test noticing: each script
    answers ``--help`` and each helper module imports."""
    script = 'if __name__ == "__main__":' in (ROOT / "bench" / f"{module}.py").read_text()
    command = ["-m", f"bench.{module}", "--help"] if script else ["-c", f"import bench.{module}"]
    out = subprocess.run([sys.executable, *command], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and (not script or "usage:" in out.stdout), out.stderr[-500:]
