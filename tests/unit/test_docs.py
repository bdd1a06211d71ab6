"""The documentation agrees with the code: the steps.csv columns, and every relative link.

Pure file reading: no processes. The one import from the harness is STEP_COLUMNS (below).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from gatewaybench.analysis.step import STEP_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COLUMNS_PAGE = DOCS / "run-directory.md"
COLUMNS_HEADING = "steps.csv columns"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) or [text](target "title"); images too. Not inside `code`.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`+[^`]*`+")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (where '#' and '[x](y)' mean nothing)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, spaces to '-', punctuation but '-' and '_' gone."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a markdown file; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def documented_columns(path: Path, heading: str) -> list[str]:
    """The first cells of the table under `heading`, backticks stripped, header rows skipped."""
    lines = prose_lines(path.read_text(encoding="utf-8"))
    starts = [i for i, line in enumerate(lines) if (m := HEADING.match(line)) and m[2] == heading]
    assert len(starts) == 1, f"{path.name}: expected one heading {heading!r}, found {len(starts)}"
    columns = []
    for line in lines[starts[0] + 1 :]:
        if HEADING.match(line):
            break
        if not line.lstrip().startswith("|"):
            continue
        first = line.strip().strip("|").split("|")[0].strip()
        if first.startswith("`") and first.endswith("`"):
            columns.append(first.strip("`"))
    return columns


def relative_links(path: Path) -> list[str]:
    links = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto: ...
            links.append(target)
    return links


def test_steps_csv_columns_are_documented_in_the_codes_order() -> None:
    assert documented_columns(COLUMNS_PAGE, COLUMNS_HEADING) == list(STEP_COLUMNS)


def test_slug_follows_githubs_rule() -> None:
    assert slug("When does ASGI pay off? Waiting") == "when-does-asgi-pay-off-waiting"
    assert slug("Docker (compose backend)") == "docker-compose-backend"
    assert slug("steps.csv columns") == "stepscsv-columns"
    assert slug("Calibrated steps: --users auto") == "calibrated-steps---users-auto"
    assert slug("snake_case and `code`") == "snake_case-and-code"


def test_the_parsers_skip_code_blocks() -> None:
    text = "# Real\n```\n# not a heading\n[not](a-link.md)\n```\n[a](b.md) `[c](d.md)`\n"
    assert [line for line in prose_lines(text) if HEADING.match(line)] == ["# Real"]
    assert [t for line in prose_lines(text) for t in LINK.findall(CODE_SPAN.sub("", line))] == [
        "b.md"
    ]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_links_every_docs_page() -> None:
    readme = set(relative_links(ROOT / "README.md"))
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert pages <= {t.partition("#")[0] for t in readme}
