"""The distribution builds, passes ``twine check --strict``, and its sdist carries its own tests."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    return out


@pytest.mark.slow
def test_twine_check_strict(dist: Path) -> None:
    pytest.importorskip("twine")
    files = sorted(str(p) for p in dist.iterdir())
    assert any(f.endswith(".whl") for f in files) and any(f.endswith(".tar.gz") for f in files)
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_sdist_runs_its_own_file_reading_tests(dist: Path, tmp_path: Path) -> None:
    sdist = next(dist.glob("*.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    root = next(tmp_path.iterdir())
    for needed in ("tests/conftest.py", "notebooks", ".ci/run", "docs/conf.py", "README.md",
                   "tests/typing/user_code.py"):
        assert (root / needed).exists(), needed
    assert not (root / "docs" / "_build").exists()
    # The tests that read the tree's own files (README, .ci/run, docs pages, notebooks' list),
    # run inside the unpacked sdist against its own copy of the packages.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/test_readme.py", "tests/test_docs_examples.py",
         "tests/test_notebooks.py::test_there_are_notebooks", "tests/core/test_public_api.py"],
        cwd=root, capture_output=True, text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout
