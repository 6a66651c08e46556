"""Rows that cannot be stored: found before COPY into the warehouse, so the batch goes on.

Input and output are PostgreSQL COPY text-format lines (tab-separated, `\\N` for NULL,
backslash escapes). The fast path checks a whole buffer at C speed; only a buffer that
fails it is split line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_VALUE_CHARS = 10_000
_ROW_TEXT_LIMIT = 2_000


@dataclass(frozen=True)
class Rejected:
    id: int
    reason: str
    column: str | None
    row_text: str


_ESCAPE = re.compile(r"\\.")


def _unescaped_len(field: str) -> int:
    # COPY text output escapes one character as two (\\\\, \\t, \\n, …).
    return len(field) - len(_ESCAPE.findall(field))


def _printable(line: bytes) -> str:
    text = line.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    return text[:_ROW_TEXT_LIMIT]


def _check_line(line: bytes, names: list[str], max_chars: int) -> tuple[str, str | None] | None:
    """(reason, column) if the line cannot be stored, else None. names[i] names field i."""
    fields = line.split(b"\t")
    for name, raw in zip(names, fields, strict=False):
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid UTF-8", name
        if "\x00" in value:
            return "NUL byte", name
        if len(value) > max_chars and _unescaped_len(value) > max_chars:
            return f"value longer than {max_chars} characters", name
    if len(fields) != len(names):
        return f"expected {len(names)} fields, got {len(fields)}", None
    return None


def split_valid(
    data: bytes, names: list[str], max_chars: int = DEFAULT_MAX_VALUE_CHARS
) -> tuple[bytes, list[Rejected]]:
    """Split COPY text `data` (first field: id) into storable lines and rejected rows."""
    if not data:
        return data, []
    try:
        text = data.decode("utf-8")
        if "\x00" not in text:
            if len(text) <= max_chars or max(map(len, text.split("\n"))) <= max_chars:
                return data, []
    except UnicodeDecodeError:
        pass
    good: list[bytes] = []
    rejected: list[Rejected] = []
    for line in data.split(b"\n"):
        if not line:
            continue
        problem = _check_line(line, names, max_chars)
        if problem is None:
            good.append(line)
            continue
        reason, column = problem
        try:
            row_id = int(line.split(b"\t", 1)[0])
        except ValueError:
            continue  # no id: nothing we could ever key it on (cannot happen with bigint ids)
        rejected.append(Rejected(row_id, reason, column, _printable(line)))
    return (b"\n".join(good) + b"\n") if good else b"", rejected
