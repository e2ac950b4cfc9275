"""Markdown tables and card updates shared by the benchmark scripts."""

import re
from pathlib import Path


def table(rows: list[dict], columns: tuple[str, ...] | None = None, fmt: dict[str, str] | None = None) -> str:
    """A markdown table of `rows` (dicts) over `columns` (default: every key, in first-seen order);
    `fmt` maps a column to a format string such as "{:.3f}"; None prints as a dash. Rows with none of the
    columns after the first are left out."""
    fmt = fmt or {}
    cols = list(columns or dict.fromkeys(c for r in rows for c in r))
    rows = [r for r in rows if any(c in r for c in cols[1:])]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [(fmt.get(c, "{}").format(r[c]) if r[c] is not None else "—") if c in r else "" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_card(card: Path, out: str, command: str) -> None:
    """Replace the block between <!-- benchmark:start --> and <!-- benchmark:end --> in `card` with `out`."""
    text = card.read_text(encoding="utf-8")
    block = f"<!-- benchmark:start -->\n```\n$ {command}\n{out}\n```\n<!-- benchmark:end -->"
    new, n = re.subn(r"<!-- benchmark:start -->.*?<!-- benchmark:end -->", lambda _: block, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{card} has no <!-- benchmark:start --> ... <!-- benchmark:end --> block")
    card.write_text(new, encoding="utf-8")
