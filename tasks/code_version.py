"""A stage's code version, derived from the code it reaches: never a hand-kept list.

The version of a task module is the hash of its own source, of every project module it imports
(transitively, imports inside functions included, package ``__init__`` files included), and of
the files those modules declare in a module-level ``STAGE_FILES`` tuple: data they read (prompt
templates) and programs they launch as processes (the training worker, the sandbox worker), whose
own imports are followed as well. A module's ``OPTIONAL_IMPORTS`` tuple names modules it imports only
when a setting picks them (the sandbox pool's Docker backend): those are not followed here, and the
setting's section puts their code version in its own cache key when it picks them
(``SandboxSection.cache_key``), so editing the Docker backend re-runs nothing that runs on ``local``.

The import graph is read from the source (``ast``), not from ``sys.modules``: what a module
*can* reach counts, whether or not this process has imported it yet. Project code is whatever
lives in the four packages ``flows``, ``tasks``, ``sandbox`` and ``storage``; the standard library
and third-party packages are versioned by the environment, not here.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PARSE_LOCK = threading.Lock()
PROJECT_PACKAGES = ("flows", "tasks", "sandbox", "storage")


def module_file(name: str) -> Path | None:
    """The source file of a project module or package, or None when ``name`` is not project code."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = path.resolve().relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def parent_packages(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def declared_files(tree: ast.Module, path: Path) -> list[Path]:
    """The paths in a module-level ``STAGE_FILES = (...)``: each entry a path relative to the
    project root (``"configs/prompts/rewrite.md"``) or a dotted module name (``"tasks.training.worker"``)."""
    found: list[Path] = []
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if not any(isinstance(t, ast.Name) and t.id == "STAGE_FILES" for t in targets) or node.value is None:
            continue
        for entry in ast.literal_eval(node.value):
            file = (
                module_file(entry)
                if "/" not in entry and not entry.endswith((".py", ".md", ".txt", ".json", ".yaml"))
                else None
            )
            file = file or PROJECT_ROOT / entry
            if not file.is_file():
                raise FileNotFoundError(
                    f"{path}: STAGE_FILES names {entry!r}, which is neither a project module nor a file"
                )
            found.append(file)
    return found


def declared_names(tree: ast.Module, name: str) -> tuple[str, ...]:
    """The strings of a module-level ``NAME = (...)`` tuple, or none."""
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return tuple(ast.literal_eval(node.value))
    return ()


def direct_dependencies(path: Path) -> tuple[Path, ...]:
    """The project files ``path`` imports (anywhere in the module, lazily too) or declares."""
    stat = path.stat()
    return parsed_dependencies(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4096)
def parsed_dependencies(path: Path, mtime_ns: int, size: int) -> tuple[Path, ...]:
    """``direct_dependencies``, parsed once per version of the file (keyed on its mtime and size)."""
    with _PARSE_LOCK:  # ast.parse is not thread-safe on CPython 3.11: parallel shards computing their cache keys at
        # once raised "SystemError: AST constructor recursion depth mismatch", and the shard's result was not cached
        tree = ast.parse(path.read_text(), filename=str(path))
    own = module_name(path) if path.resolve().is_relative_to(PROJECT_ROOT) else ""
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names.append(stem)
            names += [f"{stem}.{alias.name}" for alias in node.names]  # ``from pkg import module``
    optional_names = set(declared_names(tree, "OPTIONAL_IMPORTS"))
    optional = {f.resolve() for f in map(module_file, optional_names) if f}
    files: list[Path] = []
    for name in names:
        if name in optional_names:
            continue  # nor its packages: they are imported only with it
        file = module_file(name)
        if file is None and "." not in name and (path.parent / f"{name}.py").is_file():
            file = path.parent / f"{name}.py"  # a script importing its neighbours (sandbox/worker.py)
        if file is None:
            continue
        files += [f for f in map(module_file, parent_packages(module_name(file))) if f]
        files.append(file)
    files += declared_files(tree, path)
    return tuple(
        dict.fromkeys(f.resolve() for f in files if f.resolve() != path.resolve() and f.resolve() not in optional)
    )


def reachable_files(module: str) -> list[Path]:
    """``module``'s file, its packages' ``__init__`` files and everything they reach, sorted."""
    start = module_file(module)
    if start is None:
        raise ValueError(f"{module} is not a module of this project ({', '.join(PROJECT_PACKAGES)})")
    seen: set[Path] = set()
    pending = [start.resolve()] + [f.resolve() for f in map(module_file, parent_packages(module)) if f]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".py":  # a data file (a prompt) is hashed, not read for imports
            pending += [p for p in direct_dependencies(path) if p not in seen]
    return sorted(seen)


def files_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path.name).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_version(module: str) -> str:
    """The hash of everything ``module`` reaches, read afresh: an edited file counts at once."""
    return files_hash(reachable_files(module))
