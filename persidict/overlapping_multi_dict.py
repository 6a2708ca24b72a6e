"""OverlappingMultiDict: several stores of different formats sharing one location."""

from __future__ import annotations

from typing import Any, NoReturn

from .persi_dict import PersiDict

__all__ = ["OverlappingMultiDict"]


class OverlappingMultiDict:
    """A bundle of stores of one type over the same location, one per serialization format.

    Each keyword names a format and gives that store's own parameters; ``shared_subdicts_params``
    go to all of them. The stores are attributes named after their formats::

        multi = OverlappingMultiDict(dict_type=FileDirDict,
                                     shared_subdicts_params={"base_dir": "data"},
                                     json={}, pkl={}, txt={"base_class_for_values": str})
        multi.json["a", "b"] = {"x": 1}      # data/a_btax/b_slvv.json
        multi.pkl["a", "b"] = {"x": 1}       # data/a_btax/b_slvv.pkl, side by side
        multi.json.clear()                   # removes only the .json files

    Stores of different formats never see each other's items (like files with different
    extensions). The bundle itself is not a store: item access raises ``TypeError``, and it
    cannot be pickled.
    """

    dict_type: type[PersiDict[Any]]
    shared_subdicts_params: dict[str, Any]
    individual_subdicts_params: dict[str, dict[str, Any]]
    subdicts_names: list[str]

    def __init__(self, *, dict_type: type[PersiDict[Any]], shared_subdicts_params: dict[str, Any],
                 **individual_subdicts_params: dict[str, Any]) -> None:
        if not issubclass(dict_type, PersiDict):
            raise TypeError("dict_type must be a subclass of PersiDict")
        if not isinstance(shared_subdicts_params, dict):
            raise TypeError("shared_subdicts_params must be a dict")
        for name, params in individual_subdicts_params.items():
            if not isinstance(params, dict):
                raise TypeError(f"Params for subdict {name!r} must be a dict")
        self.dict_type = dict_type
        self.shared_subdicts_params = shared_subdicts_params
        self.individual_subdicts_params = individual_subdicts_params
        self.subdicts_names = list(individual_subdicts_params)
        for name, params in individual_subdicts_params.items():
            self.__dict__[name] = dict_type(
                **{**shared_subdicts_params, **params, "serialization_format": name})

    def __getattr__(self, name: str) -> PersiDict[Any]:
        # Only reached for names that are not set: the sub-stores live in __dict__.
        if name.startswith("__") or name in ("subdicts_names",):
            raise AttributeError(name)
        names = self.__dict__.get("subdicts_names", [])
        raise AttributeError(f"{type(self).__name__} has no attribute or subdict {name!r}; "
                             f"its subdicts are {names}")

    def _no_item_access(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} does not support item access; use one of its "
                        f"subdicts {self.subdicts_names} (e.g. .{self.subdicts_names[0]}[key])"
                        if self.subdicts_names else
                        f"{type(self).__name__} does not support item access (it has no subdicts)")

    def __getitem__(self, key: Any) -> NoReturn:
        self._no_item_access()

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        self._no_item_access()

    def __delitem__(self, key: Any) -> NoReturn:
        self._no_item_access()

    def __getstate__(self) -> NoReturn:
        raise TypeError("OverlappingMultiDict cannot be pickled.")

    def __setstate__(self, state: Any) -> NoReturn:
        raise TypeError("OverlappingMultiDict cannot be unpickled.")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("OverlappingMultiDict cannot be pickled.")

    def __repr__(self) -> str:
        parts = [f"dict_type={self.dict_type.__name__}",
                 f"shared_subdicts_params={self.shared_subdicts_params!r}"]
        parts += [f"{name}={params!r}" for name, params in self.individual_subdicts_params.items()]
        return f"{type(self).__name__}({', '.join(parts)})"
