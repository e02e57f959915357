"""requirements.lock, the exact environment behind the published numbers: it still satisfies pyproject.toml, pins
every package with == and hashes, was made with the dev extra, and is what this environment runs
(docs/reproducibility.md; update it with `bash scripts/lock.sh`)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11, the Python of requirements.lock")

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
DOC = REPO / "docs" / "reproducibility.md"
# The packages whose version changes the numbers (images, initial weights, training, statistics, tuning draws).
NUMBER_CHANGING = ("torch", "torchvision", "timm", "numpy", "pillow", "scipy", "scikit-learn", "optuna", "pandas")
ALLOW_UNLOCKED = "SOLDERBENCH_ALLOW_UNLOCKED"


@dataclass(frozen=True)
class Entry:
    text: str  # the requirement as written, hashes left out
    requirement: Requirement | None  # None: the line is not a requirement (an option such as -e or --index-url)
    hashes: tuple[str, ...]

    @property
    def pin(self) -> str | None:
        """The exact version when the entry is `name==version` (no wildcard, no URL), else None."""
        if self.requirement is None or self.requirement.url:
            return None
        specs = list(self.requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith(".*"):
            return None
        return specs[0].version


@dataclass(frozen=True)
class Lock:
    header: list[str]  # the arguments of the command uv wrote at the top ("uv pip compile ...")
    entries: list[Entry]

    def pins(self) -> dict[str, Entry]:
        return {canonicalize_name(e.requirement.name): e for e in self.entries if e.requirement is not None}

    def version(self, name: str) -> str | None:
        """The version the lock pins a package at (None when it is missing or not pinned with ==)."""
        entry = self.pins().get(canonicalize_name(name))
        return entry.pin if entry else None

    def target(self) -> dict[str, str]:
        """Marker environment the lock was resolved for: --python-version from the header, Linux x86_64, CPython."""
        python = self.option("--python-version") or ""
        return {"python_version": ".".join(python.split(".")[:2]), "python_full_version": python,
                "implementation_name": "cpython", "platform_python_implementation": "CPython",
                "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}

    def option(self, name: str) -> str | None:
        for i, arg in enumerate(self.header):
            if arg == name and i + 1 < len(self.header):
                return self.header[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    def options(self, name: str) -> list[str]:
        found = [a.split("=", 1)[1] for a in self.header if a.startswith(name + "=")]
        return found + [b for a, b in zip(self.header, self.header[1:]) if a == name]


def read_lock(path: Path) -> Lock:
    """Parse a requirements file written by `uv pip compile`: its header command and its logical lines."""
    header: list[str] = []
    lines: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        if not current and raw.lstrip().startswith("#"):
            command = raw.lstrip("# ").strip()
            if not header and command.startswith("uv pip compile"):
                header = shlex.split(command)
            continue
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        current += " " + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            if current.strip():
                lines.append(current.strip())
            current = ""
    if current.strip():
        lines.append(current.strip())
    entries = []
    for line in lines:
        hashes = tuple(re.findall(r"--hash[=\s]+(\S+)", line))
        text = line.split(" --", 1)[0].strip()
        entries.append(Entry(text, None if text.startswith("-") else Requirement(text), hashes))
    return Lock(header, entries)


def project_requirements() -> dict[str, list[Requirement]]:
    """[project].dependencies and every optional extra, by group name."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    groups = {"dependencies": project.get("dependencies", [])}
    groups.update({f"extra {name}": reqs for name, reqs in project.get("optional-dependencies", {}).items()})
    return {group: [Requirement(r) for r in reqs] for group, reqs in groups.items()}


def unmet(requirement: Requirement, lock: Lock, env: dict[str, str], where: str) -> str | None:
    """Why the lock does not satisfy this requirement (None when it does, or when its marker rules it out)."""
    if requirement.marker is not None and not requirement.marker.evaluate(env):
        return None
    pinned = lock.version(requirement.name)
    if pinned is None:
        return f"{where}: {requirement} is not pinned with == in requirements.lock"
    if not requirement.specifier.contains(pinned, prereleases=True):
        return f"{where}: {requirement} is not met by the lock's {requirement.name}=={pinned}"
    return None


@pytest.fixture(scope="module")
def lock() -> Lock:
    assert LOCK.is_file(), "requirements.lock is missing: bash scripts/lock.sh"
    return read_lock(LOCK)


