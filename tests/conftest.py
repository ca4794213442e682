"""Fixtures: a random-weight SAM2.1 checkpoint, test videos, the real server process.

Two tiers: `pytest -m "not slow"` (unit and in-process tests with a fake engine, seconds) and the
`slow` tier (the real server process, real SAM2 with random weights, the chart and image tools).
"""

import pytest

from support.server import ServerProcess


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    """The real SAM2.1 tiny architecture with random weights, in the official file format."""
    from model.sam2_build import write_random_checkpoint

    path = tmp_path_factory.mktemp("weights") / "sam2.1_hiera_tiny.pt"
    return write_random_checkpoint("tiny", str(path), seed=0)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="session")
def server(checkpoint, tmp_path_factory):
    """One server for the suite's ordinary requests (default limits)."""
    srv = ServerProcess(checkpoint, str(tmp_path_factory.mktemp("server"))).start()
    yield srv
    srv.stop()


@pytest.fixture
def make_server(checkpoint, tmp_path):
    """A server with its own flags, stopped at the end of the test."""
    started = []

    def _make(*extra: str, start: bool = True) -> ServerProcess:
        srv = ServerProcess(checkpoint, str(tmp_path / f"s{len(started)}"), list(extra))
        started.append(srv)
        return srv.start() if start else srv

    yield _make
    for srv in started:
        srv.stop()
