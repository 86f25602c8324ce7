"""The house (docs/design.md): no package imports one on a higher floor.

Floors, bottom to top. A module may import from its own floor or a lower one, never a
higher one; two rooms on one floor may use each other except where docs/design.md says
"must not" (layers never import neurons). ``cli.py`` is imported by nothing, and the
package never imports ``benchmarks``. Every ``import`` statement counts, also the ones
inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hdlif_ref

PACKAGE = Path(hdlif_ref.__file__).parent

FLOORS = {
    # floor 0: utilities that import only the standard library, numpy and h5py; kernels; datasets
    "_version": 0, "_safe_files": 0, "_sealed_h5": 0, "_domains": 0, "kernels": 0, "datasets": 0,
    "autograd": 1,
    "module": 2,
    "neurons": 3, "layers": 3,
    "models": 4,
    "training": 5, "deploy": 5, "oracle": 5,
    "_cli": 6, "cli": 6,
}
#: Same-floor pairs that docs/design.md forbids.
FORBIDDEN = {("layers", "neurons")}


def room(module: str) -> str:
    """``hdlif_ref.layers.norm`` -> ``layers``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    """Every module named by an import in ``path`` (relative imports resolved; ``from x import y`` gives ``x.y``)."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    module = ".".join(relative.parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if path.name == "__init__.py":
        module = package = module[: -len(".__init__")]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def edges() -> list[tuple[str, str]]:
    """(importing module, imported module) for every module of the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        out += [(module, target) for target in imports_of(path)]
    return out


def violations(pairs) -> list[str]:
    """Every import that goes up a floor, into a forbidden room, into cli.py or into benchmarks."""
    bad = []
    for source, target in pairs:
        if target.split(".")[0] == "benchmarks":
            bad.append(f"{source} imports {target}: the package never imports benchmarks/")
            continue
        if not target.startswith("hdlif_ref."):
            continue
        a, b = room(source), room(target)
        if a == b or a == "__init__":  # within a room; the front door re-exports every floor
            continue
        if b not in FLOORS:  # a name imported from the package root (``from .. import x``) is checked as x
            continue
        if b == "cli":
            bad.append(f"{source} imports {target}: cli.py is imported by nothing")
        elif a not in FLOORS:
            bad.append(f"{source}: room {a!r} has no floor in tests/test_layout.py (add it, and to docs/design.md)")
        elif FLOORS[b] > FLOORS[a]:
            bad.append(f"{source} (floor {FLOORS[a]}, {a}) imports {target} (floor {FLOORS[b]}, {b})")
        elif (a, b) in FORBIDDEN:
            bad.append(f"{source} imports {target}: docs/design.md says {a} must not import {b}")
    return bad


def test_no_package_imports_one_on_a_higher_floor():
    assert violations(edges()) == []


def test_every_room_of_the_package_has_a_floor():
    rooms = {room(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert rooms - {"__init__"} <= set(FLOORS), sorted(rooms - {"__init__"} - set(FLOORS))


@pytest.mark.parametrize("pair, why", [
    (("hdlif_ref.layers.norm", "hdlif_ref.models.builders"), "floor 3, layers"),
    (("hdlif_ref.neurons.base", "hdlif_ref.training.trainer"), "floor 3, neurons"),
    (("hdlif_ref.kernels.conv", "hdlif_ref.autograd"), "floor 0, kernels"),
    (("hdlif_ref.module", "hdlif_ref.layers.norm"), "floor 2, module"),
    (("hdlif_ref.layers.seca", "hdlif_ref.neurons"), "layers must not import neurons"),
    (("hdlif_ref._cli.train", "hdlif_ref.cli"), "cli.py is imported by nothing"),
    (("hdlif_ref.training.run", "benchmarks.bench_e2e"), "never imports benchmarks"),
])
def test_the_check_sees_each_kind_of_violation(pair, why):
    found = violations([pair])
    assert len(found) == 1 and why in found[0]


def test_downward_and_same_room_imports_pass():
    assert violations([("hdlif_ref.models.builders", "hdlif_ref.neurons"), ("hdlif_ref.training.run",
                                                                           "hdlif_ref.deploy.metrics"),
                       ("hdlif_ref.layers.norm", "hdlif_ref.layers._steps"), ("hdlif_ref", "hdlif_ref.cli")]) == []
