"""Fixtures of the deploy rehearsal (`make deploy-check`): one `sam build` and one stack on moto per session."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import _rehearsal

STACK = "rehearsal"
# A non-empty AlarmEmail takes the template's conditional path (the SNS topic); the canary the other preference.
PARAMETERS = {"AlarmEmail": "ops@example.com", "DeploymentPreference": "Canary10Percent5Minutes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: the deploy rehearsal (sam build, a stack on moto); `make deploy-check`")


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _rehearsal.sam_build(tmp_path_factory.mktemp("sam") / "build")


@pytest.fixture(scope="session")
def rehearsal(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_rehearsal.Rehearsal]:
    from moto.server import ThreadedMotoServer

    from . import _moto_gaps

    _moto_gaps.patch()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request lines
    logging.getLogger("moto").setLevel(logging.ERROR)  # "No Moto CloudFormation support for <a type it skips>"
    port = _rehearsal.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # moto warns for each type it skips (alarms, CodeDeploy, the stage)
            stack = _rehearsal.create(build_dir, tmp_path_factory.mktemp("stack"), STACK, PARAMETERS, f"http://127.0.0.1:{port}")
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        server.stop()
