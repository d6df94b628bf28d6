"""The house rules of the package layout, read from the source: imports run one way, with no circles, and no
module reaches into another package's private names. Checked statically (every import statement, also those
inside functions), so a new module is covered the moment it exists."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robust_attn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a relative import ``from ...target import`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, list[str], bool]]:
    """(imported module, imported names, at module level) for every import in module ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    top = _outside_functions(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path.name == "__init__.py", node.level, node.module)
            names = [a.name for a in node.names]
            # ``from . import sub`` imports the submodule ``sub``
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            found += [(s, [], id(node) in top) for s in subs]
            found.append((target, [n for n in names if f"{target}.{n}" not in MODULES], id(node) in top))
    return [(m, n, t) for m, n, t in found if m.split(".")[0] == "robust_attn"]


def _outside_functions(tree: ast.Module) -> set[int]:
    """The ids of the statements that run when the module is imported or type-checked: everything outside a
    function body, ``if TYPE_CHECKING:`` blocks included (a type-only import still ties the two modules)."""
    ids: set[int] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        ids.add(id(node))
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
    return ids


def _owner(module: str) -> str:
    """The package a module belongs to (``robust_attn.sweep`` for ``robust_attn.sweep.engine``)."""
    return module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]


def test_no_import_circles():
    """Imports outside functions form no cycle, type-only ones included (a package's ``__init__`` importing its own modules is how a package
    exports them; an edge from a module to the ``__init__`` of a package containing it is left out, as
    Python resolves it to the names already bound)."""
    graph = {m: {i for i, _, top in _imports(m) if top and i in MODULES and i != m
                 and not m.startswith(i + ".")} for m in MODULES}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if seen.get(n) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in seen:
                visit(n)
        stack.pop()
        seen[m] = 2

    for m in MODULES:
        if m not in seen:
            visit(m)


def test_no_module_imports_another_packages_private_names():
    offenders = [f"{m} imports {name} from {target}" for m in MODULES for target, names, _ in _imports(m)
                 for name in names if name.startswith("_") and not name.startswith("__")
                 and not (m + ".").startswith(_owner(target) + ".")]
    assert not offenders, offenders


@pytest.mark.parametrize(("lower", "upper"), [
    ("robust_attn.models", "robust_attn.attacks"),  # models know no attacks
    ("robust_attn.attacks", "robust_attn.sweep"),
    ("robust_attn.run", "robust_attn.report"),
    ("robust_attn.sweep", "robust_attn.report"),
    ("robust_attn.transfer", "robust_attn.report"),
    ("robust_attn.report", "robust_attn.attacks"),  # the report reads result files only
    ("robust_attn.report", "robust_attn.models"),
    ("robust_attn.report", "robust_attn.sweep"),
    ("robust_attn.report", "robust_attn.transfer"),
    ("robust_attn.report", "robust_attn.run"),
])
def test_data_flows_one_way(lower, upper):
    """Data -> models -> attacks -> run (sweep, transfer) -> results files -> report: no arrow points back."""
    back = [f"{m} imports {i}" for m in MODULES if m == lower or m.startswith(lower + ".")
            for i, _, _ in _imports(m) if i == upper or i.startswith(upper + ".")]
    assert not back, back


def test_nothing_imports_the_cli():
    users = [m for m in MODULES if not m.startswith("robust_attn.cli") and m != "robust_attn.__main__"
             for i, _, _ in _imports(m) if i == "robust_attn.cli" or i.startswith("robust_attn.cli.")]
    assert not users, users


def test_no_module_is_named_like_a_function_it_exports():
    """``robust_attn.sweep`` is a package and ``run_sweep`` its function: a module named like its function
    makes ``robust_attn.sweep`` mean one or the other depending on what was imported first."""
    clashes = []
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        exported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        children = {c.rpartition(".")[2] for c in MODULES if c.rpartition(".")[0] == m}
        clashes += [f"{m}.{c}" for c in children & (defined | exported) if not MODULES[f"{m}.{c}"].samefile(path)
                    and f"{m}.{c}" in MODULES and _is_function_or_class(f"{m}.{c}", c, m)]
    assert not clashes, clashes


def _is_function_or_class(child: str, short: str, parent: str) -> bool:
    """Whether ``parent`` binds ``short`` to something other than its submodule ``child``."""
    tree = ast.parse(MODULES[parent].read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == short:
            return True
        if isinstance(node, ast.ImportFrom):
            target = _resolve(parent, True, node.level, node.module)
            if any((a.asname or a.name) == short and f"{target}.{a.name}" != child for a in node.names):
                return True
    return False


def test_an_attack_is_one_file():
    """Every module of the attacks package is imported with it, so a new attack file registers itself
    without being named anywhere else."""
    import subprocess
    import sys

    code = ("import sys, pkgutil, robust_attn.attacks as a; "
            "print(sorted(m.name for m in pkgutil.iter_modules(a.__path__) if f'robust_attn.attacks.{m.name}' "
            "not in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    entries = [p.stem for p in (PACKAGE / "attacks").glob("*.py") if "@register_attack" in p.read_text()
               or "register_attack(AttackCfg" in p.read_text()]
    init = (PACKAGE / "attacks" / "__init__.py").read_text()
    assert entries and not [e for e in entries if e in init and e != "registry"], "entries are found, not listed"
