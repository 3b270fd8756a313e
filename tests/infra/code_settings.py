"""Which app settings the code reads, found by reading the code (ast), so the infra tests follow the code.

A read is a string given to `env.get(...)`, `environ.get(...)`, `os.environ.get(...)`, `os.getenv(...)`,
`env[...]` / `os.environ[...]`, or as the first argument of a `_parse_*(...)` helper. The string may be a literal, a
module constant (from any scanned module), a local name bound to one, an f-string or a `+` of those; reads of
anything else (a function parameter) are left to the call site that passes the literal.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

_ENV_NAMES = {"env", "environ", "environment"}


def _is_environ(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _ENV_NAMES
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)


class _Resolver:
    def __init__(self, constants: dict[str, str]) -> None:
        self.constants = constants

    def value(self, node: ast.expr | None, local: dict[str, str]) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return local.get(node.id, self.constants.get(node.id))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left, local), self.value(node.right, local)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    if part.format_spec is not None or part.conversion != -1:
                        return None
                    resolved = self.value(part.value, local)
                else:
                    resolved = self.value(part, local)
                if resolved is None:
                    return None
                parts.append(resolved)
            return "".join(parts)
        return None

    def bindings(self, body: Iterable[ast.AST], base: dict[str, str]) -> dict[str, str]:
        local = dict(base)
        for node in body:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Assign) and len(inner.targets) == 1 and isinstance(inner.targets[0], ast.Name):
                    resolved = self.value(inner.value, local)
                    if resolved is not None:
                        local[inner.targets[0].id] = resolved
        return local


def _module_constants(trees: Iterable[ast.Module]) -> dict[str, str]:
    constants: dict[str, str] = {}
    resolver = _Resolver(constants)
    for _ in range(3):  # constants defined from other constants, possibly in other modules
        for tree in trees:
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    resolved = resolver.value(node.value, {})
                    if resolved is not None:
                        constants[node.targets[0].id] = resolved
    return constants


def _reads_in(node: ast.AST, resolver: _Resolver, local: dict[str, str]) -> set[str]:
    found: set[str] = set()
    for inner in ast.walk(node):
        argument: ast.expr | None = None
        if isinstance(inner, ast.Call):
            func = inner.func
            first = inner.args[0] if inner.args else None
            environ_get = isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value)
            getenv = isinstance(func, ast.Attribute) and func.attr == "getenv"
            parser = isinstance(func, ast.Name) and func.id.startswith("_parse_")
            if environ_get or getenv or parser:
                argument = first
        elif isinstance(inner, ast.Subscript) and _is_environ(inner.value):
            argument = inner.slice
        value = resolver.value(argument, local) if argument is not None else None
        if value:
            found.add(value)
    return found


def settings_read(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Setting name -> the files that read it."""
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in paths}
    resolver = _Resolver(_module_constants(trees.values()))
    reads: dict[str, set[str]] = {}
    for path, tree in trees.items():
        scopes: list[tuple[ast.AST, dict[str, str]]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                scopes.append((node, resolver.bindings(node.body, {})))
        scopes.append((tree, {}))
        for scope, local in scopes:
            for name in _reads_in(scope, resolver, local):
                reads.setdefault(name, set()).add(path.name)
    return reads
