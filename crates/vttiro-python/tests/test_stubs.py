"""The type stubs shipped in the wheel describe the compiled module as it is: every name
in one is in the other, classes with the same members, functions with the same keyword
arguments."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import vttiro
from vttiro import _native


def stub_tree() -> ast.Module:
    stub = Path(vttiro.__file__).with_name("_native.pyi")
    assert stub.is_file(), "the wheel ships the stubs"
    return ast.parse(stub.read_text())


def public(names) -> set:
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def test_stub_names_match_the_module() -> None:
    tree = stub_tree()
    declared = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
    assert public(declared) == public(dir(_native))


def test_stub_classes_and_functions_match() -> None:
    for node in stub_tree().body:
        if isinstance(node, ast.ClassDef):
            runtime = getattr(_native, node.name)
            members = {
                item.target.id if isinstance(item, ast.AnnAssign) else item.name
                for item in node.body
                if isinstance(item, (ast.AnnAssign, ast.FunctionDef))
            }
            if issubclass(runtime, BaseException):
                continue  # `code` and `exit_code` are set on each raised instance
            assert members == public(dir(runtime)), node.name
        elif isinstance(node, ast.FunctionDef):
            runtime = getattr(_native, node.name)
            stub_args = [a.arg for a in node.args.args + node.args.kwonlyargs]
            assert stub_args == list(inspect.signature(runtime).parameters), node.name
