"""The docs stay true to the code: every setting, module and link they promise exists.

The metric families are checked against a live daemon in tests/loopback/test_docs_metrics.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from monitor.settings import CONFIG_ENV, Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 200

# [text](target) and [text]: target, not inside inline code.
_INLINE_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced blocks and code spans (links there are examples, not links)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """The anchor GitHub makes of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def env_names(name: str) -> list[str]:
    """The environment variable(s) one Settings field is read from."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices]
    return [f"MONITOR_{name.upper()}"]


def test_readme_fits_on_a_screen() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, at most {MAX_README_LINES}: move detail into docs/"
    )


def test_every_relative_link_in_readme_and_docs_points_at_a_file_that_exists() -> None:
    broken = []
    for md in _markdown_files():
        prose = _prose(md.read_text(encoding="utf-8"))
        targets = _INLINE_LINK.findall(prose) + _REF_LINK.findall(prose)
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (md.parent / path_part).resolve() if path_part else md
            where = f"{md.relative_to(ROOT)}: link ({target})"
            if not dest.exists():
                broken.append(f"{where} points at {path_part}, which does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{where}: {dest.relative_to(ROOT)} has no heading #{anchor}")
    assert broken == [], "\n".join(broken)


def test_every_setting_is_in_configuration_md_by_its_env_name() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [
        f"{env} (Settings.{name})"
        for name in Settings.model_fields
        for env in env_names(name)
        if f"`{env}`" not in text
    ]
    if f"`{CONFIG_ENV}`" not in text:
        missing.append(f"{CONFIG_ENV} (the TOML file)")
    assert missing == [], "docs/configuration.md does not name: " + ", ".join(missing)


def test_configuration_md_names_no_setting_that_does_not_exist() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    known = {env for name in Settings.model_fields for env in env_names(name)} | {CONFIG_ENV}
    named = set(re.findall(r"\b(?:MONITOR|CLOUD_SDK)_[A-Z0-9_]*[A-Z0-9]\b", text))
    stale = sorted(named - known)
    assert stale == [], "docs/configuration.md names settings Settings lacks: " + ", ".join(stale)


def _modules() -> list[tuple[str, str]]:
    """(dotted name, path) of every package and module under monitor/, from the filesystem."""
    out = []
    for path in sorted((ROOT / "monitor").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(ROOT)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), str(rel)))
    return out


def _architecture_rows() -> dict[str, str]:
    """First cell (a code span) -> second cell, of every table row in architecture.md."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for m in re.finditer(r"^\|\s*`([^`]+)`\s*\|([^|\n]*)\|", text, re.MULTILINE):
        rows[m.group(1)] = m.group(2).strip()
    return rows


def test_architecture_md_gives_every_package_and_module_its_job() -> None:
    rows = _architecture_rows()
    missing = [
        f"{dotted} ({path})" for dotted, path in _modules() if len(rows.get(dotted, "").split()) < 3
    ]
    assert missing == [], (
        "docs/architecture.md has no row `| `monitor.x.y` | its one job |` for: "
        + ", ".join(missing)
    )


def test_architecture_md_names_no_module_that_does_not_exist() -> None:
    existing = {dotted for dotted, _ in _modules()}
    stale = sorted(n for n in _architecture_rows() if n.startswith("monitor") and n not in existing)
    assert stale == [], "docs/architecture.md describes modules that are gone: " + ", ".join(stale)


def test_makefile_comments_point_at_docs_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    named = re.findall(r"\b((?:docs|tests|benchmarks|deploy|config)/[\w./-]*\w)", makefile)
    gone = sorted({p for p in named if not (ROOT / p).exists()})
    assert gone == [], "the Makefile names paths that do not exist: " + ", ".join(gone)
