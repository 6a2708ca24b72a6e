"""Call keys: normalisation, code fingerprints, safe components and cross-process stability."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persidict import NonEmptySafeStrTuple
from persidict_memo.call_keys import SCHEME, CallKeyMaker, code_fingerprint, safe_component

_module_counter = itertools.count()


def f(x: Any, y: Any = 2) -> Any:
    return x + y


def g(a: Any, /, b: Any, *args: Any, c: Any = 3, **kwargs: Any) -> Any:
    return a


def load(tmp_path: Path, source: str, name: str | None = None) -> Any:
    """Import ``source`` as a fresh module from a real file (so inspect.getsource works)."""
    name = name or f"memo_keys_mod{next(_module_counter)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- normalisation


def test_equivalent_calls_share_one_key() -> None:
    maker = CallKeyMaker(f)
    key = maker.key((1,), {})
    assert maker.key((), {"x": 1}) == key
    assert maker.key((1, 2), {}) == key
    assert maker.key((1,), {"y": 2}) == key
    assert maker.key((), {"y": 2, "x": 1}) == key
    assert maker.key((1, 3), {}) != key
    assert maker.key((1.0,), {}) != key


def test_var_args_and_kwargs() -> None:
    maker = CallKeyMaker(g)
    key = maker.key((1, 2, 3, 4), {"d": 5, "e": 6})
    assert maker.key((1, 2, 3, 4), {"e": 6, "d": 5}) == key
    assert maker.key((1, 2, 3, 4), {"e": 6, "d": 5, "c": 3}) == key
    assert maker.key((1,), {"b": 2}) == maker.key((1, 2), {})
    assert maker.key((1, 2, 4, 3), {"d": 5, "e": 6}) != key
    assert maker.key((1, 2), {"a": 9}) != maker.key((1, 2), {})  # a= goes to **kwargs


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, 2), {}),
        ((1,), {"b": 2}),
        ((1, 2, 3), {}),
        ((1, 2), {"c": 4, "z": 5}),
        ((1, 2), {"a": 7}),
        ((1, 2), {"args": 7, "kwargs": 8}),
    ],
)
def test_fast_bind_agrees_with_inspect(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    bound = inspect.signature(g).bind(*args, **kwargs)
    bound.apply_defaults()
    assert CallKeyMaker(g).bind(args, kwargs) == dict(bound.arguments)


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (f, (), {}),
        (f, (1, 2, 3), {}),
        (f, (1,), {"x": 1}),
        (f, (1,), {"z": 1}),
        (g, (), {"a": 1, "b": 2}),
    ],
)
def test_bad_calls_raise_type_error(func: Any, args: Any, kwargs: Any) -> None:
    with pytest.raises(TypeError):
        func(*args, **kwargs)
    with pytest.raises(TypeError):
        CallKeyMaker(func).key(args, kwargs)


def test_ignore_drops_parameters() -> None:
    def h(x: int, verbose: bool = False, log: Any = None) -> int:
        return x

    maker = CallKeyMaker(h, ignore=("verbose", "log"))
    assert maker.key((1,), {"verbose": True, "log": threading.Lock()}) == maker.key((1,), {})
    assert CallKeyMaker(h, ignore="verbose").ignore == frozenset({"verbose"})


def test_unknown_ignore_name_is_value_error() -> None:
    with pytest.raises(ValueError, match="verbos"):
        CallKeyMaker(f, ignore=("verbos",))


def test_unhashable_argument_names_the_parameter() -> None:
    maker = CallKeyMaker(f)
    with pytest.raises(TypeError, match="argument 'y'") as info:
        maker.key((1, threading.Lock()), {})
    assert "ignore=('y',)" in str(info.value)
    with pytest.raises(TypeError, match=r"kwargs\['bad'\]"):
        CallKeyMaker(g).key((1, 2), {"ok": 1, "bad": threading.Lock()})
    with pytest.raises(TypeError, match=r"args\[1\]"):
        CallKeyMaker(g).key((1, 2, 3, threading.Lock()), {})


def test_describe_is_short() -> None:
    text = CallKeyMaker(f).describe(("x" * 1000,), {})
    assert text.startswith("x='xxx")
    assert "y=2" in text
    assert len(text) < 120


# ---------------------------------------------------------------------------- key layout


def test_key_layout_and_safety() -> None:
    def outer() -> Any:
        def inner(v: Any) -> Any:
            return v

        return inner

    maker = CallKeyMaker(outer())
    key = maker.key((np.arange(3),), {})
    assert len(key) == 6
    assert key[0] == SCHEME == "v2"
    assert key[1] == __name__.replace("<", "(")
    assert key[2] == "test_key_layout_and_safety.(locals).outer.(locals).inner"
    assert key[3].startswith("src~")
    assert key[4] == key[5][:2]
    assert len(key[5]) == 32
    assert tuple(NonEmptySafeStrTuple(key)) == key


@pytest.mark.parametrize(
    "text",
    ["plain", "a.b.c", "<lambda>", "é", "a b/c", "", ".", "..", "x" * 400, "f.<locals>.g"],
)
def test_safe_component_is_safe(text: str) -> None:
    component = safe_component(text)
    assert tuple(NonEmptySafeStrTuple(component)) == (component,)


def test_safe_component_keeps_distinct_names_distinct() -> None:
    names = ["é", "è", "a b", "a/b", "a_b", "x" * 300, "x" * 301, ".", ".."]
    assert len({safe_component(n) for n in names}) == len(names)
    assert safe_component("f.<locals>.g") == "f.(locals).g"


# ---------------------------------------------------------------------------- fingerprints


_BASE = '''
def compute(x, y=2):
    """Add things."""
    total = x + y  # the sum
    return total * 2
'''

_SAME = [
    # comments, docstrings, blank lines and formatting changed
    """
