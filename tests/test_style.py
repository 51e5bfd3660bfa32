"""The code base stays ruff-clean (rules in pyproject.toml), so the habit is checked by the same
command that runs the tests."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(exe).exists():
        pytest.skip("ruff is not installed (it comes with the test extra)")
    out = subprocess.run([exe, "check", "--no-cache", "src", "tests", "benchmarks", "reproductions", "conftest.py"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