def test_the_lock_was_made_from_pyproject_with_the_dev_extra_and_hashes(lock):
    assert lock.header[:3] == ["uv", "pip", "compile"], "requirements.lock has no `uv pip compile` header"
    assert "pyproject.toml" in lock.header
    assert "dev" in lock.options("--extra") or "--all-extras" in lock.header, (
        f"the lock was not made with the dev extra: {shlex.join(lock.header)}")
    assert "--generate-hashes" in lock.header
    assert lock.option("--python-version") == "3.11", "the lock (and docs/reproducibility.md) are for Python 3.11"


def test_every_entry_of_the_lock_is_pinned_with_hashes(lock):
    assert len(lock.entries) > 50
    problems = [f"{e.text}: not pinned with ==" for e in lock.entries if e.pin is None]
    problems += [f"{e.text}: no --hash" for e in lock.entries if not any(h.startswith("sha256:") for h in e.hashes)]
    names = [canonicalize_name(e.requirement.name) for e in lock.entries if e.requirement is not None]
    problems += [f"{name}: listed twice" for name in sorted({n for n in names if names.count(n) > 1})]
    assert not problems, problems


def test_every_requirement_of_pyproject_is_locked_at_a_version_it_allows(lock):
    env = lock.target()
    groups = project_requirements()
    assert groups["dependencies"] and "extra dev" in groups
    problems = [why for group, reqs in groups.items() for r in reqs if (why := unmet(r, lock, env, group))]
    assert not problems, "requirements.lock no longer satisfies pyproject.toml (bash scripts/lock.sh): " + "; ".join(
        problems)


def test_the_extras_asked_for_are_locked_too(lock):
    """`ray[default]` needs ray's `default` extra in the lock: read from ray's metadata, installed at the locked
    version (skipped when it is not: this check needs the locked release's own metadata)."""
    env = lock.target()
    asked = {(canonicalize_name(r.name), extra) for reqs in project_requirements().values() for r in reqs
             for extra in r.extras if r.marker is None or r.marker.evaluate(env)}
    assert asked, "pyproject.toml asks for no extras: drop this test"
    problems, unread = [], []
    for name, extra in sorted(asked):
        pinned = lock.version(name)
        if pinned is None:
            continue  # reported by test_every_requirement_of_pyproject_is_locked_at_a_version_it_allows
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) != Version(pinned):
            unread.append(f"{name} {installed or 'not installed'} (lock: {pinned})")
            continue
        for text in importlib.metadata.requires(name) or []:
            problems.append(unmet(Requirement(text), lock, {**env, "extra": extra}, f"{name}[{extra}]"))
    problems = [p for p in problems if p]
    assert not problems, "requirements.lock lacks what an extra asked for needs (bash scripts/lock.sh): " + "; ".join(
        problems)
    if unread:
        pytest.skip(f"the metadata of the locked release is not installed here, extras not checked: {unread}")


def test_this_environment_runs_the_locked_versions_of_what_changes_numbers(lock):
    """Numbers are reproducible only on the locked stack. Set SOLDERBENCH_ALLOW_UNLOCKED=1 to skip this on purpose
    (e.g. trying a new release); CI installs from the lock and never sets it."""
    if os.environ.get(ALLOW_UNLOCKED) == "1":
        pytest.skip(f"{ALLOW_UNLOCKED}=1: not checking that this environment runs requirements.lock's versions "
                    "(its numbers may differ from the published ones)")
    problems = []
    for name in NUMBER_CHANGING:
        pinned = lock.version(name)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if pinned is None or installed == "not installed" or Version(installed) != Version(pinned):
            problems.append(f"{name} {installed}, lock {pinned or 'not pinned'}")
    assert not problems, (
        f"this environment is not the locked one ({'; '.join(problems)}): pip install --require-hashes -r "
        f"requirements.lock && pip install --no-deps -e . (or set {ALLOW_UNLOCKED}=1 to run unlocked on purpose)")


def test_the_docs_list_the_locked_versions(lock):
    text = DOC.read_text()
    unpinned = [name for name in NUMBER_CHANGING if lock.version(name) is None]
    assert not unpinned, f"requirements.lock does not pin {unpinned} with =="
    stale = [f"{name}=={lock.version(name)}" for name in NUMBER_CHANGING if f"{name}=={lock.version(name)}" not in text]
    assert not stale, f"docs/reproducibility.md does not list the locked {stale}"
