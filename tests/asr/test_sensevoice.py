"""SenseVoice-Small: CTC alignment against the truth, padding invariance, agreement with FunASR, tags.

The model is the tiny random SenseVoice from ``testkit.tiny_sensevoice``, loaded by ``asr.model.load_model``
like any model (the family comes from its class) and decoded by FunASR's own ``SenseVoiceSmall``
class; FunASR's ``inference`` is called on each segment alone as the reference.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from vadpack.asr.config import AsrConfig
from vadpack.asr.ctc import TokenSpan, forced_align, frame_span_ms, greedy_runs
from vadpack.asr.family import family_class, family_factory
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.model import check_model_folder, load_model
from vadpack.asr.paraformer import ParaformerFamily
from vadpack.asr.sensevoice import ALL_TAGS, BPE_MODEL, N_QUERIES, SenseVoiceFamily, piece_tokens, tag
from vadpack.asr.stage import run_asr
from vadpack.asr.types import LoadedModel, SegmentResult
from vadpack.core.tables import TRANSCRIPTS, read_table
from vadpack.core.text import join_tokens
from vadpack.testkit.tiny_sensevoice import pad_vocabulary, sensevoice_config, train_tokenizer, write_tiny_sensevoice

from tests.asr.conftest import Archive, batch_keys, pack
from tests.asr.synth import speech_like

Key = tuple[str, int]
FEATURE_DIM = 560
TAG_RE = re.compile(r"<\|[^|]*\|>")
# (budget in padded seconds, shuffle seed or None for sorted-by-length packing)
LAYOUTS = [(12, None), (60, None), (400, None), (30, 1), (120, 2)]


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sv_model(tiny_sensevoice: Path) -> Path:
    return tiny_sensevoice


@pytest.fixture(scope="module")
def lm(sv_model: Path) -> LoadedModel:
    return load_model(AsrConfig(model=str(sv_model), device="cpu", threads=2))


@pytest.fixture(scope="module")
def funasr(sv_model: Path):
    from funasr import AutoModel

    return AutoModel(model=str(sv_model), disable_update=True, device="cpu", ncpu=2, disable_pbar=True,
                     disable_log=True)


@pytest.fixture(scope="module")
def theirs(funasr, audio: dict) -> dict[Key, dict]:
    """FunASR's own decoding of each segment alone (see ``funasr_alone``)."""
    return {k: funasr_alone(funasr, a, language="auto", use_itn=False) for k, a in audio.items()}


