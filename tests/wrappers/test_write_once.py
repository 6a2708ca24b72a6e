"""WriteOnceDict: first write wins, consistency checks, refusals, real ETags, and a process race."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    FileDirDict,
    LocalDict,
    MutationPolicyError,
    PersiDict,
    WriteOnceDict,
)
from persidict import write_once_dict as wod_module


@pytest.fixture(params=["file", "local"])
def wrapped(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    if request.param == "file":
        return FileDirDict(base_dir=tmp_path / "wo", append_only=True)
    return LocalDict(append_only=True)


def make(wrapped: PersiDict[Any], p: float | None = None) -> WriteOnceDict[Any]:
    return WriteOnceDict(wrapped_dict=wrapped, p_consistency_checks=p)


# ------------------------------------------------------------------------------ construction
def test_default_wrapped_store_is_an_append_only_file_dir_dict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    w: WriteOnceDict[Any] = WriteOnceDict()
    assert isinstance(w.wrapped_dict, FileDirDict)
    assert w.wrapped_dict.append_only is True
    assert w.wrapped_dict.base_dir == str(tmp_path / "__file_dir_dict__")
    assert w.p_consistency_checks == 0.0
    w["k"] = 1
    assert len(list((tmp_path / "__file_dir_dict__").iterdir())) == 1


def test_wrapped_dict_must_be_an_append_only_persidict() -> None:
    with pytest.raises(TypeError, match="wrapped_dict must be a PersiDict instance"):
        WriteOnceDict(wrapped_dict={"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wrapped_dict must be append-only"):
        WriteOnceDict(wrapped_dict=LocalDict())


def test_takes_value_type_and_format_from_the_wrapped_store(tmp_path: Path) -> None:
    inner = FileDirDict(base_dir=tmp_path, append_only=True, serialization_format="json",
                        base_class_for_values=dict)
    w = make(inner)
    assert w.append_only is True
    assert w.serialization_format == "json"
    assert w.base_class_for_values is dict
    with pytest.raises(TypeError, match="Value must be an instance of dict"):
        w["k"] = [1]
    assert "k" not in inner


@pytest.mark.parametrize("p", [0, 0.0, 0.25, 1, 1.0])
def test_p_consistency_checks_is_kept_as_given(p: float) -> None:
    w = make(LocalDict(append_only=True), p)
    assert w.p_consistency_checks == p
    assert type(w.p_consistency_checks) is type(p)


@pytest.mark.parametrize("p", [-0.01, 1.01, 2, float("nan")])
def test_p_consistency_checks_out_of_range(p: float) -> None:
    with pytest.raises(ValueError, match=r"p_consistency_checks must be in \[0, 1\], got"):
        make(LocalDict(append_only=True), p)


def test_bad_p_is_refused_before_the_default_store_is_created(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        WriteOnceDict(p_consistency_checks=5)
    assert list(tmp_path.iterdir()) == []


def test_p_consistency_checks_types_and_keep_current() -> None:
    with pytest.raises(TypeError):
        make(LocalDict(append_only=True), "0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="KEEP_CURRENT"):
        make(LocalDict(append_only=True), KEEP_CURRENT)  # type: ignore[arg-type]
    w = make(LocalDict(append_only=True), 0.3)
    w.p_consistency_checks = KEEP_CURRENT  # type: ignore[assignment]
    assert w.p_consistency_checks == 0.3
    w.p_consistency_checks = None  # type: ignore[assignment]
    assert w.p_consistency_checks == 0.0
    with pytest.raises(ValueError, match="got 3"):
        w.p_consistency_checks = 3
    assert w.p_consistency_checks == 0.0


# -------------------------------------------------------------------------- first write wins
def test_first_write_wins_and_later_writes_are_ignored(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 0)
    w["k"] = "first"
    w["k"] = "second"  # silently ignored: no check at p=0
    w.update({"k": "third"})
    assert w["k"] == "first"
    assert wrapped["k"] == "first"
    assert len(w) == 1
    assert w.consistency_checks_attempted == 0
    assert w.setdefault("k", "other") == "first"
    assert w.setdefault("new", "v") == "v"
    assert w["new"] == "v"


def test_keep_current_is_a_no_op_and_delete_current_is_refused(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    w["k"] = KEEP_CURRENT
    assert "k" not in w
    w["k"] = 1
    with pytest.raises(MutationPolicyError) as exc:
        w["k"] = DELETE_CURRENT
    assert exc.value.policy == "append-only"
    with pytest.raises(MutationPolicyError):
        w["absent"] = DELETE_CURRENT
    assert w["k"] == 1
    with pytest.raises(ValueError):
        w["bad key"] = KEEP_CURRENT


# ----------------------------------------------------------------------- consistency checks
def test_every_repeated_write_is_checked_at_p_1(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    w["k"] = {"a": [1, 2, 3], "b": "x"}
    assert w.consistency_checks_attempted == 0  # the first write is not a check
    w["k"] = {"a": [1, 2, 3], "b": "x"}
    w["k"] = {"b": "x", "a": [1, 2, 3]}  # same dict, other insertion order
    assert (w.consistency_checks_attempted, w.consistency_checks_passed,
            w.consistency_checks_failed) == (2, 2, 0)
    with pytest.raises(MutationPolicyError) as exc:
        w["k"] = {"a": [1, 2, 4], "b": "x"}
    assert exc.value.policy == "write-once"
    assert isinstance(exc.value, TypeError)
    assert w["k"] == {"a": [1, 2, 3], "b": "x"}  # the stored value is unchanged
    assert (w.consistency_checks_attempted, w.consistency_checks_passed,
            w.consistency_checks_failed) == (3, 2, 1)


def test_mismatch_message_says_what_differs(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    w["model", "v1"] = {"weights": [0.5, 0.25], "name": "net"}
    with pytest.raises(MutationPolicyError) as exc:
        w["model", "v1"] = {"weights": [0.5, 0.75], "name": "net"}
    message = str(exc.value)
    assert message.startswith("write-once")
    assert "('model', 'v1')" in message
    assert "root['weights'][1]" in message
    assert "0.25" in message and "0.75" in message
    assert "'name'" not in message  # only what differs


def test_mismatch_message_is_bounded(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    w["big"] = {f"field{i}": i for i in range(2000)}
    with pytest.raises(MutationPolicyError) as exc:
        w["big"] = {f"field{i}": -i for i in range(2000)}
    assert len(str(exc.value)) < 800
    assert "changed from" in str(exc.value)


def test_hash_comparison_is_strict(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    w["one"] = 1
    with pytest.raises(MutationPolicyError, match=r"int.*float|float.*int"):
        w["one"] = 1.0
    w["t"] = ("a", "b")
    with pytest.raises(MutationPolicyError):
        w["t"] = ["a", "b"]
    assert w.consistency_checks_failed == 2


def test_hash_comparison_is_strict_for_numpy_dtypes(wrapped: PersiDict[Any]) -> None:
    np = pytest.importorskip("numpy")
    w = make(wrapped, 1)
    w["arr"] = np.arange(4, dtype=np.int64)
    w["arr"] = np.arange(4, dtype=np.int64)
    with pytest.raises(MutationPolicyError, match="write-once"):
        w["arr"] = np.arange(4, dtype=np.int32)
    assert w.consistency_checks_passed == 1


def test_values_a_format_changes_on_the_way_in_count_as_the_same(tmp_path: Path) -> None:
    w = make(FileDirDict(base_dir=tmp_path, append_only=True, serialization_format="json"), 1)
    w["k"] = {1: "one"}  # stored as {"1": "one"}: jsonpickle turns int keys into strings
    assert w["k"] == {"1": "one"}
    w["k"] = {1: "one"}  # a deterministic function's second result is the same value
    with pytest.raises(MutationPolicyError, match="write-once"):
        w["k"] = {1: "two"}
    assert (w.consistency_checks_passed, w.consistency_checks_failed) == (1, 1)
    text = make(FileDirDict(base_dir=tmp_path / "t", append_only=True,
                            serialization_format="txt", base_class_for_values=str), 1)
    text["k"] = "a\r\nb"
    text["k"] = "a\r\nb"
    assert text.consistency_checks_passed == 1
    exact = make(LocalDict(append_only=True, serialization_format="json"), 1)
    exact["k"] = {1: "one"}
    with pytest.raises(MutationPolicyError):  # a memory store keeps {1: "one"} exactly
        exact["k"] = {"1": "one"}
    exact["j"] = {"1": "one"}
    with pytest.raises(MutationPolicyError):
        exact["j"] = {1: "one"}


def test_values_that_hash_differently_but_compare_equal_still_get_a_message() -> None:
    text = wod_module.describe_difference(1, True)
    assert text
    assert len(text) <= 500


def test_at_p_0_nothing_is_read_back(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 0)
    w["k"] = 1
    w["k"] = 2
    assert w.consistency_checks_attempted == 0
    assert w["k"] == 1


def test_checks_happen_with_probability_p(wrapped: PersiDict[Any],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0.1, 0.9, 0.49, 0.5, 0.0])
    monkeypatch.setattr(wod_module.random, "random", lambda: next(draws))
    w = make(wrapped, 0.5)
    w["k"] = "v"
    for _ in range(5):
        w["k"] = "v"
    assert w.consistency_checks_attempted == 3  # draws below 0.5: 0.1, 0.49, 0.0
    assert w.consistency_checks_passed == 3
    draws = iter([0.2])
    with pytest.raises(MutationPolicyError, match="write-once"):
        w["k"] = "other"
    assert w.consistency_checks_failed == 1


def test_checks_at_intermediate_p_are_roughly_p(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 0.5)
    w["k"] = 7
    for _ in range(400):
        w["k"] = 7
    assert 120 < w.consistency_checks_attempted < 280
    assert w.consistency_checks_failed == 0


# --------------------------------------------------------------------------------- refusals
def test_overwrites_and_deletes_are_refused_with_the_right_policy(
        wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 0)
    w["k"] = 1
    write_once_ops = [
        lambda: w.set_item_if("k", value=2, condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE),
        lambda: w.set_item_if("new", value=2, condition=ETAG_IS_THE_SAME,
                              expected_etag=ITEM_NOT_AVAILABLE),
        lambda: w.set_item_if("k", value=2, condition="bogus",  # type: ignore[arg-type]
                              expected_etag=ITEM_NOT_AVAILABLE),
        lambda: w.transform_item("k", transformer=lambda v: v + 1),
        lambda: w.transform_item("new", transformer=lambda v: 1),
        lambda: w.__delitem__("k"),
        lambda: w.__delitem__("absent"),
    ]
    for op in write_once_ops:
        with pytest.raises(MutationPolicyError) as exc:
            op()
        assert exc.value.policy == "write-once"
    append_only_ops = [
        lambda: w.discard("k"),
        lambda: w.discard("absent"),
        lambda: w.pop("k"),
        lambda: w.pop("absent", None),
        lambda: w.popitem(),
        lambda: w.clear(),
        lambda: w.discard_if("k", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE),
    ]
    for op in append_only_ops:
        with pytest.raises(MutationPolicyError) as exc:
            op()
        assert exc.value.policy == "append-only"
    assert dict(w.items()) == {("k",): 1}
    assert "new" not in w


def test_discard_if_on_absent_key_or_failed_condition_is_a_normal_result(
        wrapped: PersiDict[Any]) -> None:
    w = make(wrapped)
    w["k"] = 1
    r = w.discard_if("absent", condition=ANY_ETAG, expected_etag=ITEM_NOT_AVAILABLE)
    assert (r.condition_was_satisfied, r.actual_etag, r.new_value) == (
        True, ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
    r = w.discard_if("k", condition=ETAG_IS_THE_SAME, expected_etag="not-the-etag")
    assert not r.condition_was_satisfied
    assert r.actual_etag == w.etag("k")
    assert w["k"] == 1


# ------------------------------------------------------------------------- ETags and reads
def test_etags_are_the_wrapped_stores_own(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped)
    w["k"] = "v"
    assert w.etag("k") == wrapped.etag("k")
    assert w.timestamp("k") == wrapped.timestamp("k")
    r = w.get_with_etag("k")
    assert (r.actual_etag, r.new_value) == (wrapped.etag("k"), "v")
    r = w.get_item_if("k", condition=ETAG_HAS_CHANGED, expected_etag=r.actual_etag)
    assert not r.condition_was_satisfied
    r = wrapped.get_item_if("k", condition=ETAG_IS_THE_SAME, expected_etag=w.etag("k"),
                            retrieve_value=NEVER_RETRIEVE)
    assert r.condition_was_satisfied
    with pytest.raises(KeyError):
        w.etag("absent")


def test_setdefault_if_is_the_wrapped_stores_insert_if_absent(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    r = w.setdefault_if("k", default_value=1, condition=ANY_ETAG,
                        expected_etag=ITEM_NOT_AVAILABLE, retrieve_value=ALWAYS_RETRIEVE)
    assert r.value_was_mutated and r.resulting_etag == wrapped.etag("k")
    r = w.setdefault_if("k", default_value=2, condition=ANY_ETAG,
                        expected_etag=ITEM_NOT_AVAILABLE, retrieve_value=ALWAYS_RETRIEVE)
    assert not r.value_was_mutated and r.new_value == 1


def test_iteration_and_views_come_from_the_wrapped_store(wrapped: PersiDict[Any]) -> None:
    wrapped["a"] = 1
    w = make(wrapped)
    w["b", "c"] = 2
    assert sorted(tuple(k) for k in w) == [("a",), ("b", "c")]
    assert sorted(w.values()) == [1, 2]
    assert len(w) == 2
    assert w.newest_keys(max_n=1) == [("b", "c")]
    assert w.random_key() in {("a",), ("b", "c")}
    assert set(w.subdicts()) == {"a", "b"}


# ------------------------------------------------------------- sub-stores, params, clones
def test_get_subdict(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 0.25)
    sub = w.get_subdict("x")
    assert isinstance(sub, WriteOnceDict)
    assert sub.p_consistency_checks == 0.25
    sub["y"] = 1
    sub["y"] = 1
    lax = make(wrapped, 0).get_subdict("x")
    lax["y"] = 2  # ignored, never checked at p=0
    assert w["x", "y"] == 1
    assert wrapped["x", "y"] == 1


def test_get_params_clone_copy_and_pickling(wrapped: PersiDict[Any]) -> None:
    w = make(wrapped, 1)
    assert w.get_params() == {"p_consistency_checks": 1, "wrapped_dict": wrapped}
    assert list(w.get_params()) == ["p_consistency_checks", "wrapped_dict"]
    w["k"] = 1
    w["k"] = 1
    twin = w.clone()
    assert isinstance(twin, WriteOnceDict)
    assert twin.wrapped_dict is wrapped  # a new handle over the same store
    assert twin["k"] == 1
    assert twin.consistency_checks_attempted == 0  # counters start again
    assert twin == w
    lax = w.clone(p_consistency_checks=0)
    assert isinstance(lax, WriteOnceDict)
    lax["k"] = 2
    assert lax.p_consistency_checks == 0
    shallow = copy.copy(w)
    assert isinstance(shallow, WriteOnceDict) and shallow.wrapped_dict is wrapped
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(w)
    with pytest.raises(TypeError):
        copy.deepcopy(w)
    assert repr(w).startswith("WriteOnceDict(p_consistency_checks=1, wrapped_dict=")


def test_public_attributes_forward_to_the_wrapped_store(tmp_path: Path) -> None:
    inner = FileDirDict(base_dir=tmp_path, append_only=True, digest_len=3)
    w = make(inner, 1)
    assert w.base_dir == str(tmp_path) and w.digest_len == 3  # as in 0.309
    assert w.base_dir == w.wrapped_dict.base_dir and isinstance(w.wrapped_dict, FileDirDict)
    assert w.p_consistency_checks == 1 and w.get_params()["wrapped_dict"] is inner  # its own
    for missing in ("no_such_attribute", "copy", "_file_backend", "__wrapped__"):
        assert not hasattr(w, missing)
    with pytest.raises(AttributeError, match="WriteOnceDict"):
        _ = w._file_backend  # type: ignore[attr-defined]


# ------------------------------------------------------------------------ multi-process race
_N_PROCESSES = 6
_ROUNDS = 4


def _race_writer(base_dir: str, index: int, p: float, barrier: Any, results: Any) -> None:
    w: WriteOnceDict[Any] = WriteOnceDict(
        wrapped_dict=FileDirDict(base_dir=base_dir, append_only=True), p_consistency_checks=p)
    outcomes = []
    for rnd in range(_ROUNDS):
        value = {"writer": index, "round": rnd, "payload": "x" * (50_000 + index)}
        barrier.wait()
        try:
            w["race", str(rnd)] = value
            outcome = "accepted"
        except MutationPolicyError as exc:
            outcome = f"refused:{exc.policy}"
        stored = w["race", str(rnd)]
        outcomes.append((outcome, stored["writer"], len(stored["payload"])))
    results.put((index, outcomes))


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_concurrent_writers_in_several_processes_have_exactly_one_winner(
        tmp_path: Path, p: float) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(_N_PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_race_writer, args=(str(tmp_path), i, p, barrier, results))
             for i in range(_N_PROCESSES)]
    for proc in procs:
        proc.start()
    collected = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    store = FileDirDict(base_dir=tmp_path, append_only=True)
    assert len(store) == _ROUNDS
    for rnd in range(_ROUNDS):
        stored = store["race", str(rnd)]
        winner = stored["writer"]
        assert len(stored["payload"]) == 50_000 + winner  # a whole value, never a mix
        seen = {collected[i][rnd][1] for i in range(_N_PROCESSES)}
        assert seen == {winner}  # every process reads the one stored value
        outcomes = [collected[i][rnd][0] for i in range(_N_PROCESSES)]
        if p == 0.0:
            assert outcomes == ["accepted"] * _N_PROCESSES  # later writes silently ignored
        else:
            # Every loser's value differs, so each is caught by the check; one write wins.
            assert collected[winner][rnd][0] == "accepted"
            assert outcomes.count("accepted") == 1
            assert outcomes.count("refused:write-once") == _N_PROCESSES - 1
    leftovers = [f.name for f in tmp_path.rglob("*") if f.is_file() and f.suffix != ".pkl"]
    assert leftovers == []  # no temp files left behind
