"""Canonical encodings of numpy and pandas values; they join the encoder's registry on import.

Neither library is imported here: these functions are reached only for objects whose type
already came from them, and they find the modules in ``sys.modules``.

* A numpy array is its full dtype (byte order included: ``a.astype(">i4")`` is not ``a``, a
  result may depend on it), its shape and its raw C-contiguous buffer, which is digested in
  place (no copy unless the array is not contiguous).
  Object arrays are encoded element by element; structured dtypes holding objects are refused.
* A pandas ``Index`` is its names, dtype and values (a ``RangeIndex`` equals the same integers
  spelled out); a ``MultiIndex`` is its names and the values of each level; a ``Series`` is its
  name, index, dtype and values; a ``DataFrame`` is its columns, index, and each column's dtype and
  values. Columns of numpy dtypes are hashed as raw buffers, categoricals by categories and codes,
  and extension or object columns element by element.
"""

from __future__ import annotations

import sys
from typing import Any

from .encoder import Encoder, Handler, register_resolver

__all__ = ["encode_numpy_array", "encode_numpy_scalar", "encode_pandas", "pandas_kind"]


def _dtype_descriptor(dtype: Any) -> str:
    if dtype.fields is None and dtype.subdtype is None:
        return str(dtype.str)
    return repr(dtype.descr)


def _array_body(enc: Encoder, arr: Any) -> None:
    np = sys.modules["numpy"]
    dtype = arr.dtype
    if dtype.hasobject and dtype.kind != "O":
        raise TypeError(f"cannot hash a numpy array of structured dtype {dtype} holding objects")
    enc.tag(b"V", _dtype_descriptor(dtype))
    enc.count(arr.ndim)
    for dim in arr.shape:
        enc.count(dim)
    if dtype.kind == "O":
        flat = arr.ravel(order="C")

        def elements() -> None:
            for item in flat:
                enc.encode(item)

        enc.guarded(arr, elements)
        return
    contiguous = np.ascontiguousarray(arr)
    enc.raw(b"b", contiguous.reshape(-1).view(np.uint8))


def encode_numpy_array(enc: Encoder, arr: Any) -> None:
    """Append a numpy array: subclass, dtype, shape and content (mask too for masked arrays)."""
    np = sys.modules["numpy"]
    tp = type(arr)
    if tp is np.ndarray or isinstance(arr, np.memmap):
        enc.out += b"v"
        _array_body(enc, arr)
        return
    enc.type_tag(b"x", tp)
    if isinstance(arr, np.ma.MaskedArray):
        _array_body(enc, np.ma.getmaskarray(arr))
    _array_body(enc, np.asarray(arr))
    extra = getattr(arr, "__dict__", None)
    enc.encode(dict(extra) if extra else None)


def encode_numpy_scalar(enc: Encoder, obj: Any) -> None:
    """Append a numpy scalar (``np.float64(1.0)`` differs from ``1.0``): dtype and bytes."""
    np = sys.modules["numpy"]
    if obj.dtype.kind == "O":
        raise TypeError("cannot hash a numpy object scalar")
    enc.out += b"w"
    _array_body(enc, np.asarray(obj))


def pandas_kind(obj: Any) -> str | None:
    """``"frame"``, ``"series"``, ``"multiindex"``, ``"index"`` or None for a non-pandas object."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if isinstance(obj, pd.DataFrame):
        return "frame"
    if isinstance(obj, pd.Series):
        return "series"
    if isinstance(obj, pd.MultiIndex):
        return "multiindex"
    if isinstance(obj, pd.Index):
        return "index"
    return None


def _values(enc: Encoder, values: Any) -> None:
    """Append the dtype and values of a Series or an Index (names and index excluded)."""
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind != "O":
        enc.out += b"1"
        _array_body(enc, values.to_numpy())
    elif isinstance(dtype, pd.CategoricalDtype):
        enc.out += b"2"
        enc.encode(bool(dtype.ordered))
        _index(enc, dtype.categories)
        _array_body(enc, np.asarray(pd.Categorical(values).codes))
    else:
        enc.out += b"3"
        enc.tag(b"s", str(dtype))
        _array_body(enc, values.to_numpy(dtype=object))


def _index(enc: Encoder, index: Any) -> None:
    pd = sys.modules["pandas"]
    if isinstance(index, pd.MultiIndex):
        enc.out += b"%"
        enc.encode(list(index.names))
        enc.count(index.nlevels)
        for level in range(index.nlevels):
            _values(enc, index.get_level_values(level))
        return
    enc.out += b"$"
    enc.encode(list(index.names))
    _values(enc, index)


def encode_pandas(enc: Encoder, obj: Any) -> None:
    """Append a pandas DataFrame, Series or Index by content, names and dtypes."""
    kind = pandas_kind(obj)
    if kind == "index" or kind == "multiindex":
        enc.out += b"p"
        _index(enc, obj)
        return
    enc.type_tag(b"P", type(obj))
    if kind == "frame":

        def frame() -> None:
            _index(enc, obj.columns)
            _index(enc, obj.index)
            enc.count(obj.shape[1])
            for position in range(obj.shape[1]):
                _values(enc, obj.iloc[:, position])

        enc.guarded(obj, frame)
    elif kind == "series":

        def series() -> None:
            enc.encode(obj.name)
            _index(enc, obj.index)
            _values(enc, obj)

        enc.guarded(obj, series)


def _resolve_numpy_pandas(obj: Any, tp: type) -> Handler | None:
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(obj, numpy.ndarray):
            return encode_numpy_array
        if isinstance(obj, numpy.generic):
            return encode_numpy_scalar
    if sys.modules.get("pandas") is not None and pandas_kind(obj) is not None:
        return encode_pandas
    return None


register_resolver(_resolve_numpy_pandas, order=20)
