"""What a request did, drawn for its detail: exception, SQL, bodies, timing.

Every function returns a ``rich.text.Text`` built with ``append`` (never
markup): SQL, locals and bodies are the project's or a client's text,
already sanitized where they entered (:mod:`devconsole.model.sanitize`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.style import Style
from rich.text import Text

from devconsole.model.insight import Insight, body_kind
from devconsole.model.state import RequestRow
from devconsole.ui import formatting as fmt

Styles = Callable[[str], Style]


def short_path(path: str) -> str:
    """A library's file from its package down (``django/db/models/query.py``),
    the project's as it is: the same text wherever the console runs."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.rpartition(marker)[2]
    return path


def where_text(where: Any) -> str:
    if not isinstance(where, dict):
        return "(no line of the project's code issued it)"
    return f"{short_path(str(where.get('file', '')))}:{where.get('line', '?')} in {where.get('function', '?')}"


def frame_label(frame: dict[str, Any]) -> Text:
    """One line of the frame list: ``views.py:131 in boom_locals``, the project's bold."""
    text = Text()
    marker = "▶ " if frame.get("project") else "  "
    label = f"{marker}{short_path(str(frame.get('file', '')))}:{frame.get('line', '?')} in {frame.get('function', '?')}"
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


def sql_text(insight: Insight, style: Styles) -> Text:
    sql = insight.sql or {}
    text = Text()
    count, ms = int(sql.get("count") or 0), float(sql.get("ms") or 0.0)
    queries = sql.get("queries") or []
    text.append(f"{count} quer{'y' if count == 1 else 'ies'} in {fmt.duration_ms(ms)}", style("detail--heading"))
    if len(queries) < count:
        text.append(f"  (the first {len(queries)} kept in detail; counts are exact)", style("detail--dim"))
    text.append("\n")
    n_plus_one = sql.get("n_plus_one") or []
    if n_plus_one:
        threshold = sql.get("threshold", 5)
        text.append(f"\nN+1: the same query shape {threshold} or more times\n", style("detail--warning"))
        for group in n_plus_one:
            text.append(f"  {group.get('count')}× ", style("detail--warning"))
            text.append(f"{fmt.duration_ms(group.get('ms'))} from {where_text(group.get('where'))}\n")
            text.append(f"    {group.get('shape', '')}\n", style("detail--dim"))
    duplicates = sql.get("duplicates") or []
    if duplicates:
        text.append("\nDuplicates: the same SQL with the same parameters\n", style("detail--warning"))
        for duplicate in duplicates:
            text.append(f"  {duplicate.get('count')}× ", style("detail--warning"))
            text.append(f"from {where_text(duplicate.get('where'))}\n")
            text.append(f"    {duplicate.get('sql', '')}", style("detail--dim"))
            text.append(f"  params {', '.join(duplicate.get('params') or []) or '-'}\n", style("detail--dim"))
    groups = sql.get("groups") or []
    if groups:
        text.append("\nBy shape\n", style("detail--heading"))
        for group in groups:
            text.append(f"  {group.get('count'):>4}× {fmt.duration_ms(group.get('ms')):>8}  ", style("detail--label"))
            text.append(f"{group.get('shape', '')}\n")
    if queries:
        text.append("\nQueries\n", style("detail--heading"))
        for index, query in enumerate(queries, 1):
            text.append(f"  {index:>3} {fmt.duration_ms(query.get('ms')):>8} ", style("detail--label"))
            text.append(f"{query.get('sql', '')}\n")
            extras = [f"params {', '.join(query.get('params') or []) or '-'}"]
            if "rows" in query:
                extras.append(f"{query['rows']} rows")
            if query.get("alias") not in (None, "", "default"):
                extras.append(f"database {query['alias']}")
            extras.append(where_text(query.get("where")))
            text.append(f"               {' · '.join(extras)}\n", style("detail--dim"))
    if not count:
        text.append("\nNo SQL ran during this request.\n", style("detail--dim"))
    return text


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
