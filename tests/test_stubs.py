"""The type stubs an editor shows: every public class, function, method and property
has a docstring, and the string options are typed with the values they accept."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import afxdp_rs
from afxdp_rs.types import BindMode, XdpMode

STUB = Path(afxdp_rs.__file__).with_name("_afxdp.pyi")


def test_every_public_name_has_a_docstring() -> None:
    missing: list[str] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                name = prefix + node.name
                if not node.name.startswith("_") and ast.get_docstring(node) is None:
                    missing.append(name)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")

    visit(ast.parse(STUB.read_text()).body, "")
    assert not missing, f"no docstring in the stubs: {', '.join(missing)}"


def test_mode_and_bind_are_literals() -> None:
    assert typing.get_args(XdpMode) == ("auto", "native", "skb")
    assert {"auto", "copy", "zerocopy"} <= set(typing.get_args(BindMode))
    text = STUB.read_text()
    assert "mode: str" not in text and "bind: str" not in text
