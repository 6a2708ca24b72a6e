"""One real ray runtime per test session (per pytest-xdist worker), shared by the ray tests.

Starting ray costs seconds (a GCS server, a raylet, worker processes), so the tests do not start
one each: the ``ray_cluster`` fixture starts a private local runtime once (``address="local"``:
never one that a ``ray start`` elsewhere on the machine left behind), and shuts it down at the
end of the session. Its value is the runtime's address; a script run with it in ``RAY_ADDRESS``
joins the runtime as another driver, the way a job on a ray cluster does. Two xdist workers that
both run ray tests each start their own runtime, on ports ray picks itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

__all__ = ["ray_cluster"]  # what `from tests.ray_support import *` in tests/conftest.py brings in

RAY_CPUS = 2  # the CI machine's cores
RAY_OBJECT_STORE = 128 * 1024**2  # the tests move small objects: no share of the machine's RAM


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address of a local ray runtime of two CPUs, this process being its first driver."""
    ray = pytest.importorskip("ray")
    context = ray.init(
        address="local",
        num_cpus=RAY_CPUS,
        object_store_memory=RAY_OBJECT_STORE,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()


def ray_env(address: str) -> dict[str, str]:
    """The environment of a script that joins the runtime at ``address`` with ``ray.init()``."""
    return {**os.environ, "RAY_ADDRESS": address}
