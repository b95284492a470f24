"""What a request did, drawn for its detail: exception, SQL, bodies, timing.

Every function returns ``rich.text.Text`` built with ``append`` (never
markup; the SQL, a group of them in grids so that wrapped SQL stays in its
column): SQL, locals and bodies are the project's or a client's text,
already sanitized where they entered (:mod:`devconsole.model.sanitize`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from devconsole.model.insight import Insight, body_kind
from devconsole.model.state import RequestRow
from devconsole.ui import formatting as fmt

Styles = Callable[[str], Style]


def short_path(path: str, root: str | None = None) -> str:
    """A file as the detail names it: the project's relative to its root
    (``shop/views.py``), a library's from its package down
    (``django/db/models/query.py``), anything else as it is."""
    if root:
        prefix = root.rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix) :]
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.rpartition(marker)[2]
    return path


def project_root(insight: Insight | None, known: str | None) -> str | None:
    """The project's root (the directory of manage.py): ``known`` (the live
    console's project, or the one a recording's ``hello`` names), else the
    common directory of the project's own files. Never looked up on this
    machine's disk: a replay shows the same names everywhere."""
    if known:
        return known
    files = []
    if insight is not None:
        for frame in (insight.exception or {}).get("frames") or ():
            if frame.get("project"):
                files.append(str(frame.get("file") or ""))
        for query in (insight.sql or {}).get("queries") or ():
            where = query.get("where")
            if isinstance(where, dict):
                files.append(str(where.get("file") or ""))
    files = [name for name in files if name.startswith("/")]
    if not files:
        return None
    common = os.path.commonpath(files)
    return common if common != files[0] else str(PurePosixPath(common).parent)


def where_text(where: Any, root: str | None = None) -> str:
    if not isinstance(where, dict):
        return "(no line of the project's code issued it)"
    return f"{short_path(str(where.get('file', '')), root)}:{where.get('line', '?')} in {where.get('function', '?')}"


def frame_label(frame: dict[str, Any], root: str | None = None) -> Text:
    """One line of the frame list: ``shop/views.py:131 in boom_locals``, the project's bold."""
    text = Text()
    marker = "▶ " if frame.get("project") else "  "
    file = short_path(str(frame.get("file", "")), root)
    label = f"{marker}{file}:{frame.get('line', '?')} in {frame.get('function', '?')}"
    text.append(label, Style(bold=True) if frame.get("project") else Style(dim=True))
    return text


def exception_heading(insight: Insight, style: Styles) -> Text:
    exception = insight.exception or {}
    text = Text()
    text.append(f"{exception.get('type', 'exception')}: ", style("detail--error"))
    text.append(f"{exception.get('message', '')}\n")
    for cause in exception.get("causes") or ():
        text.append("  caused by ", style("detail--label"))
        text.append(f"{cause.get('type', '')}: {cause.get('message', '')}\n")
    text.append("Enter on a frame shows its source and locals; ▶ marks the project's own code.", style("detail--dim"))
    if exception.get("pm"):
        text.append("  p: post-mortem in the debugger.", style("detail--dim"))
    return text


def frame_text(frame: dict[str, Any], style: Styles) -> Text:
    """A frame's source lines and locals."""
    text = Text()
    text.append(
        f"{frame.get('file', '')}:{frame.get('line', '?')} in {frame.get('function', '?')}\n", style("detail--heading")
    )
    first = int(frame.get("first") or 1)
    line = int(frame.get("line") or 0)
    for offset, source in enumerate(frame.get("source") or ()):
        number = first + offset
        current = number == line
        text.append(f"{'→' if current else ' '} {number:>5} ", style("detail--label"))
        text.append(f"{source}\n", style("detail--current") if current else Style())
    pairs = frame.get("locals") or []
    text.append(f"\nLocals ({len(pairs)})\n", style("detail--heading"))
    if not pairs:
        text.append("  (none)\n", style("detail--dim"))
    width = max((len(str(pair[0])) for pair in pairs if pair), default=8)
    for pair in pairs:
        name, value = (list(pair) + ["", ""])[:2]
        text.append(f"  {name:<{min(width, 24)}} ", style("detail--label"))
        text.append(f"{value}\n")
    return text


