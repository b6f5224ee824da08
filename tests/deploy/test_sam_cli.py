"""What a first-time admin types: `sam build`, then `sam deploy --guided` with a stack name and Enter for the rest.

The guided deploy runs for real up to its first call to AWS, which goes to a closed local port: every
question has been answered by then, so a question whose default aborts (SAM's "<Fn> has no
authentication. Is this okay? [y/N]") fails this test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ._rehearsal import ROOT, SAM_VENV, offline_env

pytestmark = pytest.mark.deploy


def test_guided_deploy_needs_only_a_stack_name_and_enter(build_dir: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, project / name)
    (project / ".aws-sam").mkdir()
    (project / ".aws-sam" / "build").symlink_to(build_dir)  # what `sam build` left, where `sam deploy` looks for it
    answers = "my-switchboard\n" + "\n" * 40
    done = subprocess.run(
        [str(SAM_VENV / "bin" / "sam"), "deploy", "--guided"],
        input=answers,
        env=offline_env(AWS_ENDPOINT_URL="http://127.0.0.1:9"),  # nothing listens: the deploy stops at its first AWS call
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout + done.stderr
    assert "Looking for config file [samconfig.toml] :  Found" in out, out
    assert "Stack Name [switchboard]" in out
    assert "has no authentication" not in out and "Security Constraints Not Satisfied" not in out, out
    assert "Looking for resources needed for deployment" in out, out  # every question answered
    assert 'Could not connect to the endpoint URL: "http://127.0.0.1:9/"' in out, out
