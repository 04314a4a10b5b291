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


def _stub_defaults(cls: str) -> dict[str, object]:
    """The defaults the stub's ``__new__`` of class `cls` gives, by name."""
    tree = ast.parse(STUB.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    (init,) = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__new__"]
    args = init.args
    out: dict[str, object] = {}
    positional = args.posonlyargs + args.args
    for a, d in zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True):
        out[a.arg] = ast.literal_eval(d)
    for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if kd is not None:
            out[a.arg] = ast.literal_eval(kd)
    return out


def test_every_default_lives_in_one_place() -> None:
    """The socket arguments' defaults come from the core's defaults (socket_defaults):
    the signature Python shows (written out by hand) and the stubs agree with them."""
    import inspect

    from afxdp_rs import _afxdp

    one_place = _afxdp._socket_defaults()
    # Forwarder and VhostUser pass these to their sockets (their other arguments, such
    # as the Forwarder's complete_checksums=True, are their own settings).
    passed = {"mode", "bind", "frame_size", "frame_count", "fix_offloads"}
    busy = {"busy_poll", "busy_poll_usecs", "busy_poll_budget"}
    for cls in ("XskSocket", "Forwarder", "VhostUser"):
        runtime = {
            name: p.default
            for name, p in inspect.signature(getattr(afxdp_rs, cls)).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        stub = _stub_defaults(cls)
        shared = set(one_place) & set(runtime)
        if cls != "XskSocket":
            assert shared >= passed, (cls, passed - shared)
            shared = passed | (busy if cls == "Forwarder" else set())
        else:
            assert shared == set(one_place), set(one_place) - shared
        for name in shared:
            assert runtime[name] == one_place[name], (cls, name, runtime[name], one_place[name])
            assert stub[name] == one_place[name], (cls, name, stub[name], one_place[name])
        assert set(runtime) == set(stub), (cls, set(runtime) ^ set(stub))
