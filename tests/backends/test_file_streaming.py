"""Big pickles go straight between the file and the object: no second copy of an array.

The threshold (``file_backend.STREAM_MIN``, 4 MiB) is lowered here so small values take the
streaming path; the bytes on disk must be exactly what ``pickle.dumps(v, protocol=5)`` gives (and
what 0.309 reads with ``joblib.load``), every format 0.309 wrote must still read back, and a
damaged or vanished file must behave as on the ordinary path. The memory saved is measured by
``tests/benchmarks/bench_scale.py`` (peak RSS of a 500 MB array's get and set).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import pytest

from persidict import BackendError, FileDirDict, file_backend, file_dir_dict

np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_backend, "STREAM_MIN", 64)
    monkeypatch.setattr(file_dir_dict, "STREAM_MIN", 64)


def file_of(d: FileDirDict[Any], key: str) -> Path:
    return Path(d._file_backend.path_for((key,)))


def test_streamed_set_and_get_round_trip_with_standard_bytes(tmp_path: Path,
                                                             small_threshold: None) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    arr = np.arange(10_000, dtype=np.float64).reshape(100, 100)
    blob = bytes(range(256)) * 10
    d["arr"] = arr
    d["blob"] = blob
    assert file_of(d, "arr").read_bytes() == pickle.dumps(arr, protocol=5)
    assert file_of(d, "blob").read_bytes() == pickle.dumps(blob, protocol=5)
    got = d["arr"]
    assert isinstance(got, np.ndarray) and got.flags.writeable
    assert np.array_equal(got, arr)
    assert d["blob"] == blob
    assert np.array_equal(joblib.load(file_of(d, "arr")), arr)  # what 0.309 does
    assert sorted(tuple(k) for k, _ in d.items()) == [("arr",), ("blob",)]


@pytest.mark.parametrize("writer", ["joblib-lz4", "joblib-bare", "pickle"])
def test_streamed_get_reads_every_format_0309_wrote(tmp_path: Path, small_threshold: None,
                                                    writer: str) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    arr = np.linspace(0, 1, 5000)
    buf = io.BytesIO()
    if writer == "joblib-lz4":
        joblib.dump(arr, buf, compress="lz4")
    elif writer == "joblib-bare":
        joblib.dump(arr, buf)
    else:
        pickle.dump(arr, buf, protocol=4)
    file_of(d, "k").parent.mkdir(parents=True, exist_ok=True)
    file_of(d, "k").write_bytes(buf.getvalue())
    assert np.array_equal(d["k"], arr)


def test_streamed_get_of_a_damaged_file_is_a_decode_error(tmp_path: Path,
                                                          small_threshold: None) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    d["k"] = np.zeros(1000)
    path = file_of(d, "k")
    path.write_bytes(path.read_bytes()[: 3000])  # truncated
    with pytest.raises(BackendError) as info:
        d["k"]
    assert (info.value.operation, info.value.key) == ("decode", ("k",))
    path.write_bytes(b"")
    with pytest.raises(BackendError):
        d["k"]
    path.unlink()
    with pytest.raises(KeyError):
        d["k"]


def test_unpicklable_big_value_is_type_error_and_leaves_nothing(tmp_path: Path,
                                                                small_threshold: None) -> None:
    class Big:
        nbytes = 1 << 30

        def __reduce__(self) -> Any:
            raise RuntimeError("no")

    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path)
    with pytest.raises(TypeError, match="cannot be pickled"):
        d["k"] = Big()
    assert list(tmp_path.iterdir()) == []


def test_formats_other_than_pkl_do_not_stream(tmp_path: Path, small_threshold: None) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, serialization_format="json")
    d["k"] = list(range(1000))
    assert d["k"] == list(range(1000))
