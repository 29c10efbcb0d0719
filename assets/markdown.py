"""Markdown rendering for materialization metadata (tables the Dagster UI shows)."""

from collections.abc import Sequence


def markdown_table(rows: Sequence[dict[str, str]], *, empty: str = "_none_") -> str:
    """A markdown table of rows sharing the first row's keys; `empty` when there are none."""
    if not rows:
        return empty
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(str(row[c]).replace("|", "\\|") for c in columns) + " |" for row in rows
    ]
    return "\n".join(lines)
