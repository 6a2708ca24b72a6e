"""OverlappingMultiDict: several formats side by side in one location."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest

from persidict import FileDirDict, LocalDict, OverlappingMultiDict, PersiDict


def make_multi(base: Path, **extra: Any) -> OverlappingMultiDict:
    return OverlappingMultiDict(dict_type=FileDirDict, shared_subdicts_params={"base_dir": base},
                                json={}, pkl={}, txt={"base_class_for_values": str}, **extra)


def files(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def test_formats_live_side_by_side(tmp_path: Path) -> None:
    multi = make_multi(tmp_path)
    multi.json["a"] = {"x": 1}
    multi.pkl["a"] = {"x": 2}
    multi.txt["a"] = "three"
    multi.json["a", "b"] = [1]
    assert files(tmp_path) == ["a_btax.json", "a_btax.pkl", "a_btax.txt", "a_btax/b_slvv.json"]
    assert (tmp_path / "a_btax.txt").read_text() == "three"
    assert multi.json["a"] == {"x": 1} and multi.pkl["a"] == {"x": 2}
    assert multi.txt["a"] == "three"
    assert len(multi.json) == 2 and len(multi.pkl) == 1 and len(multi.txt) == 1
    assert ("a", "b") not in multi.pkl


def test_clearing_one_format_leaves_the_others(tmp_path: Path) -> None:
    multi = make_multi(tmp_path)
    for fmt in ("json", "pkl"):
        store = getattr(multi, fmt)
        store["a"] = 1
        store["a", "b"] = 2
    multi.txt["a"] = "t"
    multi.json.clear()
    assert len(multi.json) == 0
    assert files(tmp_path) == ["a_btax.pkl", "a_btax.txt", "a_btax/b_slvv.pkl"]
    assert multi.pkl["a", "b"] == 2 and multi.txt["a"] == "t"
    multi.pkl.discard(("a", "b"))
    assert files(tmp_path) == ["a_btax.pkl", "a_btax.txt"]


def test_subdicts_are_ordinary_stores_with_merged_params(tmp_path: Path) -> None:
    multi = OverlappingMultiDict(
        dict_type=FileDirDict,
        shared_subdicts_params={"base_dir": tmp_path, "digest_len": 4,
                                "serialization_format": "ignored"},
        pkl={"digest_len": 0}, json={"append_only": True})
    assert multi.subdicts_names == ["pkl", "json"]
    assert isinstance(multi.pkl, FileDirDict) and isinstance(multi.json, FileDirDict)
    assert multi.pkl.get_params() == {
        "append_only": False, "base_class_for_values": None, "base_dir": str(tmp_path),
        "digest_len": 0, "serialization_format": "pkl"}
    assert multi.json.append_only and multi.json.digest_len == 4
    assert multi.json.serialization_format == "json"
    assert multi.dict_type is FileDirDict
    assert multi.shared_subdicts_params["digest_len"] == 4
    assert multi.individual_subdicts_params == {"pkl": {"digest_len": 0},
                                                "json": {"append_only": True}}
    assert "pkl" in vars(multi) and "json" in vars(multi)


def test_works_with_memory_stores_too() -> None:
    multi = OverlappingMultiDict(dict_type=LocalDict, shared_subdicts_params={},
                                 pkl={}, json={})
    multi.pkl["k"] = 1
    assert "k" not in multi.json
    shared = LocalDict()
    multi = OverlappingMultiDict(dict_type=LocalDict,
                                 shared_subdicts_params={"backend": shared.get_params()["backend"]},
                                 pkl={}, json={})
    multi.json["k"] = "j"
    assert shared.get("k") is None and multi.pkl.get("k") is None
    assert LocalDict(backend=shared.get_params()["backend"], serialization_format="json")[
        "k"] == "j"


def test_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="dict_type must be a subclass of PersiDict"):
        OverlappingMultiDict(dict_type=dict,  # type: ignore[arg-type]
                             shared_subdicts_params={}, pkl={})
    with pytest.raises(TypeError):
        OverlappingMultiDict(dict_type="FileDirDict",  # type: ignore[arg-type]
                             shared_subdicts_params={}, pkl={})
    with pytest.raises(TypeError, match="shared_subdicts_params must be a dict"):
        OverlappingMultiDict(dict_type=FileDirDict,
                             shared_subdicts_params=[("base_dir", "x")],  # type: ignore[arg-type]
                             pkl={})
    with pytest.raises(TypeError, match="Params for subdict 'json' must be a dict"):
        OverlappingMultiDict(dict_type=FileDirDict, shared_subdicts_params={"base_dir": tmp_path},
                             pkl={}, json=None)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="serialization_format"):
        OverlappingMultiDict(dict_type=FileDirDict, shared_subdicts_params={"base_dir": tmp_path},
                             yaml={})  # non-str values need pkl or json


def test_is_not_a_store(tmp_path: Path) -> None:
    multi = make_multi(tmp_path)
    assert not isinstance(multi, PersiDict)
    for op in (lambda: multi["a"], lambda: multi.__setitem__("a", 1),
               lambda: multi.__delitem__("a")):
        with pytest.raises(TypeError, match=r"\['json', 'pkl', 'txt'\]"):
            op()
    with pytest.raises(TypeError, match=r"OverlappingMultiDict cannot be pickled\."):
        pickle.dumps(multi)
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.deepcopy(multi)
    with pytest.raises(AttributeError, match=r"yaml.*json"):
        multi.yaml  # noqa: B018


def test_readable_repr(tmp_path: Path) -> None:
    multi = make_multi(tmp_path)
    text = repr(multi)
    assert text.startswith("OverlappingMultiDict(dict_type=FileDirDict, shared_subdicts_params=")
    assert "json={}" in text and "txt={'base_class_for_values': <class 'str'>}" in text
    assert repr(tmp_path) in text
