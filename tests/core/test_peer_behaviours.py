"""Small behaviours 0.309's users rely on (SPEC 6.1, 6.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from persidict import FileDirDict, LocalDict


def test_filedirdict_keyerror_keeps_file_not_found_as_cause(tmp_path: Path) -> None:
    d = FileDirDict(base_dir=tmp_path)
    with pytest.raises(KeyError) as info:
        d["nope"]
    cause = info.value.__cause__
    assert isinstance(cause, FileNotFoundError) and cause.filename.endswith(".pkl")
    assert "nope" in cause.filename
    assert d.get("nope") is None  # get() still turns it into the default


@pytest.mark.parametrize(("given", "reported"), [(5, 5), (None, None), (0, 0), (-3, -3),
                                                 ("7", 7), ("soon", 64), (64, 64)])
def test_localdict_reports_its_prune_interval(given: object, reported: object) -> None:
    d = LocalDict(prune_interval=given)  # type: ignore[arg-type]
    assert d.get_params()["prune_interval"] == reported
    assert d.get_subdict("x").get_params()["prune_interval"] == reported
    assert LocalDict(**d.get_params()).get_params() == d.get_params()
