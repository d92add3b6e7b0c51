"""Class labels and colours for bundles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Label:
    name: str
    color: tuple[int, int, int]


# The 19 Cityscapes training classes with their official colours.
CITYSCAPES: tuple[Label, ...] = tuple(Label(n, c) for n, c in [
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)), ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)), ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)), ("car", (0, 0, 142)), ("truck", (0, 0, 70)), ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)),
])


def load(spec: str) -> tuple[Label, ...]:
    """`cityscapes`, or a file: JSON (a list of {"name", "color": [r, g, b]})
    or text with one class per line, `name` or `name r g b` (colour default grey)."""
    if spec == "cityscapes":
        return CITYSCAPES
    path = Path(spec)
    text = path.read_text()
    labels: list[Label] = []
    if text.lstrip().startswith("["):
        for i, item in enumerate(json.loads(text)):
            try:
                labels.append(Label(str(item["name"]), _color(item.get("color", [128, 128, 128]))))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: entry {i}: want {{\"name\": ..., \"color\": [r, g, b]}}: {e}") from None
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            parts = line.strip().rsplit(maxsplit=3)
            if not line.strip():
                continue
            if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
                labels.append(Label(parts[0], _color(parts[1:])))
            else:
                labels.append(Label(line.strip(), (128, 128, 128)))
    if not labels:
        raise ValueError(f"{path}: no classes")
    names = [l.name for l in labels]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate class names {dup}")
    return tuple(labels)


def _color(v) -> tuple[int, int, int]:
    c = tuple(int(x) for x in v)
    if len(c) != 3 or not all(0 <= x <= 255 for x in c):
        raise ValueError(f"colour {list(v)}: want three values in 0..255")
    return c  # type: ignore[return-value]
