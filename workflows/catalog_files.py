"""Reading the YAML catalogs: parse errors and line numbers for the domain's loaders.

Each loader lives with its domain (``workflows.screening``, ``intake.catalog``, …) and
uses these, so a broken file fails at start-up with a message naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class CatalogError(ValueError):
    """A configuration file is broken; the message names file and line."""


def read_yaml(path: Path) -> Any:
    """Parse one YAML file, turning parse errors into CatalogError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else "?"
        raise CatalogError(f"{path}, line {line}: {exc.problem}") from None


def read_yaml_nodes(path: Path) -> yaml.Node | None:
    """The composed node tree of a file that ``read_yaml`` already parsed (for line numbers)."""
    return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)


def line_of(node: yaml.Node | None, *keys: str | int) -> int | None:
    """The 1-based line of the value at ``keys`` (mapping keys, sequence indexes), if found."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in keys:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if 0 <= key < len(node.value) else None
        else:
            node = None
        if node is None:
            return line
        line = node.start_mark.line + 1
    return line