def _grid(left_width: int) -> Table:
    """Two columns: a fixed left one (counts, times) and the SQL, wrapping
    under itself (never under the left column)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=left_width, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    return grid


def _issuers(insight: Insight, duplicate: dict[str, Any], root: str | None) -> list[str]:
    """Every line of the project's code that issued a duplicated query (of
    the queries kept in detail), the one the server named first."""
    lines = [where_text(duplicate.get("where"), root)] if isinstance(duplicate.get("where"), dict) else []
    for query in (insight.sql or {}).get("queries") or ():
        if query.get("sql") == duplicate.get("sql") and list(query.get("params") or []) == list(
            duplicate.get("params") or []
        ):
            where = where_text(query.get("where"), root)
            if isinstance(query.get("where"), dict) and where not in lines:
                lines.append(where)
    return lines or [where_text(None)]


def sql_text(insight: Insight, style: Styles, root: str | None = None) -> Group:
    sql = insight.sql or {}
    parts: list[RenderableType] = []
    text = Text()
    count, ms = int(sql.get("count") or 0), float(sql.get("ms") or 0.0)
    queries = sql.get("queries") or []
    text.append(f"{count} quer{'y' if count == 1 else 'ies'} in {fmt.duration_ms(ms)}", style("detail--heading"))
    if len(queries) < count:
        text.append(f"  (the first {len(queries)} kept in detail; counts are exact)", style("detail--dim"))
    parts.append(text)

    def flagged(title: str, items: list[Any], cell: Callable[[Any], Text]) -> None:
        """A warning heading, then each item's count beside its cell."""
        if not items:
            return
        parts.append(Text(f"\n{title}", style("detail--warning")))
        grid = _grid(6)
        for item in items:
            grid.add_row(Text(f"  {item.get('count')}×", style("detail--warning")), cell(item))
        parts.append(grid)

    def pattern_cell(group: Any) -> Text:
        cell = Text(f"{fmt.duration_ms(group.get('ms'))} from {where_text(group.get('where'), root)}\n")
        cell.append(str(group.get("shape", "")), style("detail--dim"))
        return cell

    def duplicate_cell(duplicate: Any) -> Text:
        issuers = _issuers(insight, duplicate, root)
        cell = Text(f"from {issuers[0]}\n")
        for more in issuers[1:]:
            cell.append(f"and {more}\n")
        cell.append(str(duplicate.get("sql", "")), style("detail--dim"))
        cell.append(f"\nparams {', '.join(duplicate.get('params') or []) or '-'}", style("detail--dim"))
        return cell

    threshold = sql.get("threshold", 5)
    flagged(f"N+1: the same query shape {threshold} or more times", sql.get("n_plus_one") or [], pattern_cell)
    flagged("Duplicates: the same SQL with the same parameters", sql.get("duplicates") or [], duplicate_cell)
    groups = sql.get("groups") or []
    if groups:
        parts.append(Text("\nBy shape", style("detail--heading")))
        grid = _grid(16)
        for group in groups:
            left = Text(f"  {group.get('count'):>4}× {fmt.duration_ms(group.get('ms')):>8}", style("detail--label"))
            grid.add_row(left, Text(str(group.get("shape", ""))))
        parts.append(grid)
    if queries:
        parts.append(Text("\nQueries", style("detail--heading")))
        grid = _grid(14)
        for index, query in enumerate(queries, 1):
            extras = [f"params {', '.join(query.get('params') or []) or '-'}"]
            if "rows" in query:
                extras.append(f"{query['rows']} rows")
            if query.get("alias") not in (None, "", "default"):
                extras.append(f"database {query['alias']}")
            extras.append(where_text(query.get("where"), root))
            cell = Text(f"{query.get('sql', '')}\n")
            cell.append(" · ".join(extras), style("detail--dim"))
            left = Text(f"  {index:>3} {fmt.duration_ms(query.get('ms')):>8}", style("detail--label"))
            grid.add_row(left, cell)
        parts.append(grid)
    if not count:
        parts.append(Text("\nNo SQL ran during this request.", style("detail--dim")))
    return Group(*parts)


def body_text(body: dict[str, Any] | None, text: Text, style: Styles) -> None:
    if body is None:
        text.append("  (no body)\n", style("detail--dim"))
        return
    kind = body_kind(body)
    size = int(body.get("size") or 0)
    text.append(f"  {body.get('content_type') or 'no content type'}, {fmt.size(size)}B", style("detail--label"))
    if body.get("truncated"):
        text.append(" (preview: the first part)", style("detail--dim"))
    text.append("\n")
    if kind == "binary":
        text.append("  binary: not shown\n", style("detail--dim"))
        return
    lines = body.get("pretty") or body.get("lines")
    if not lines:
        text.append("  (not read by the view)\n" if size else "  (empty)\n", style("detail--dim"))
        return
    for line in lines[:400]:
        text.append(f"  {line}\n")
    if len(lines) > 400:
        text.append(f"  … {len(lines) - 400} more lines\n", style("detail--dim"))


def response_text(row: RequestRow, insight: Insight | None, style: Styles) -> Text:
    text = Text()
    response = insight.response if insight is not None else None
    if response is None:
        text.append(f"{row.version or 'HTTP'} {row.status or '-'}\n", style("detail--heading"))
        text.append("  (nothing more was captured for this response)\n", style("detail--dim"))
        return text
    text.append(f"{row.version or 'HTTP/1.1'} {response.get('status_line', '')}\n", style("detail--heading"))
    headers = response.get("headers") or []
    text.append(f"\nHeaders ({len(headers)})\n", style("detail--heading"))
    for pair in headers:
        name, value = (list(pair) + ["", ""])[:2]
        text.append(f"  {name + ':':<28}", style("detail--label"))
        text.append(f"{value}\n")
    text.append("\nBody\n", style("detail--heading"))
    body_text(response.get("body"), text, style)
    return text


def timing_text(row: RequestRow, insight: Insight | None, style: Styles) -> Text:
    text = Text()
    total = row.duration_ms
    sql_ms = float((insight.sql or {}).get("ms") or 0.0) if insight is not None else 0.0
    rest = max(0.0, total - sql_ms)
    text.append(f"{fmt.duration_ms(total)} in all\n\n", style("detail--heading"))
    width = 50
    for label, ms in (("SQL", sql_ms), ("the rest", rest)):
        share = ms / total if total > 0 else 0.0
        bar = "█" * round(share * width)
        text.append(f"  {label:<10}{fmt.duration_ms(ms):>9} {fmt.percent(share):>5}  ", style("detail--label"))
        text.append(f"{bar}\n", style("detail--bar"))
    if insight is None or insight.sql is None:
        text.append("\n  No SQL was captured for this request.\n", style("detail--dim"))
    return text
