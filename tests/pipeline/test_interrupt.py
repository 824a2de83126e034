"""Ctrl-C: the terminal sends SIGINT to every process of the run; vadpack exits 130 with one line,
and no worker, forkserver or half-started child prints a traceback.

The real CLI runs in its own session, as in a terminal, and interrupts itself at a named point
(``VADPACK_FAULTS=interrupt_at=POINT:N``, core/faults.py): it sends SIGINT to its whole process group
there, as the terminal would, so each case interrupts the same moment on any machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, write_config
from tests.test_reliability import speechy

# A shell shows both as exit status 130: sys.exit(130) after the one line, or (rarely, while asr starts
# its forkserver) the process ending by the signal itself after it printed that line.
INTERRUPTED = (130, -signal.SIGINT)
ONE_LINE = ["vadpack: interrupted; rerun the same command to resume (completed work is kept)"]


def _as_from_a_terminal() -> None:
    # A shell starts a foreground command with SIGINT at its default. A test suite run in the
    # background (`cmd &` from a script) has SIGINT ignored, which its children would inherit and
    # honour, as `nohup vadpack run ... &` rightly does: the Ctrl-C under test would never arrive.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_run(cfg: Path, point: str, *args: str) -> tuple[int, str]:
    """Run ``vadpack run`` in its own session until it Ctrl-Cs its process group at ``point``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "VADPACK_FAULTS": f"interrupt_at={point}"}
    proc = subprocess.Popen([sys.executable, "-m", "vadpack", "run", str(cfg), "--no-progress", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_as_from_a_terminal)
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def interrupted_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "interrupted" in line]


@pytest.fixture()
def long_archive(tmp_path) -> Path:
    """Three 8-minute recordings: vad on two workers is still busy a few seconds in."""
    root = tmp_path / "long"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"talk{i}.wav", np.tile(speechy(30.0, seed=i), 16), 16000, subtype="PCM_16")
    return root


@pytest.mark.parametrize("point", [
    "vad.submit:1",  # while the first worker is being spawned (Ctrl-C held back in the parent)
    pytest.param("vad.submit:2", marks=pytest.mark.slow),  # one worker up, the next being spawned
    pytest.param("vad.recording_done:1", marks=pytest.mark.slow),  # while the others decode
])
def test_ctrl_c_during_vad(tmp_path, long_archive, tiny_model, point):
    cfg = write_config(tmp_path, [str(long_archive)], tiny_model, vad={"workers": 2})
    code, err = interrupt_run(cfg, point)
    assert code == 130, err
    assert "Traceback" not in err and "Error" not in err, err
    assert interrupted_lines(err) == ONE_LINE
    assert not (tmp_path / "work" / "manifests" / "vad.json").exists()


@pytest.mark.slow
def test_ctrl_c_while_asr_starts_its_feature_workers(tmp_path, tiny_model):
    # Ctrl-C just after asr started its forkserver, which is preloading FunASR: seconds during which
    # the forkserver printed a traceback (and FunASR's bare except: clauses, importing in the parent,
    # swallowed the interrupt).
    root = tmp_path / "short"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"talk{i}.wav", speechy(20.0, seed=i), 16000, subtype="PCM_16")
    cfg = write_config(tmp_path, [str(root)], tiny_model, asr={"feature_workers": 1, "batches_per_part": 1},
                       packer={"budget_s": 10})
    code, err = interrupt_run(cfg, "asr.feature_server_started")
    assert code in INTERRUPTED, err
    assert "Traceback" not in err, err
    assert interrupted_lines(err) == ONE_LINE
    assert (tmp_path / "work" / "manifests" / "pack.json").exists()
    assert not (tmp_path / "work" / "manifests" / "asr.json").exists()


@pytest.mark.slow
def test_ctrl_c_while_asr_starts_its_replicas(tmp_path, tiny_model):
    # Two replica processes import torch with Ctrl-C held back; the parent stops them, and none of
    # them prints a traceback.
    root = tmp_path / "short"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"talk{i}.wav", speechy(20.0, seed=i), 16000, subtype="PCM_16")
    cfg = write_config(tmp_path, [str(root)], tiny_model, asr={"replicas": 2, "batches_per_part": 1},
                       packer={"budget_s": 10})
    code, err = interrupt_run(cfg, "asr.replicas_started")
    assert code in INTERRUPTED, err
    assert "Traceback" not in err, err
    assert interrupted_lines(err) == ONE_LINE
    assert not (tmp_path / "work" / "manifests" / "asr.json").exists()
