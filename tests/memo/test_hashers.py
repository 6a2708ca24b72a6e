"""register_hasher and persistent_cache(hashers=...): keys for types you cannot change."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from persidict import LocalDict
from persidict_memo import persistent_cache, register_hasher
from persidict_memo.hashing import content_hash


class Client:
    """A third-party-like object: its state holds a lock, so it cannot be hashed by state."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._lock = threading.Lock()


class EuClient(Client):
    pass


class Model:
    def __init__(self, name: str, weights: tuple[float, ...]) -> None:
        self.name = name
        self.weights = weights
        self.cache: dict[str, Any] = {}  # noise the results do not depend on


@pytest.fixture
def client_hasher() -> Iterator[None]:
    register_hasher(Client, lambda c: c.region)
    yield
    register_hasher(Client, None)


def test_unregistered_type_is_refused() -> None:
    with pytest.raises(TypeError):
        content_hash(Client("eu"))


@pytest.mark.usefixtures("client_hasher")
def test_registered_hasher_keys_instances_and_subclasses() -> None:
    assert content_hash(Client("eu")) == content_hash(Client("eu"))
    assert content_hash(Client("eu")) != content_hash(Client("us"))
    assert content_hash(EuClient("eu")) == content_hash(Client("eu"))  # keyed as a Client
    assert content_hash([Client("eu"), {"c": Client("us")}]) == content_hash(
        [Client("eu"), {"c": Client("us")}]
    )
    assert content_hash(Client("eu")) != content_hash("eu")


def test_removing_a_hasher_restores_the_default() -> None:
    register_hasher(Client, lambda c: c.region)
    content_hash(Client("eu"))
    register_hasher(Client, None)
    with pytest.raises(TypeError):
        content_hash(Client("eu"))


def test_registered_hasher_replaces_state_hashing() -> None:
    before = content_hash(Model("m", (1.0,)))
    register_hasher(Model, lambda m: (m.name, m.weights))
    try:
        noisy = Model("m", (1.0,))
        noisy.cache["x"] = 1
        assert content_hash(noisy) == content_hash(Model("m", (1.0,))) != before
    finally:
        register_hasher(Model, None)


def test_per_function_hashers_apply_to_that_function_only() -> None:
    runs: list[str] = []

    @persistent_cache(store=LocalDict(), hashers={Client: lambda c: c.region}, ignore=("runs",))
    def fetch(client: Client, item: str) -> str:
        runs.append(item)
        return f"{client.region}:{item}"

    assert fetch(Client("eu"), "a") == "eu:a"
    assert fetch(Client("eu"), "a") == "eu:a"
    assert fetch(EuClient("us"), "a") == "us:a"
    assert runs == ["a", "a"]

    @persistent_cache(store=LocalDict())
    def other(client: Client) -> str:
        return client.region

    with pytest.raises(TypeError, match="'client' cannot be hashed"):
        other(Client("eu"))


@pytest.mark.usefixtures("client_hasher")
def test_per_function_hashers_take_precedence() -> None:
    @persistent_cache(store=LocalDict(), hashers={Client: lambda c: "all the same"})
    def f(client: Client) -> str:
        return client.region

    assert f.cache_key(Client("eu")) == f.cache_key(Client("us"))


def test_bad_registrations_are_refused() -> None:
    with pytest.raises(TypeError, match="expected a class"):
        register_hasher("Client", str)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be callable"):
        register_hasher(Client, "region")  # type: ignore[arg-type]
    for builtin in (int, str, dict, tuple, object):
        with pytest.raises(ValueError, match="built-in canonical encoding"):
            register_hasher(builtin, repr)
    with pytest.raises(ValueError, match="built-in canonical encoding"):
        persistent_cache(hashers={list: repr})(lambda x: x)
    with pytest.raises(TypeError, match="mapping"):
        persistent_cache(hashers=[(Client, repr)])(lambda x: x)  # type: ignore[arg-type]


def test_a_failing_or_circular_hasher_is_a_type_error() -> None:
    @persistent_cache(store=LocalDict(), hashers={Client: lambda c: c.missing})
    def f(client: Client) -> str:
        return client.region

    with pytest.raises(TypeError, match=r"hasher registered for .*Client failed"):
        f(Client("eu"))

    @persistent_cache(store=LocalDict(), hashers={Client: lambda c: c})
    def g(client: Client) -> str:
        return client.region

    with pytest.raises(TypeError, match=r"returned a .*Client itself"):
        g(Client("eu"))
