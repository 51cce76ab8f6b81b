"""Print the package's layout figures: folders, code lines, public names, and the import-layer rules.

    python scripts/layout_report.py                 # this checkout
    python scripts/layout_report.py --rev effdc9b   # another commit (read with git show, nothing checked out)
    python scripts/layout_report.py --check         # only the import-layer rules: exit 1 if one is broken

Code lines are lines holding a code token, outside docstrings and comments, ``testing/`` included.
Public names are the entries of ``__all__`` in the modules outside ``testing/``. The layer rules are
those ``tests/test_layout.py`` enforces (:data:`LAYERS`); a violation is printed with its line.
No import of the package happens: everything is read as text, so any commit can be measured.
"""

from __future__ import annotations

import argparse
import ast
import io
import itertools
import re
import subprocess
import sys
import tokenize
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_etelecom"
#: What each part of the package may import, besides the standard library and itself: the
#: package's own parts, by prefix, and the third-party roots that name a layer.
LAYERS: dict[str, dict[str, frozenset[str]]] = {
    "exceptions": {"own": frozenset(), "forbidden": frozenset({"airflow", "fsspec", "pyarrow", "sqlalchemy"})},
    "client": {
        "own": frozenset({"client", "exceptions", "__init__"}),
        "forbidden": frozenset({"airflow", "fsspec", "pyarrow", "sqlalchemy", "boto3", "botocore", "s3fs"}),
    },
    "outputs": {
        "own": frozenset({"client", "exceptions", "outputs"}),
        "forbidden": frozenset(),
    },
}
#: Package parts that may never import the named parts (outputs never imports an operator).
NEVER: dict[str, frozenset[str]] = {
    "outputs": frozenset({"operators", "sensors", "triggers", "transfers", "hooks"}),
    "client": frozenset({"operators", "sensors", "triggers", "transfers", "hooks", "outputs", "contract", "testing"}),
    "sensors": frozenset({"operators", "transfers"}),
    "triggers": frozenset({"operators", "sensors", "transfers"}),
    "hooks": frozenset({"operators", "sensors", "triggers", "transfers", "outputs"}),
}


@dataclass
class Module:
    path: str  # relative to the package, e.g. "client/paging.py"
    text: str

    @property
    def part(self) -> str:
        head = self.path.split("/", 1)[0]
        return head[:-3] if head.endswith(".py") else head


def read_modules(rev: str | None) -> list[Module]:
    """Return every ``.py`` file of the package at ``rev`` (``None``: the working tree)."""
    if rev is None:
        base = ROOT / PACKAGE
        return [Module(str(p.relative_to(base)), p.read_text(encoding="utf-8")) for p in sorted(base.rglob("*.py"))]
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, PACKAGE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    modules = []
    for name in sorted(n for n in names if n.endswith(".py")):
        text = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True, check=True)
        modules.append(Module(name.split("/", 1)[1], text.stdout))
    return modules


def docstring_lines(tree: ast.AST) -> set[int]:
    """Return the line numbers that docstrings (module, class, function) span."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if first is not None and isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    # Attribute docstrings (a string right after an assignment) are docs too.
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            for prev, stmt in itertools.pairwise(stmts):
                if (
                    isinstance(prev, (ast.Assign, ast.AnnAssign))
                    and isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def code_lines(text: str) -> int:
    """Count the lines holding a code token, outside docstrings and comments."""
    docs = docstring_lines(ast.parse(text))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in skip or token.type == tokenize.ENDMARKER:
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if line not in docs:
                lines.add(line)
    return len(lines)


def public_names(text: str) -> list[str]:
    """Return the names in a module's ``__all__`` (a literal list or tuple), if it has one, with
    those a top-level ``if`` adds (``__all__ += [...]`` for a name only some Airflow versions have)."""
    names: list[str] = []
    tree = ast.parse(text)
    nodes = [*tree.body, *(n for top in tree.body if isinstance(top, ast.If) for n in top.body)]
    for node in nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                value = node.value
                if isinstance(value, (ast.List, ast.Tuple)):
                    names += [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return names


def imports(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line, module)`` for every import, at any depth (lazy imports included)."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            if node.module == PACKAGE:  # from airflow_provider_etelecom import exceptions (a module)
                for alias in node.names:
                    if not alias.name.startswith("__") and not alias.name.isupper():
                        yield node.lineno, f"{PACKAGE}.{alias.name}"


def violations(modules: list[Module]) -> list[str]:
    """Return the import-layer rules each module breaks, one line each."""
    found = []
    for module in modules:
        for line, name in imports(module.text):
            where = f"{PACKAGE}/{module.path}:{line} imports {name}"
            root = name.split(".")[0]
            if root == PACKAGE:
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else "__init__"
                private = [p for p in parts[1:] if p.startswith("_") and not p.startswith("__")]
                if private and target != module.part:
                    found.append(f"{where}: a private module of another package")
                if target in NEVER.get(module.part, ()):
                    found.append(f"{where}: {module.part}/ never imports {target}/")
                rule = LAYERS.get(module.part)
                if rule is not None and target != module.part and target not in rule["own"]:
                    found.append(f"{where}: {module.part} may import only {sorted(rule['own'])} of the package")
            elif root in LAYERS.get(module.part, {}).get("forbidden", ()):
                found.append(f"{where}: {module.part} imports no {root}")
        for node in ast.walk(ast.parse(module.text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
                owner = node.module.split(".")[1] if "." in node.module else "__init__"
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__") and owner != module.part:
                        found.append(
                            f"{PACKAGE}/{module.path}:{node.lineno} imports the private name {alias.name} "
                            f"of {node.module}"
                        )
    return found


#: Where users import from, besides the package: the docs' snippets and these folders.
USER_SOURCES = ("example_dags", "benchmarks", "e2e", "scripts")


def _imported_names(text: str) -> Iterator[tuple[str, str]]:
    """Yield ``(module, name)`` for each ``from airflow_provider_etelecom... import name`` in ``text``."""
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a docs snippet that is not Python
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith(PACKAGE):
            for alias in node.names:
                yield node.module, alias.name


def unused_public_names(modules: list[Module], user_texts: list[str]) -> list[str]:
    """Return ``module.name`` for each ``__all__`` entry that no user text and no other layer imports.

    ``__all__`` lists what a user or another layer imports; a name only its own layer (or the tests)
    uses is not public.
    """
    wanted: set[tuple[str, str]] = {pair for text in user_texts for pair in _imported_names(text)}
    wanted.update(entry_points())  # get_provider_info: Airflow finds it by name, no import to see
    for module in modules:
        wanted.update(
            (name, alias)
            for name, alias in _imported_names(module.text)
            if (name.split(".")[1] if "." in name else "__init__") != module.part
        )
    found = []
    for module in modules:
        if module.part == "testing":
            continue
        dotted = ".".join([PACKAGE, *module.path.removesuffix(".py").split("/")]).removesuffix(".__init__")
        found += [f"{dotted}.{n}" for n in public_names(module.text) if (dotted, n) not in wanted]
    return found


def entry_points(root: Path = ROOT) -> set[tuple[str, str]]:
    """The ``module:name`` objects pyproject.toml's entry points name (Airflow loads them by name)."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    return set(re.findall(rf'"({PACKAGE}[\w.]*):(\w+)"', text))


