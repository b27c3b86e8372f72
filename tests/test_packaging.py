"""The built wheel, not only the checkout: every data file ldmpick reads at run time ships in it (issue 11 item 16:
'calibrate' failed in every regular install because the world judge's weights were left out).

Building a wheel without dependencies or build isolation takes seconds and needs no network. The end-to-end check,
installing that wheel in a fresh virtual environment and running the commands from outside the checkout, is
``scripts/check_wheel.sh`` (run by ``.ci/run``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shipped_files() -> dict[str, Path]:
    """What the installed package must hold (its path inside the wheel -> the file in the checkout)."""
    out: dict[str, Path] = {}
    for f in (ROOT / "ldmpick" / "data").rglob("*"):
        if f.is_file() and f.suffix in (".json", ".csv", ".safetensors"):
            out[f"ldmpick/data/{f.relative_to(ROOT / 'ldmpick' / 'data').as_posix()}"] = f
    for f in (ROOT / "profiles").glob("*.json"):
        out[f"ldmpick/reference_profiles/{f.name}"] = f
    for f in (ROOT / "ldmpick" / "demo_models").rglob("*"):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".txt", ".md"):
            out[f"ldmpick/demo_models/{f.relative_to(ROOT / 'ldmpick' / 'demo_models').as_posix()}"] = f
    for f in ROOT.joinpath("ldmpick").rglob("*.py"):
        out[f.relative_to(ROOT).as_posix()] = f
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the package's sources (so that no build/ folder is left in the checkout, and
    none from an earlier build can add files)."""
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("ldmpick", "profiles"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.lock"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "No module named" in r.stderr and "setuptools" in r.stderr:
        pytest.skip("setuptools is not installed: the wheel cannot be built without network")
    assert r.returncode == 0, r.stderr[-2000:]
    (found,) = out.glob("ldmpick-*.whl")
    return found


def test_the_wheel_carries_every_data_file_ldmpick_reads(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _shipped_files()
    missing = sorted(set(expected) - names)
    assert not missing, f"left out of the wheel: {missing[:20]}"
    for must in ("ldmpick/data/world_judge.safetensors", "ldmpick/data/quality_law.json",
                 "ldmpick/data/models/catalogue.json", "ldmpick/demo_models/demo-c8/unet/diffusion_pytorch_model.safetensors"):
        assert must in names
    assert any(n.startswith("ldmpick/reference_profiles/") and n.endswith(".json") for n in names)


def test_the_wheel_holds_the_checkout_bytes_of_the_world_judge(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        shipped = z.read("ldmpick/data/world_judge.safetensors")
    assert shipped == (ROOT / "ldmpick" / "data" / "world_judge.safetensors").read_bytes()