def compute(x, y=2):
    total = x + y
    return total * 2
""",
    '''
# leading comment


def compute(x,
            y = 2):
    """A completely different docstring.

    Spanning lines.
    """

    total = (x + y)  # another comment

    return total*2
''',
    """
import functools

@functools.lru_cache(maxsize=None)
def compute(x, y=2):
    total = x + y
    return total * 2
""",
]

_DIFFERENT = [
    """
def compute(x, y=3):
    total = x + y
    return total * 2
""",
    """
def compute(x, y=2):
    total = x - y
    return total * 2
""",
    """
def compute(x, y=2):
    total = x + y
    return total * 3
""",
    """
def compute(x, y=2):
    "Docstring kept as code? no: but this string is a statement after the first."
    total = x + y
    "a bare string later in the body is code"
    return total * 2
""",
]


def test_fingerprint_ignores_comments_docstrings_formatting(tmp_path: Path) -> None:
    base = code_fingerprint(load(tmp_path, _BASE).compute)
    assert base.startswith("src~")
    for source in _SAME:
        assert code_fingerprint(load(tmp_path, source).compute) == base, source


def test_fingerprint_changes_with_code(tmp_path: Path) -> None:
    base = code_fingerprint(load(tmp_path, _BASE).compute)
    seen = {base}
    for source in _DIFFERENT:
        seen.add(code_fingerprint(load(tmp_path, source).compute))
    assert len(seen) == len(_DIFFERENT) + 1


def test_fingerprint_of_methods_and_nested(tmp_path: Path) -> None:
    module = load(
        tmp_path,
        '''
class K:
    def method(self, x):
        """doc"""
        return x

    @staticmethod
    def static(x):
        return x
''',
    )
    assert code_fingerprint(module.K.method).startswith("src~")
    assert code_fingerprint(module.K.static).startswith("src~")
    assert code_fingerprint(module.K.method) != code_fingerprint(module.K.static)


def test_fingerprint_without_source_uses_code() -> None:
    namespace: dict[str, Any] = {}
    exec("def dyn(x):\n    return x + 1\n", namespace)
    exec("def dyn2(x):\n    return x + 2\n", namespace)
    fp = code_fingerprint(namespace["dyn"])
    assert fp.startswith("code~")
    assert fp == code_fingerprint(namespace["dyn"])
    assert fp != code_fingerprint(namespace["dyn2"])


def test_fingerprint_of_lambdas() -> None:
    one = lambda x: x + 1  # noqa: E731
    two, three = (lambda x: x + 2), (lambda x: x + 3)  # one line, two lambdas: code fallback
    assert code_fingerprint(one).startswith("src~")
    assert code_fingerprint(two) != code_fingerprint(three)


def test_version_overrides_fingerprint() -> None:
    assert code_fingerprint(f, "1.0") == "ver~1.0"
    assert code_fingerprint(f, "1.0") != code_fingerprint(f, "1.1")
    assert CallKeyMaker(f, version="2 beta").prefix[3] == safe_component("ver~2 beta")
    with pytest.raises(TypeError):
        code_fingerprint(f, "")


# ---------------------------------------------------------------------------- stability


_STABLE_MODULE = """
def target(items, mapping, *, scale=1.0):
    return len(items) * scale
"""

_CHILD = """
import sys
sys.path[:0] = [{root!r}, {tmp!r}]
import numpy as np
from persidict_memo.call_keys import CallKeyMaker
import memo_stable_target as m
args = ({{"x", "y", "z", "w"}}, {{"b": 1, "a": frozenset({{"p", "q"}})}})
arr = np.arange(1000.0)
print("/".join(CallKeyMaker(m.target).key(args, {{"scale": 2.0}})))
print("/".join(CallKeyMaker(m.target).key((arr, {{}}), {{}})))
"""


def test_key_is_the_same_in_a_fresh_process_with_another_hash_seed(tmp_path: Path) -> None:
    module = load(tmp_path, _STABLE_MODULE, name="memo_stable_target")
    maker = CallKeyMaker(module.target)
    expected = [
        "/".join(
            maker.key(({"w", "z", "y", "x"}, {"a": frozenset({"q", "p"}), "b": 1}), {"scale": 2.0})
        ),
        "/".join(maker.key((np.arange(1000.0), {}), {})),
    ]
    root = str(Path(__file__).resolve().parents[2])
    for seed in ("0", "7", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD.format(root=root, tmp=str(tmp_path))],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.split() == expected
