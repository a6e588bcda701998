"""The install step (make setup) pins the versions the published numbers were made with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, separator, version = line.partition("==")
            assert separator, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_installed_requirement_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = pinned_versions()
    # torch stays out: pyproject pins it, and the CPU wheel's local label (+cpu) is the index's business.
    assert "torch" not in pins
    unpinned = [str(r) for r in requirements if r.name != "torch" and canonicalize_name(r.name) not in pins]
    outside = [f"{r} (pinned {pins[canonicalize_name(r.name)]})" for r in requirements
               if canonicalize_name(r.name) in pins and pins[canonicalize_name(r.name)] not in r.specifier]
    assert not unpinned and not outside, (
        f"constraints.txt is out of date with pyproject.toml: unpinned {unpinned}, outside the range {outside}; "
        "install the new requirements into .venv, run the tests, then `make constraints`")
