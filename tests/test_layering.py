"""The package's import graph, read with ``ast`` (nothing is executed), against its layering.

Layers, bottom to top (docs/architecture.md); a module may import its own layer and the ones
below it, never one above:

    library    jaxmag.* except the names below: physics (grid, material, fields, llg,
               integrators, drivers, energy), defects, measures, noise, channels, simulate,
               io, models, ...; it takes plain objects and never sees the config
    config     jaxmag.config: composes the library's parameter records, reads TOML
    assembly   jaxmag.assemble: a Config -> the library's plain objects, once
    application  jaxmag.learn.*: training, evaluation, prediction, fine-tuning, studies, reports;
               jaxmag.validate (the MuMax3 validation job)
    cli        jaxmag.cli.*, jaxmag.__main__: the commands
    facade     jaxmag (the package __init__): the curated public API, may name anything

Function-level (lazy) imports count like top-level ones. Besides the layer order, no two
modules may import each other, directly or through others (an import circle), except a package
``__init__`` and the modules under it, which Python ties together anyway.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxmag"

LAYERS = ("library", "config", "assembly", "application", "cli", "facade")
APPLICATION_MODULES = ("jaxmag.validate",)  # jobs outside jaxmag.learn that start from a config
# the one name the library may read from the package root: the version string
ROOT_NAMES_ALLOWED = {"__version__"}


def layer(module: str) -> str:
    if module == "jaxmag":
        return "facade"
    if module == "jaxmag.__main__" or module == "jaxmag.cli" or module.startswith("jaxmag.cli."):
        return "cli"
    if module == "jaxmag.learn" or module.startswith("jaxmag.learn.") or module in APPLICATION_MODULES:
        return "application"
    if module == "jaxmag.assemble":
        return "assembly"
    if module == "jaxmag.config":
        return "config"
    return "library"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, str]]:
    """``(imported module, line, imported name or "")`` of every jaxmag import in the file."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, "") for a in node.names if a.name.split(".")[0] == "jaxmag"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "jaxmag":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                # ``from jaxmag.io import dataset`` imports the module jaxmag.io.dataset
                out.append((sub, node.lineno, "") if sub in modules else (target, node.lineno, a.name))
    return out


def graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = all_modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    back = []
    for name, path in modules.items():
        for target, line, imported in imports_of(path, modules):
            if target not in modules:
                back.append(f"{name}:{line} imports {target}, which does not exist")
                continue
            if target != name:
                edges[name].add(target)
            if target == "jaxmag" and imported in ROOT_NAMES_ALLOWED:
                continue
            if LAYERS.index(layer(target)) > LAYERS.index(layer(name)):
                back.append(f"{name} ({layer(name)}) imports {target} ({layer(target)}) at line {line}")
    return edges, back


def _is_package_tie(a: str, b: str) -> bool:
    return a.startswith(b + ".") or b.startswith(a + ".")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), package ties removed."""
    pruned = {a: {b for b in bs if not _is_package_tie(a, b)} for a, bs in edges.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in pruned[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(pruned):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_a_layer_above_its_own():
    _, back = graph()
    assert not back, "back edges in the layering:\n" + "\n".join(back)


def test_no_import_circles():
    found = cycles(graph()[0])
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_library_never_reads_the_config_schema():
    # the sharpest form of the rule: no library module even names jaxmag.config or the assembly
    modules = all_modules()
    offenders = [f"{name}: {target}" for name, path in modules.items() if layer(name) == "library"
                 for target, _, _ in imports_of(path, modules) if target in ("jaxmag.config", "jaxmag.assemble")]
    assert not offenders, offenders


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    # a self-check of the ast walk on a synthetic module (function-level and relative imports)
    src = "def f():\n    from jaxmag.learn import loop\n    from ..config import Config\n"
    path = PACKAGE / "io" / "_probe_does_not_exist.py"
    tree_imports = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            tree_imports.append((node.module, node.level))
    assert ("jaxmag.learn", 0) in tree_imports and ("config", 2) in tree_imports
    assert layer(module_name(path)) == "library" and layer("jaxmag.learn.loop") == "application"
