"""A segment decodes to the same bits alone as in any batch, on the CPU in float32, on this machine.

Checked against the segment alone (a batch of one), bit for bit, never against a tolerance: the
encoder output, the CIF predictor's weights and token count, the decoder's scores and the final
tokens and times of the tiny Paraformer and SenseVoice models, with items of 1, 2 and 3 frames and
tokens (where BLAS kernels round otherwise, ``core.reproducible``), under MKL's default and strict
modes and its AVX2 code path (each in its own process: MKL reads its settings at the first product).
The probe is checked against a direct measurement of the rule it derives, on other random data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from vadpack.asr import invariant
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.infer import decode_features
from vadpack.asr.model import bit_exact_batches, load_model
from vadpack.core.reproducible import OFFSETS, REFERENCE_ROWS, SMALL_ROWS, probe_rows

from tests.asr.synth import speech_like

REPO = Path(__file__).resolve().parents[2]
SECONDS = (6.3, 0.09, 2.1, 0.15, 4.4, 0.2, 0.7, 5.9)  # 0.09-0.2 s: 1-3 frames after LFR
CAPTURED = {"encoder": 0, "predictor": None, "decoder": 0, "ctc_lo": None}


def _capture(model: torch.nn.Module) -> tuple[dict[str, list], list]:
    """Forward hooks that keep the outputs of the model's encoder, CIF predictor, decoder and CTC layer."""
    seen: dict[str, list] = {name: [] for name in CAPTURED}
    handles = []
    for name in CAPTURED:
        owner = getattr(model, "ctc", None) if name == "ctc_lo" else model
        module = getattr(owner, name, None)
        if isinstance(module, torch.nn.Module):
            handles.append(module.register_forward_hook(lambda m, a, out, name=name: seen[name].append(out)))
    return seen, handles


def _items(out, i: int, n: int | None) -> list[torch.Tensor]:
    """Item ``i``'s part of a captured output: every tensor's row i, cut to ``n`` steps when given."""
    tensors = [out] if isinstance(out, torch.Tensor) else [t for t in out if isinstance(t, torch.Tensor)]
    return [t[i] if t.dim() == 1 or n is None else t[i, :n] for t in tensors if t.dim() >= 1]


def decode_every_way(folder: Path, threads: int) -> dict:
    """Decode the clips in one batch and each alone; report every captured tensor that differs."""
    lm = load_model(AsrConfig(model=str(folder), device="cpu", threads=threads))
    clips = [speech_like(seconds, seed) for seed, seconds in enumerate(SECONDS)]
    feats = [segment_features(lm.frontend, clip) for clip in clips]
    segment_ms = [len(c) // 16 for c in clips]
    seen, handles = _capture(lm.funasr_model)
    try:
        padded, lengths = pad_features(feats, feats[0].shape[1])
        together = decode_features(lm, padded, lengths, segment_ms)
        batch = {name: list(outs) for name, outs in seen.items()}
        differ = []
        for i, f in enumerate(feats):
            for outs in seen.values():
                outs.clear()
            one, one_len = pad_features([f], f.shape[1])
            alone = decode_features(lm, one, one_len, segment_ms[i: i + 1])[0]
            if alone != together[i]:
                differ.append(f"item {i}: result")
            for name, outs in seen.items():
                # a part that runs per item already (Paraformer's CIF predictor): call i is item i's
                pairs = [(batch[name][i], outs[0], 0)] if len(batch[name]) == len(feats) > len(outs) else [
                    (b, a, i) for b, a in zip(batch[name], outs)]
                differ += [f"item {i}: {name}" for b, a, k in pairs if not _same(b, a, k)]
    finally:
        for handle in handles:
            handle.remove()
    return {"frames": [int(n) for n in lengths], "tokens": [len(r.tokens) for r in together],
            "bit_exact": bit_exact_batches(lm), "rows": lm.rows.describe() if lm.rows else None, "differ": differ}


def _same(batched, alone, i: int) -> bool:
    """Item i of a batched output equals the item's output alone, on the item's own steps."""
    alone_parts = _items(alone, 0, None)
    batch_parts = _items(batched, i, None)
    for b, a in zip(batch_parts, alone_parts):
        if b.dim() >= 1 and a.dim() >= 1 and b.shape[0] >= a.shape[0]:
            b = b[: a.shape[0]]  # the batch's padded steps past the item's own
        if b.shape != a.shape or not torch.equal(b, a):
            return False
    return True


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("which", ["paraformer", "sensevoice"])
def test_every_tensor_of_a_segment_is_the_same_in_its_batch_as_alone(which: str, threads: int, tiny_model: Path,
                                                                      tiny_sensevoice: Path) -> None:
    folder = tiny_model if which == "paraformer" else tiny_sensevoice
    out = decode_every_way(folder, threads)
    assert out["bit_exact"], out["rows"]
    assert min(out["frames"]) <= 3  # the row counts where kernels round otherwise are really exercised
    assert sum(out["tokens"]) > len(SECONDS)
    assert out["differ"] == [], out


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"MKL_CBWR": ""}, {"MKL_CBWR": "AUTO,STRICT"},
                                 {"MKL_CBWR": "", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}],
                         ids=["mkl-default", "mkl-strict", "mkl-avx2"])
