"""Which paths matter to a reload: rules the server child applies when it
reports what to watch and the console applies to what changed."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

#: Directories never watched into (beyond watchfiles' own defaults).
IGNORED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        ".idea",
        ".vscode",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "site-packages",
        "dist-packages",
        "htmlcov",
        ".cache",
    }
)
#: File names never worth a reload: editors' swap, backup and lock files,
#: compiled Python, SQLite databases and their journals.
IGNORED_NAMES = re.compile(
    r"(\.py[cod]$|\.sw[a-p]$|\.swx$|~$|^\.#|^#.*#$|^4913$|\.bak$|\.orig$|\.tmp$|^\.DS_Store$"
    r"|___jb_(old|tmp)___$|^flycheck_|\.sqlite3?(-journal|-wal|-shm)?$|\.db(-journal|-wal|-shm)?$)"
)


def collapse(paths: Iterable[str]) -> list[str]:
    """``paths`` without those inside another of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(path)
    return kept