@pytest.fixture(scope="module")
def alone(lm: LoadedModel, features: dict, audio: dict) -> dict[Key, SegmentResult]:
    return {k: decode(lm, [features[k]], [len(audio[k]) // 16])[0] for k in features}


def decode(lm: LoadedModel, feats: list[np.ndarray], segment_ms: list[int]) -> list[SegmentResult]:
    x, lengths = pad_features(feats, FEATURE_DIM)
    with torch.inference_mode():
        return lm.family.decode(lm, torch.from_numpy(x), torch.from_numpy(lengths), segment_ms)


def item_log_probs(lm: LoadedModel, feats: np.ndarray) -> torch.Tensor:
    """(frames incl. the four query frames, vocab) log-probabilities of one item alone."""
    x, lengths = lm.family.with_queries(lm.net, torch.from_numpy(feats)[None], torch.tensor([len(feats)]))
    with torch.inference_mode():
        return lm.net.ctc.log_softmax(lm.net.encoder(x, lengths)[0])[0].float()


# ---- CTC alignment against the truth ------------------------------------------------------------

def _posterior(path: list[int], vocab: int, p: float = 0.9) -> np.ndarray:
    """Log-probabilities where each frame puts ``p`` on its id in ``path`` and spreads the rest."""
    probs = np.full((len(path), vocab), (1 - p) / (vocab - 1))
    probs[np.arange(len(path)), path] = p
    return np.log(probs)


# A hand-made alignment of targets (3, 5, 3, 3) over 14 frames; blank is 0. The two 3s at the end
# need the blank between them. Truth: the frames of each target.
HAND_PATH = [0, 0, 3, 3, 0, 5, 5, 5, 0, 3, 0, 0, 3, 0]
HAND_TARGETS = [3, 5, 3, 3]
HAND_SPANS = [TokenSpan(3, 2, 4), TokenSpan(5, 5, 8), TokenSpan(3, 9, 10), TokenSpan(3, 12, 13)]


def test_alignment_of_a_hand_made_posterior() -> None:
    log_probs = _posterior(HAND_PATH, vocab=6)
    assert greedy_runs(np.array(HAND_PATH), blank=0) == HAND_SPANS
    assert forced_align(log_probs, HAND_TARGETS, blank=0) == HAND_SPANS
    # Forced onto other tokens (the 5 left out), the frames it held go to blank, not to a neighbour.
    assert forced_align(log_probs, [3, 3, 3], blank=0) == [HAND_SPANS[0], HAND_SPANS[2], HAND_SPANS[3]]


def test_funasr_forced_alignment_is_right_on_the_hand_made_posterior() -> None:
    # Check FunASR's aligner itself against the truth before comparing anything with it.
    from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align

    log_probs = torch.from_numpy(_posterior(HAND_PATH, vocab=6)).float()[None]
    align = ctc_forced_align(log_probs, torch.tensor([HAND_TARGETS]), torch.tensor([len(HAND_PATH)]),
                             torch.tensor([len(HAND_TARGETS)]))
    assert align[0].tolist() == HAND_PATH


def test_funasr_forced_alignment_reads_padding_in_a_batch() -> None:
    # Why alignment runs on each item's own frames: given a batch, FunASR's aligner picks the end
    # state after the batch's last frame, so a shorter item's path depends on the padding after it.
    from funasr.models.sense_voice.utils.ctc_alignment import ctc_forced_align

    short, longer = [0, 3, 3, 0, 5, 0], [0, 0, 4, 4, 0, 0, 2, 2, 0, 0]
    padding = _posterior([5] * 4, vocab=6)  # padded frames that look like the short item's last token
    batch = torch.tensor(np.stack([np.r_[_posterior(short, 6), padding], _posterior(longer, 6)])).float()
    align = ctc_forced_align(batch, torch.tensor([[3, 5], [4, 2]]), torch.tensor([6, 10]), torch.tensor([2, 2]))
    assert align[1].tolist() == longer
    assert align[0, :6].tolist() == [0, 3, 3, 0, 5, 5] != short
    assert forced_align(_posterior(short, 6), [3, 5], blank=0) == greedy_runs(np.array(short), blank=0)


def _brute_force_best(log_probs: np.ndarray, targets: list[int]) -> list[TokenSpan]:
    """The best CTC path for ``targets``, by trying every labelling of every frame."""
    best, best_path = -np.inf, None
    for path in itertools.product(range(log_probs.shape[1]), repeat=len(log_probs)):
        if [r.token_id for r in greedy_runs(np.array(path), blank=0)] != targets:
            continue
        score = log_probs[np.arange(len(path)), path].sum()
        if score > best:
            best, best_path = score, path
    return greedy_runs(np.array(best_path), blank=0)


@pytest.mark.parametrize("seed", range(12))
def test_forced_alignment_is_the_best_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_frames, targets = int(rng.integers(4, 7)), [int(t) for t in rng.integers(1, 3, size=rng.integers(1, 4))]
    if n_frames < len(targets) + sum(a == b for a, b in zip(targets, targets[1:])):
        targets = targets[:1]
    log_probs = np.log(rng.dirichlet(np.ones(3), size=n_frames))
    assert forced_align(log_probs, targets, blank=0) == _brute_force_best(log_probs, targets)


@pytest.mark.parametrize("seed", range(20))
def test_greedy_runs_are_the_forced_alignment_of_the_greedy_tokens(seed: int) -> None:
    # Why decoding needs no Viterbi search unless tags were taken out (asr.ctc).
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(80, 7))
    logits[:, 0] += 1.0  # blank wins often, as in a trained model
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    runs = greedy_runs(log_probs.argmax(axis=1), blank=0)
    assert runs and forced_align(log_probs, [r.token_id for r in runs], blank=0) == runs


def test_unalignable_targets_are_an_error() -> None:
    with pytest.raises(ValueError, match="cannot align"):
        forced_align(np.log(np.full((2, 3), 1 / 3)), [1, 1], blank=0)  # 1 blank 1 needs 3 frames


def test_frame_times_are_clamped_to_the_segment() -> None:
    assert frame_span_ms(TokenSpan(1, 0, 2), frame_ms=60, segment_ms=500) == (0, 90)
    assert frame_span_ms(TokenSpan(1, 5, 6), frame_ms=60, segment_ms=500) == (270, 330)
    assert frame_span_ms(TokenSpan(1, 8, 9), frame_ms=60, segment_ms=500) == (450, 500)


# ---- pieces -> tokens ---------------------------------------------------------------------------

@pytest.mark.parametrize(("pieces", "tokens", "text"), [
    (["wor", "ld", "▁is", "▁big"], ["wor@@", "ld", "is", "big"], "world is big"),
    (["今天", "的", "▁", "hello", "▁wor", "ld"], ["今天", "的", "hello", "wor@@", "ld"], "今天的hello world"),
    (["안녕", "하세요", "▁여러분"], ["안녕@@", "하세요", "여러분"], "안녕하세요 여러분"),
    (["it", "'s", "▁3", ":", "30"], ["it@@", "'s", "3", ":", "30"], "it's 3:30"),
])
def test_pieces_become_tokens_the_stitcher_joins_back(pieces: list, tokens: list, text: str) -> None:
    assert [t for _, t in piece_tokens(pieces)] == tokens
    assert join_tokens(tokens) == text


# ---- padding invariance -------------------------------------------------------------------------

def test_encoder_never_reads_padded_frames(lm: LoadedModel, features: dict) -> None:
    keys = sorted(features, key=lambda k: len(features[k]))[::3]
    x, lengths = pad_features([features[k] for k in keys], FEATURE_DIM)
    garbage = x.copy()
    pad = np.arange(x.shape[1])[None, :] >= lengths[:, None]
    garbage[pad] = np.random.default_rng(0).normal(0, 50, size=(pad.sum(), FEATURE_DIM))
    outs = []
    for feats in (x, garbage):
        q, n = lm.family.with_queries(lm.net, torch.from_numpy(feats), torch.from_numpy(lengths))
        with torch.inference_mode():
            outs.append(lm.net.encoder(q, n)[0])
    # Invariant: real frames are bit for bit the same whatever the padding holds.
    for i, n in enumerate(lengths + N_QUERIES):
        assert torch.equal(outs[0][i, :n], outs[1][i, :n])


def _layouts(archive: Archive) -> list[list[list[Key]]]:
    spans = archive.spans()
    return [batch_keys(pack(spans, budget, rng=None if seed is None else np.random.default_rng(seed)), spans)
            for budget, seed in LAYOUTS]


def test_results_are_well_formed(alone: dict, audio: dict) -> None:
    # The random model must say something, or the exactness tests below prove nothing.
    assert sum(len(r.tokens) for r in alone.values()) > 5 * len(alone)
    for key, r in alone.items():
        seg_ms = len(audio[key]) // 16
        assert r.ok and r.language and r.emotion and r.event
        assert len(r.tokens) == len(r.token_start_ms) == len(r.token_end_ms)
        # Invariant: token times lie in the segment, each ends after it starts, in order.
        assert all(0 <= s <= e <= seg_ms for s, e in zip(r.token_start_ms, r.token_end_ms))
        assert list(r.token_start_ms) == sorted(r.token_start_ms)


@pytest.mark.parametrize("which", range(len(LAYOUTS)))
def test_packed_batches_decode_like_single_segments(which: int, lm: LoadedModel, archive: Archive,
                                                    features: dict, audio: dict, alone: dict) -> None:
    batches = _layouts(archive)[which]
    assert any(len(b) > 1 for b in batches)
    packed = {}
    for keys in batches:
        results = decode(lm, [features[k] for k in keys], [len(audio[k]) // 16 for k in keys])
        assert len(results) == len(keys)
        packed.update(zip(keys, results))
    # Invariant: a segment decodes to the same tokens, times and tags alone as in any batch.
    assert packed == alone


# ---- through the asr stage: same packing, prefetch, OOM halving and store as Paraformer -------------

def _stage_rows(store: Path) -> dict[tuple, dict]:
    rows = read_table(store, TRANSCRIPTS).to_pylist()
    return {(r["content_id"], r["start_sample"], r["end_sample"]): {k: v for k, v in r.items() if k != "batch_id"}
            for r in rows}


def test_stage_rows_do_not_depend_on_the_packing(sv_model: Path, archive: Archive, alone: dict,
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = AsrConfig(model=str(sv_model), device="cpu", threads=2, feature_workers=0, batches_per_part=2,
                    warmup=False)
    spans = archive.spans()
    run_asr(pack(spans, 400), archive.cache_dir, tmp_path / "big", cfg, progress=False)
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=2")  # and every batch of more than 2 is halved
    summary = run_asr(pack(spans, 30, rng=np.random.default_rng(3)), archive.cache_dir, tmp_path / "small", cfg,
                      progress=False)
    assert summary.oom_splits > 0 and summary.failed_segments == 0
    big, small = _stage_rows(tmp_path / "big"), _stage_rows(tmp_path / "small")
    # Invariant: a span's row (tokens, times, text, language, emotion, event) is the same in any batch.
    assert big == small and len(big) == len(spans)
    for key, span in spans.items():
        row, r = big[(span.content_id, span.start_sample, span.end_sample)], alone[key]
        assert row["tokens"] == list(r.tokens) and row["token_start_ms"] == list(r.token_start_ms)
        assert (row["language"], row["emotion"], row["event"]) == (r.language, r.emotion, r.event)
        assert row["text"] == join_tokens(r.tokens) and not TAG_RE.search(row["text"])
    meta = pq.read_schema(next((tmp_path / "big").glob("*.parquet"))).metadata
    assert meta[b"family"] == b"sensevoice" and meta[b"model_class"] == b"SenseVoiceSmall"


# ---- agreement with FunASR's own SenseVoice decoding ----------------------------------------------

class _TokenizerSpy:
    """FunASR's tokenizer, recording the token ids FunASR's inference decodes."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.decoded = tokenizer, []

    def decode(self, ids, **kwargs):
        self.decoded.append([int(i) for i in ids])
        return self.tokenizer.decode(ids, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.tokenizer, name)


def funasr_alone(funasr, wav: np.ndarray, model=None, **options) -> dict:
    """FunASR's SenseVoice inference on one segment: its ids, text, and per-token times before merging.

    Its ``post`` merges tokens into words; the per-token [token, start_s, end_s] list it is given is
    recorded on the way (its result is unchanged).
    """
    model = model or funasr.model
    spy, raw = _TokenizerSpy(funasr.kwargs["tokenizer"]), []
    post = model.post
    model.post = lambda stamps: (raw.append([list(s) for s in stamps]), post(stamps))[1]
    try:
        res, _ = model.inference([wav], key=["seg"], tokenizer=spy, frontend=funasr.kwargs["frontend"],
                                 device="cpu", output_timestamp=True, **options)
    finally:
        del model.post
    return {"ids": spy.decoded[0], "text": res[0]["text"], "stamps": raw[0] if raw else []}


def test_same_tokens_and_tags_as_funasr(lm: LoadedModel, theirs: dict, features: dict, alone: dict) -> None:
    pieces = lm.family.vocab.pieces
    for key, r in alone.items():
        spans = lm.family.text_spans(item_log_probs(lm, features[key])[N_QUERIES:])
        ours = [s.token_id for s in spans]
        ref = theirs[key]
        # FunASR decodes the query frames too: language, emotion, event, itn tags, then the text.
        assert ref["ids"][N_QUERIES:] == ours, key
        fields = (r.language, r.emotion, r.event)
        assert ref["ids"][:3] == [_tag_id(lm, slot, value) for slot, value in enumerate(fields)], key
        assert [t for _, t in piece_tokens([pieces[i] for i in ours])] == list(r.tokens)
        # The text is the project's join of those tokens: FunASR's characters, spaced by core.text's
        # rules (no space between CJK and Latin; runs of single letters written as one word in capitals).
        theirs_text = ref["text"].removeprefix(lm.tokenizer.decode(ref["ids"][:N_QUERIES]))
        assert _letters(join_tokens(r.tokens)) == _letters(theirs_text), key


def _letters(text: str) -> str:
    return "".join(text.split()).casefold()


def _tag_id(lm: LoadedModel, slot: int, value: str) -> int:
    return {v: i for i, v in lm.family.vocab.slot_tags[slot]}[value]


def test_same_times_as_funasr_where_funasr_aligns_the_decoded_tokens(lm: LoadedModel, theirs: dict, audio: dict,
                                                                     features: dict) -> None:
    # FunASR aligns a re-tokenisation of its decoded text, not the decoded tokens, and BPE does not
    # give the same pieces back (e.g. "f" "f" -> "ff"). Where it does, its times must equal ours.
    compared = differ = 0
    for key in features:
        ref = theirs[key]
        spans = lm.family.text_spans(item_log_probs(lm, features[key])[N_QUERIES:])
        seg_ms = len(audio[key]) // 16
        if [t[0] for t in ref["stamps"]] != [lm.family.vocab.pieces[s.token_id] for s in spans]:
            differ += 1
            continue
        compared += 1
        # FunASR's ms come from float seconds; its end can pass the segment's end, ours is clamped.
        funasr_ms = [(round(t[1] * 1000), min(round(t[2] * 1000), seg_ms)) for t in ref["stamps"]]
        assert funasr_ms == [frame_span_ms(s, 60, seg_ms) for s in spans], key
    print(f"compared {compared}, FunASR aligned other tokens in {differ}")
    assert compared >= len(features) // 2, (compared, differ)


def test_funasr_times_belong_to_a_retokenisation(lm: LoadedModel) -> None:
    # FunASR's SenseVoice timestamps align text2tokens(decoded text)[4:], not the decoded ids, and
    # SentencePiece does not give decoded pieces back: "th" "e" is written "the" and read as "the".
    tok, pieces = lm.tokenizer, lm.family.vocab.pieces
    split = next((a, b) for a in pieces for b in pieces
                 if a.isascii() and a.isalpha() and b.isascii() and b.isalpha() and a + b in pieces)
    tags = [pieces.index(tag(name)) for name in ("en", "NEUTRAL", "Speech", "woitn")]
    text = tok.decode(tags + [pieces.index(p) for p in split])
    assert tok.text2tokens(text)[N_QUERIES:] == ["".join(split)] != list(split)


def test_real_speech_decodes_like_funasr(real_data: Path, lm: LoadedModel, funasr) -> None:
    from tests.support.audio import iter_decode_16k

    compared = 0
    for name in ("short_refs/jfk.flac", "short_refs/aishell-BAC009S0724W0121.wav", "short_refs/multilingual.mp3"):
        wav = np.concatenate(list(iter_decode_16k(str(real_data / name))))
        for start in range(0, min(len(wav), 16000 * 60), 16000 * 13):
            seg = wav[start: start + 16000 * 13]
            seg_ms = len(seg) // 16
            spans = lm.family.text_spans(item_log_probs(lm, segment_features(lm.frontend, seg))[N_QUERIES:])
            ref = funasr_alone(funasr, seg, language="auto", use_itn=False)
            assert ref["ids"][N_QUERIES:] == [s.token_id for s in spans], (name, start)
            if [t[0] for t in ref["stamps"]] == [lm.family.vocab.pieces[s.token_id] for s in spans]:
                compared += 1
                funasr_ms = [(round(t[1] * 1000), min(round(t[2] * 1000), seg_ms)) for t in ref["stamps"]]
                assert funasr_ms == [frame_span_ms(s, 60, seg_ms) for s in spans], (name, start)
    assert compared >= 3


def test_language_and_itn_go_into_the_queries(sv_model: Path, funasr, audio: dict) -> None:
    cfg = AsrConfig(model=str(sv_model), device="cpu", threads=2)
    zh_itn = load_model(dataclasses.replace(cfg, language="zh", use_itn=True))
    auto = load_model(cfg)
    net = zh_itn.net
    assert zh_itn.family.query_ids == (net.lid_dict["zh"], 1, 2, net.textnorm_dict["withitn"])
    assert auto.family.query_ids == (0, 1, 2, net.textnorm_dict["woitn"])
    changed = 0
    for key in sorted(audio)[:8]:
        feats = segment_features(zh_itn.frontend, audio[key])
        ours = zh_itn.family.text_spans(item_log_probs(zh_itn, feats)[N_QUERIES:])
        theirs = funasr_alone(funasr, audio[key], language="zh", use_itn=True)
        assert theirs["ids"][N_QUERIES:] == [s.token_id for s in ours]
        changed += [s.token_id for s in ours] != [s.token_id for s in
                                                   auto.family.text_spans(item_log_probs(auto, feats)[N_QUERIES:])]
    assert changed > 0  # the queries reach the text


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="asr.language = 'de'.*'auto', 'zh', 'en'"):
        AsrConfig(language="de")
    with pytest.raises(ValueError, match="asr.use_itn"):
        AsrConfig(use_itn="yes")


# ---- tags never leak into the text --------------------------------------------------------------

def test_tags_only_in_their_fields(alone: dict) -> None:
    for r in alone.values():
        text = join_tokens(r.tokens)
        assert not TAG_RE.search(text) and not any(TAG_RE.search(t) for t in r.tokens)
        assert "<" not in text


def _laughing(lm: LoadedModel, feats: np.ndarray) -> LoadedModel:
    """A copy of the model whose CTC favours <|Laughter|> in about a fifth of this item's speech frames."""
    net = copy.deepcopy(lm.funasr_model)
    laughter = lm.family.vocab.pieces.index(tag("Laughter"))
    x, n = lm.family.with_queries(net, torch.from_numpy(feats)[None], torch.tensor([len(feats)]))
    with torch.inference_mode():
        logits = net.ctc.ctc_lo(net.encoder(x, n)[0])[0, N_QUERIES:]
    behind = logits.max(dim=1).values - logits[:, laughter]
    with torch.no_grad():
        net.ctc.ctc_lo.bias[laughter] += float(torch.quantile(behind, 0.2)) + 1e-3
    return dataclasses.replace(lm, net=net, funasr_model=net)


def test_tags_the_model_emits_in_speech_stay_out_of_the_text(lm: LoadedModel, funasr, audio: dict,
                                                            features: dict) -> None:
    key = max(features, key=lambda k: len(features[k]))
    laughing = _laughing(lm, features[key])
    log_probs = item_log_probs(laughing, features[key])[N_QUERIES:]
    runs = greedy_runs(log_probs.argmax(dim=1).numpy(), blank=0)
    laughter = lm.family.vocab.pieces.index(tag("Laughter"))
    assert sum(r.token_id == laughter for r in runs) >= 3  # the model does laugh mid-speech
    r = decode(laughing, [features[key]], [len(audio[key]) // 16])[0]
    assert "Laughter" not in join_tokens(r.tokens) and not any("Laughter" in t for t in r.tokens)
    # FunASR leaves the tag in its text; the tokens around it are the same as ours.
    theirs = funasr_alone(funasr, audio[key], model=laughing.funasr_model, language="auto", use_itn=False)
    assert tag("Laughter") in lm.tokenizer.decode(theirs["ids"][N_QUERIES:])
    kept = [i for i in theirs["ids"][N_QUERIES:] if i != laughter]
    spans = laughing.family.text_spans(log_probs)
    assert [s.token_id for s in spans] == kept
    # Forced alignment of the tokens left: each keeps its greedy frames and may take the freed ones.
    greedy = [r for r in runs if r.token_id != laughter]
    laughed = {t for r in runs if r.token_id == laughter for t in range(r.start_frame, r.end_frame)}
    for span, run in zip(spans, greedy):
        assert span.start_frame <= run.start_frame and run.end_frame <= span.end_frame
        assert set(range(span.start_frame, span.end_frame)) - set(range(run.start_frame, run.end_frame)) <= laughed


# ---- short and silent segments ------------------------------------------------------------------

def test_one_result_per_item_for_short_and_silent_segments(lm: LoadedModel) -> None:
    clips = [np.zeros(3200, np.float32), speech_like(0.1, seed=1), speech_like(0.05, seed=2),
             speech_like(4.0, seed=3)]
    feats = [segment_features(lm.frontend, c) for c in clips]
    results = decode(lm, feats, [len(c) // 16 for c in clips])
    assert len(results) == len(clips)
    assert all(r.ok and r.language and r.emotion and r.event for r in results)
    assert results == [decode(lm, [f], [len(c) // 16])[0] for f, c in zip(feats, clips)]


# ---- the seam -----------------------------------------------------------------------------------

def test_the_family_comes_from_the_model_class(lm: LoadedModel, tiny_model: Path) -> None:
    assert lm.model_class == "SenseVoiceSmall" and isinstance(lm.family, SenseVoiceFamily)
    assert lm.net is lm.funasr_model  # no wrapper: the encoder masks padding itself
    paraformer = load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2))
    assert paraformer.model_class == "Paraformer" and isinstance(paraformer.family, ParaformerFamily)
    assert family_factory("SenseVoiceSmall") == SenseVoiceFamily.from_model
    assert family_class("SeacoParaformer") is ParaformerFamily
    with pytest.raises(ValueError, match="no model family for FunASR's Whisper"):
        family_factory("Whisper")


def test_hotwords_are_refused(sv_model: Path) -> None:
    with pytest.raises(ValueError, match="SenseVoice has no hotword"):
        load_model(AsrConfig(model=str(sv_model), device="cpu", hotwords=("阿里巴巴",)))


@pytest.mark.parametrize(("setting", "message"), [({"language": "en"}, "asr.language = 'en' applies to SenseVoice"),
                                                  ({"use_itn": True}, "asr.use_itn = true applies to SenseVoice")])
def test_sensevoice_settings_are_an_error_for_paraformer(tiny_model: Path, setting: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2, **setting))


def test_a_folder_without_its_sentencepiece_model_is_named(sv_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sv"
    folder.mkdir()
    for path in sv_model.iterdir():
        if path.name != BPE_MODEL:
            (folder / path.name).write_bytes(path.read_bytes())
    with pytest.raises(FileNotFoundError, match=f"lacks {re.escape(BPE_MODEL)}.*SentencePiece"):
        check_model_folder(folder)
    assert check_model_folder(sv_model) == sv_model
    config = yaml.safe_load((sv_model / "config.yaml").read_text())
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "model": "Whisper"}))
    with pytest.raises(ValueError, match="names model 'Whisper', and vadpack has no model family"):
        check_model_folder(folder)


# ---- the tiny model folder ------------------------------------------------------------------------

FOLDER_FILES = ("configuration.json", "config.yaml", "am.mvn", "model.pt", BPE_MODEL, "tokens.json")


def test_folder_is_laid_out_like_the_hub_model(sv_model: Path) -> None:
    import sentencepiece as spm

    assert sorted(p.name for p in sv_model.iterdir()) == sorted(FOLDER_FILES)
    metas = json.loads((sv_model / "configuration.json").read_text())["file_path_metas"]
    assert metas["tokenizer_conf"]["bpemodel"] == BPE_MODEL and metas["frontend_conf"]["cmvn_file"] == "am.mvn"
    config = yaml.safe_load((sv_model / "config.yaml").read_text())
    assert config["model"] == "SenseVoiceSmall" and config["encoder"] == "SenseVoiceEncoderSmall"
    assert config["frontend_conf"]["dither"] == 0.0
    sp = spm.SentencePieceProcessor(model_file=str(sv_model / BPE_MODEL))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]  # <unk> = 0 is the CTC blank
    # Invariant: every tag is one piece, so the model can emit it in one frame.
    assert all(sp.encode(t) == [sp.piece_to_id(t)] for t in ALL_TAGS)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    scripts = {"han": "\u4e00", "kana": "\u3041", "hangul": "\uac00", "latin": "a"}
    for name, low in scripts.items():
        high = {"han": "\u9fff", "kana": "\u30ff", "hangul": "\ud7a3", "latin": "z"}[name]
        assert any(low <= ch <= high for p in pieces for ch in p), name
    assert json.loads((sv_model / "tokens.json").read_text(encoding="utf-8")) == pieces


def test_cli_writes_the_same_bytes_for_the_same_seed(sv_model: Path, tmp_path: Path) -> None:
    from vadpack.pipeline.cli import main

    assert main(["tiny-model", str(tmp_path / "again"), "--family", "sensevoice"]) == 0
    for name in FOLDER_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (sv_model / name).read_bytes(), name
    other = write_tiny_sensevoice(tmp_path / "other", seed=1)
    assert (other / "model.pt").read_bytes() != (sv_model / "model.pt").read_bytes()


def test_funasr_automodel_loads_it(funasr, sv_model: Path) -> None:
    assert type(funasr.model).__name__ == "SenseVoiceSmall"
    assert funasr.kwargs["frontend"].cmvn is not None and funasr.kwargs["tokenizer"].get_vocab_size() == 1000
    saved = torch.load(sv_model / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in funasr.model.state_dict().items())


def test_large_is_sensevoice_small() -> None:
    import sentencepiece as spm

    enc = sensevoice_config("large")["encoder_conf"]
    assert (enc["output_size"], enc["attention_heads"], enc["linear_units"]) == (512, 4, 2048)
    assert (enc["num_blocks"], enc["tp_blocks"], enc["kernel_size"], enc["sanm_shfit"]) == (50, 20, 11, 0)
    sp = spm.SentencePieceProcessor(model_proto=pad_vocabulary(train_tokenizer(), 25055))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert len(pieces) == len(set(pieces)) == 25055
    assert all(sp.encode(t) == [sp.piece_to_id(t)] for t in ALL_TAGS)
