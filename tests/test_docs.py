"""The README and docs/ as the project's rules want them: short, starting with the two commands, and
self-contained (nothing outside the repository, no path of one machine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_starts_with_make_run_and_make_test_and_stays_a_guide():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "run"], ["make", "test"]]
    second_block = re.findall(r"```bash\n(.*?)```", text, re.S)[1]
    assert [line.split("#")[0].split()[0] for line in second_block.splitlines()] == ["snakemake", "dvc", "mlflow"]
    assert len(text.splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_pages_refer_to_nothing_outside_the_repository(page):
    text = page.read_text()
    assert "DESIGN.md" not in text and "../shared" not in text
    assert not re.search(r"(?<![\w.])/(work|home|root|Users)/", text), "a path of one machine"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
