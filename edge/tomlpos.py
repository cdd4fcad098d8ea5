"""Where a key stands in a TOML file, so that errors can say ``FILE:LINE``.

tomllib parses values but forgets positions. This scanner walks the text once
and maps every key path it can see (``devices[3].points[7].address``,
``security.trusted_keys[0].key_id``) to its line. It understands what our site
files use: tables, arrays of tables, dotted keys, inline tables, and arrays
whose elements sit one per line. It never decides validity; tomllib does.
"""

from __future__ import annotations

import re

_KEY = r'(?:[A-Za-z0-9_-]+|"[^"]*"|\'[^\']*\')'
_KEY_LINE = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=\s*(.*)$")
_INLINE_KEY = re.compile(rf"({_KEY})\s*=")


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in re.findall(rf"{_KEY}", dotted)]


def _strip_comment(s: str) -> str:
    out, quote = [], ""
    for ch in s:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def key_lines(text: str) -> dict[str, int]:
    """Map each visible key path to its 1-based line number."""
    lines: dict[str, int] = {}
    array_counts: dict[str, int] = {}
    table = ""
    open_array: str | None = None  # key path of a multi-line array being read
    depth = 0
    element = -1

    def resolve(parts: list[str], *, new_element: bool) -> str:
        path = ""
        for i, part in enumerate(parts):
            path = f"{path}.{part}" if path else part
            last = i == len(parts) - 1
            if last and new_element:
                array_counts[path] = array_counts.get(path, -1) + 1
                path = f"{path}[{array_counts[path]}]"
            elif path in array_counts:
                path = f"{path}[{array_counts[path]}]"
        return path

    for lineno, raw in enumerate(text.splitlines(), start=1):
        s = _strip_comment(raw).strip()
        if not s:
            continue
        if open_array is not None:
            if s.startswith("{"):
                element += 1
                elem_path = f"{open_array}[{element}]"
                lines.setdefault(elem_path, lineno)
                for k in _INLINE_KEY.findall(s):
                    lines.setdefault(f"{elem_path}.{k.strip(chr(34) + chr(39))}", lineno)
            depth += s.count("[") - s.count("]")
            if depth <= 0:
                open_array = None
            continue
        if s.startswith("[["):
            table = resolve(_parts(s[2 : s.index("]]")]), new_element=True)
            lines.setdefault(table, lineno)
            continue
        if s.startswith("["):
            table = resolve(_parts(s[1 : s.index("]")]), new_element=False)
            lines.setdefault(table, lineno)
            continue
        m = _KEY_LINE.match(s)
        if not m:
            continue
        path = ".".join(p for p in [table, *_parts(m.group(1))] if p)
        lines.setdefault(path, lineno)
        value = m.group(2).strip()
        if value.startswith("{"):
            for k in _INLINE_KEY.findall(value[1:]):
                lines.setdefault(f"{path}.{k.strip(chr(34) + chr(39))}", lineno)
        elif value.startswith("["):
            d = value.count("[") - value.count("]")
            if d > 0:
                open_array, depth, element = path, d, -1
            else:
                for i, _ in enumerate(re.findall(r"\{[^}]*\}", value)):
                    lines.setdefault(f"{path}[{i}]", lineno)
    return lines


def line_of(lines: dict[str, int], key: str) -> int:
    """The line of ``key``, or of its nearest enclosing key that has one, or 1."""
    probe = key
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return 1
