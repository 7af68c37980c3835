"""Components by name, checked without building them: each slot's registered names and the
arguments each takes, as plain data. train.py checks a command line against the written copy
(``catalog.json`` beside this file) before torch loads, so that a typo is answered in about a
second; building checks against the registry itself (ganopt/setup/registry.py), from which
``python scripts/docs_reference.py`` writes the copy (a test fails while it is stale).
docs/architecture.md has the recipes."""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganopt.config import ConfigError

#: the key of a component node that names its registered entry
NAME = "name"
#: slots a config may leave empty (null)
OPTIONAL_SLOTS = ("reg2", "reg3")
#: the registry's names and arguments, as scripts/docs_reference.py last wrote them
WRITTEN_PATH = Path(__file__).with_name("catalog.json")


@dataclass(frozen=True)
class Catalog:
    """What a config can choose: for each slot (``optim.g``) its kind and the arguments ganopt
    passes itself; for each kind (``optimizer``) its registered names and the keyword
    arguments each takes; the optimizers that look ahead (extragradient)."""

    slots: Mapping[str, tuple[str, tuple[str, ...]]]
    arguments: Mapping[str, Mapping[str, tuple[str, ...]]]
    extrapolating: tuple[str, ...]

    def chosen(self, key: str, node: object) -> tuple[str, dict[str, Any]]:
        """The registered name and the arguments the node at ``key`` sets. Raises ConfigError,
        naming the key, for a node that is not a mapping, names no registered entry, or sets
        an argument the entry does not take."""
        kind, supplied = self.slots[key]
        entries = self.arguments[kind]
        if not isinstance(node, Mapping):
            raise ConfigError([f"{key}: must be a config node naming a {kind}, got {node!r}"])
        name = node.get(NAME)
        if not isinstance(name, str) or name not in entries:
            choices = ", ".join(sorted(entries))
            raise ConfigError([f"{key}.{NAME}: no {kind} {name!r}; choose from {choices}"])
        accepted = [a for a in entries[name] if a not in supplied]
        kwargs = {k: v for k, v in node.items() if k != NAME}
        problems = [_unknown_argument(key, kind, name, k, accepted) for k in sorted(kwargs)]
        if problems := [p for p in problems if p]:
            raise ConfigError(problems)
        return name, kwargs

    def problems(self, config: Mapping[str, Any]) -> list[str]:
        """Every problem with the components a plain (resolved) config names."""
        problems = []
        for key in self.slots:
            head, _, tail = key.partition(".")
            node = config.get(head)
            if tail:
                node = node.get(tail) if isinstance(node, Mapping) else None
            if node is None and key in OPTIONAL_SLOTS:
                continue
            try:
                self.chosen(key, node)
            except ConfigError as e:
                problems += e.problems
        return problems

    def as_json(self) -> str:
        """The catalog as ``catalog.json`` holds it (sorted, one entry a line)."""
        data = {
            "slots": {k: [kind, list(s)] for k, (kind, s) in self.slots.items()},
            "arguments": {k: dict(sorted(v.items())) for k, v in self.arguments.items()},
            "extrapolating": sorted(self.extrapolating),
        }
        return _dump(data) + "\n"


def _unknown_argument(
    key: str, kind: str, name: str, argument: str, accepted: Collection[str]
) -> str:
    if argument in accepted:
        return ""
    close = difflib.get_close_matches(str(argument), accepted, n=1)
    hint = f"did you mean {key}.{close[0]}? " if close else ""
    takes = ", ".join(sorted(accepted)) or "no arguments"
    return f"{key}.{argument}: not an argument of {kind} {name!r} ({hint}it takes {takes})"


def _dump(value: object, depth: int = 0) -> str:
    """JSON with a line per mapping entry and each list on one line: one name, one line."""
    if not isinstance(value, dict) or not value:
        return json.dumps(value)
    pad = "  " * (depth + 1)
    items = [f"{pad}{json.dumps(k)}: {_dump(v, depth + 1)}" for k, v in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"


def written() -> Catalog:
    """The catalog as scripts/docs_reference.py wrote it from the registry."""
    data = json.loads(WRITTEN_PATH.read_text(encoding="utf-8"))
    return Catalog(
        slots={k: (kind, tuple(s)) for k, (kind, s) in data["slots"].items()},
        arguments={k: {n: tuple(a) for n, a in v.items()} for k, v in data["arguments"].items()},
        extrapolating=tuple(data["extrapolating"]),
    )
