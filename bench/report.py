"""The table `python -m bench` prints, its Markdown copy for the README, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import django

COLUMNS = [
    ("scenario", "Scenario"),
    ("measured", "Measured"),
    ("baseline", "Baseline"),
    ("ratio", "Ratio"),
    ("target", "Target"),
    ("met", "Met"),
    ("peak_memory", "Peak memory"),
]


def _cells(row: dict) -> list[str]:
    return [
        ("yes" if row["met"] else "NO") if key == "met" else str(row.get(key, ""))
        for key, _ in COLUMNS
    ]


def table_text(rows: list[dict]) -> str:
    lines = [[title for _, title in COLUMNS], *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                for line in lines]  # fmt: skip
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in rendered)


def table_markdown(rows: list[dict]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def summary(rows: list[dict], errors: list[str]) -> str:
    met = sum(1 for row in rows if row["met"])
    text = f"{met} of {len(rows)} targets met."
    if errors:
        text += f" {len(errors)} scenario run(s) failed."
    return text


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def results_write(path: Path, *, size: str, rows: list[dict], errors: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "size": size,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "summary": summary(rows, errors),
        "rows": rows,
        "errors": errors,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.with_suffix(".md").write_text(
        f"Size: {size}, {document['finished_at']}, {machine()['cpus']} CPUs.\n\n"
        + table_markdown(rows)
        + "\n\n"
        + summary(rows, errors)
        + "\n"
    )