def missing_public_names(modules: list[Module], texts: list[str]) -> list[str]:
    """Return ``module.name`` for each name ``texts`` (the docs, the example DAGs) import from a
    module whose ``__all__`` leaves it out: what users are shown to import is public."""
    alls = {
        ".".join([PACKAGE, *m.path.removesuffix(".py").split("/")]).removesuffix(".__init__"): public_names(m.text)
        for m in modules
        if m.part != "testing"
    }
    return sorted(
        {
            f"{module}.{name}"
            for text in texts
            for module, name in _imported_names(text)
            if module in alls and name not in alls[module] and f"{module}.{name}" not in alls
        }
    )


def docs_texts(root: Path = ROOT) -> list[str]:
    """What users are shown: the README's and docs' Python snippets, and the example DAGs."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((root / "example_dags").rglob("*.py"))]
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        texts += re.findall(r"```(?:python|py)\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    return texts


def user_texts(root: Path = ROOT) -> list[str]:
    """The Python users read: the README's and docs' snippets, and the example DAGs, benchmarks, e2e and scripts."""
    texts = [p.read_text(encoding="utf-8") for d in USER_SOURCES for p in sorted((root / d).rglob("*.py"))]
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        texts += re.findall(r"```(?:python|py)\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    return texts


def report(rev: str | None, *, check: bool = False) -> int:
    modules = read_modules(rev)
    if check:
        broken = violations(modules)
        for line in broken:
            print(line, file=sys.stderr)
        return 1 if broken else 0
    folders: dict[str, list[Module]] = defaultdict(list)
    for module in modules:
        folders[module.part if "/" in module.path else "(top level)"].append(module)
    print(f"Layout of {PACKAGE} at {rev or 'the working tree'}\n")
    print("| folder | modules | code lines | public names |")
    print("|---|---:|---:|---:|")
    total_lines = total_public = 0
    for folder in sorted(folders):
        mods = folders[folder]
        lines = sum(code_lines(m.text) for m in mods)
        public = 0 if folder == "testing" else sum(len(public_names(m.text)) for m in mods)
        total_lines += lines
        total_public += public
        print(f"| {folder} | {len(mods)} | {lines:,} | {public if folder != 'testing' else '(not counted)'} |")
    print(f"| **all** | {len(modules)} | **{total_lines:,}** | **{total_public}** |")
    names = [n for m in modules if m.part != "testing" for n in public_names(m.text)]
    doubled = sorted({n for n in names if names.count(n) > 1})
    print(f"\nPublic names exported by more than one module: {len(doubled)}")
    if rev is None:
        unused = unused_public_names(modules, user_texts())
        print(f"Public names no user or other layer imports: {len(unused)}")
        missing = missing_public_names(modules, docs_texts())
        print(f"Names the docs import that no __all__ lists: {len(missing)}")
    broken = violations(modules)
    print(f"Import-layer rules broken: {len(broken)}")
    for line in broken:
        print(f"  {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="a git revision to measure instead of the working tree")
    parser.add_argument("--check", action="store_true", help="only check the import-layer rules (exit 1 if broken)")
    args = parser.parse_args(argv)
    return report(args.rev, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
