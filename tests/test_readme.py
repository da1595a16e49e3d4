"""The README stays true: its two set-up commands exist and every cap is documented."""

from __future__ import annotations

import os
from pathlib import Path

from tools.config import Limits

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_documents_every_limit_with_its_default():
    for name, field in Limits.model_fields.items():
        assert f"| `{name}` | {field.default} |" in README, name


def test_readme_commands_exist_and_are_executable():
    assert "./dev.sh serve" in README and "./dev.sh test" in README
    assert os.access(ROOT / "dev.sh", os.X_OK)
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_readme_pictures_exist():
    import re

    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        assert (ROOT / target).is_file(), target