def test_batch_invariance_holds_in_every_mkl_mode(env: dict, tiny_model: Path, tiny_sensevoice: Path) -> None:
    # Invariant: no vendor mode is relied on; each mode in a fresh process (MKL reads it once).
    script = ("import json, sys; from pathlib import Path; from tests.asr.test_batch_invariance import "
              "decode_every_way as d; print(json.dumps([d(Path(p), 2) for p in sys.argv[1:]]))")
    full_env = {**os.environ, **env}
    if not env["MKL_CBWR"]:
        full_env.pop("MKL_CBWR")  # MKL's default mode
    out = subprocess.run([sys.executable, "-c", script, str(tiny_model), str(tiny_sensevoice)], env=full_env,
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for result in json.loads(out.stdout.strip().splitlines()[-1]):
        assert result["bit_exact"] and result["differ"] == [], result


@pytest.mark.parametrize("threads", [1, 2])
def test_the_probes_rounding_gives_every_row_its_bits_inside_a_larger_product(threads: int, tiny_model: Path) -> None:
    # The probe's claim, checked directly on other data: a product of m rows, computed with the row count
    # the probe chose, gives each row the bits it has inside a larger product, for m = 1..16. On an AMD
    # EPYC (AVX2) rows 1-3 differ unrounded, where the earlier probe (8 and 43 rows only) claimed no effect.
    model = load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=threads)).funasr_model
    shapes = invariant.linear_shapes(model) + [(512, 2048, True), (2048, 512, True), (560, 512, True)]
    rows = probe_rows(shapes, threads)
    assert rows.row_independent, rows.describe()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(12345)
    try:
        for inner, outputs, with_bias in rows.shapes:
            weight = torch.randn(outputs, inner, generator=gen)
            bias = torch.randn(outputs, generator=gen) if with_bias else None
            data = torch.randn(REFERENCE_ROWS, inner, generator=gen)
            inside = torch.nn.functional.linear(data, weight, bias)
            for m in SMALL_ROWS:
                for o in OFFSETS:
                    target = rows.padded_rows(m)
                    padded = torch.cat((data[o: o + m], data.new_zeros(target - m, inner)))
                    alone = torch.nn.functional.linear(padded, weight, bias)[:m]
                    assert torch.equal(alone, inside[o: o + m]), (inner, outputs, m, o, rows.describe())
                    unrounded = torch.nn.functional.linear(data[o: o + m].clone(), weight, bias)
                    if not torch.equal(unrounded, inside[o: o + m]):  # what it saw is what it says
                        assert (inner, outputs, m) in rows.differing or m != rows.padded_rows(m), rows.describe()
    finally:
        torch.set_num_threads(before)
    assert np.all([rows.padded_rows(m) % (rows.quantum or 1) == 0 for m in range(1, 300)])
