"""docs/benchmarks.md is written by several benchmarks: each owns a block between `<!-- NAME -->` and
`<!-- /NAME -->` and replaces only that block, so running one never erases another's figures."""

from __future__ import annotations

import re
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_BLOCK = re.compile(r"<!-- ([\w-]+) -->\n.*?<!-- /\1 -->\n?", re.S)


def marked_blocks(text: str) -> dict[str, str]:
    """Every marked block of a report, by name, markers included."""
    return {match.group(1): match.group(0) for match in _BLOCK.finditer(text)}


def write_section(name: str, body: str, path: Path = REPORT) -> None:
    """Put `body` (without markers) in the report as block `name`: in place of the old one, else at the end."""
    block = f"<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    old = marked_blocks(text).get(name)
    text = text.replace(old, block) if old else text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def keep_marked_blocks(new_text: str, path: Path = REPORT) -> str:
    """`new_text` with the marked blocks of the report at `path` that it lacks appended (a full rewrite of the
    report keeps the sections other benchmarks wrote)."""
    if not path.exists():
        return new_text
    present = marked_blocks(new_text)
    kept = [block for name, block in marked_blocks(path.read_text(encoding="utf-8")).items() if name not in present]
    return new_text.rstrip("\n") + "".join("\n\n" + block.rstrip("\n") for block in kept) + "\n"
