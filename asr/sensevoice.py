"""SenseVoice-Small (FunASR's ``SenseVoiceSmall``, CTC): padded feature batches -> one result per item.

The family decodes from the same packed, zero-padded LFR features as Paraformer, with the model's
own parts rather than FunASR's ``inference``: that recomputes features, and its timestamps
force-align a re-tokenisation of the decoded text (SentencePiece does not give the decoded pieces
back) instead of the decoded tokens; and FunASR's aligner, given a batch, lets a short item's path
depend on the padding after it. Step by step:

1. Four query embeddings go in front of each item's frames, in the order FunASR's own inference
   uses: language (``asr.language``, ``auto`` = index 0), the event and emotion queries (indices 1
   and 2), and text normalisation (``withitn`` / ``woitn`` from ``asr.use_itn``). Padding stays at
   the end of the time axis, so each item's frames keep their positions.
2. The SANM encoder runs on the batch. It is padding invariant as shipped: every layer zeroes the
   FSMN memory block's input past each item's length before its convolution, and attention masks
   padded keys, so a real frame never reads a padded one (tests/asr/test_sensevoice.py checks this
   bit for bit with garbage in the padding).
3. Per item, on its own frames only: CTC log-probabilities. The first four output frames answer the
   queries: language, emotion and event are each read as the best tag *of their kind* in their
   frame; they go to ``language``, ``emotion`` and ``event`` and never into the text.
4. Greedy CTC on the remaining frames: the runs of one non-blank id are the tokens and their frames
   (the greedy path is the forced alignment of its own tokens, see ``asr.ctc``). Tags, ``<s>`` and
   ``</s>`` are taken out; only then are the remaining tokens force-aligned again (Viterbi), so that
   their frames come from an alignment of exactly the tokens reported.
5. Frames -> ms relative to the segment, clamped to it; SentencePiece pieces -> tokens in the
   project's convention (no ``▁``; ``@@`` where a word continues into the next token).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from vadpack.asr.config import LANGUAGE_TAGS, AsrConfig
from vadpack.asr.ctc import TokenSpan, forced_align, frame_span_ms, greedy_runs
from vadpack.asr.types import SegmentResult
from vadpack.core.configtools import ConfigError
from vadpack.core.text import SUBWORD_MARK, needs_space

EMOTION_TAGS = ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED", "EMO_UNKNOWN")
EVENT_TAGS = ("Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Sing",
              "Speech_Noise", "GBG", "Event_UNK")
ITN_TAGS = ("withitn", "woitn")
N_QUERIES = 4  # language, emotion, event, text normalisation: one output frame each
EVENT_EMOTION_QUERIES = (1, 2)  # SenseVoiceSmall's embedding rows for them, fixed in FunASR
WORD_START = "\u2581"  # SentencePiece's "▁": the piece starts a new word
_TAG = re.compile(r"<\|[^|]*\|>")
_UNKNOWN = {"EMO_UNKNOWN": "unknown", "Event_UNK": "unknown"}
BPE_MODEL = "chn_jpn_yue_eng_ko_spectok.bpe.model"  # the file name of the hub model's tokenizer


def tag(name: str) -> str:
    """The vocabulary piece of a SenseVoice tag name (``zh`` -> ``<|zh|>``)."""
    return f"<|{name}|>"


# Every tag piece SenseVoice-Small emits, as FunASR's rich_transcription_postprocess knows them.
ALL_TAGS = tuple(tag(n) for n in (*LANGUAGE_TAGS, *EMOTION_TAGS, *EVENT_TAGS, *ITN_TAGS))


@dataclass(frozen=True, slots=True)
class SenseVoiceVocab:
    """What decoding needs to know about the vocabulary.

    Attributes:
        pieces: the SentencePiece piece of each id.
        blank_id: the CTC blank (id 0, ``<unk>``, in SenseVoice-Small).
        drop_ids: ids never reported as text: every ``<|...|>`` tag, ``<s>`` and ``</s>``.
        slot_tags: for the language, emotion and event output frames, the (id, field value) of each
            tag of that kind in the vocabulary.
    """

    pieces: tuple[str, ...]
    blank_id: int
    drop_ids: frozenset[int]
    slot_tags: tuple[tuple[tuple[int, str], ...], ...]

    @classmethod
    def from_pieces(cls, pieces: Sequence[str], blank_id: int, sos: int, eos: int) -> SenseVoiceVocab:
        """Find the tags in a vocabulary given as its pieces in id order.

        Raises:
            ValueError: the vocabulary lacks one of the kinds of tags, so it is no SenseVoice one.
        """
        index = {p: i for i, p in enumerate(pieces)}
        slots = tuple(tuple((index[tag(n)], _UNKNOWN.get(n, n.lower())) for n in names if tag(n) in index)
                      for names in (LANGUAGE_TAGS, EMOTION_TAGS, EVENT_TAGS))
        missing = [kind for kind, ids in zip(("language", "emotion", "event"), slots) if not ids]
        if missing:
            raise ConfigError(f"the tokenizer has no {' or '.join(missing)} tags (such as {tag('zh')}, "
                             f"{tag('NEUTRAL')}, {tag('Speech')}); it is not a SenseVoice tokenizer")
        drops = {i for i, p in enumerate(pieces) if _TAG.fullmatch(p)} | {sos, eos}
        return cls(tuple(pieces), blank_id, frozenset(drops - {blank_id}), slots)


@dataclass(frozen=True, slots=True, eq=False)
class SenseVoiceFamily:
    """The SenseVoice model family: how to decode a padded batch with ``SenseVoiceSmall``.

    Attributes:
        query_ids: the four embedding rows put in front of every item (language, event, emotion,
            text normalisation), chosen at load time from ``asr.language`` and ``asr.use_itn``.
        vocab: the vocabulary's tags and specials.
        frame_ms: the model's time step (60 ms: LFR of 6 fbank frames of 10 ms).
    """

    name: ClassVar[str] = "sensevoice"
    model_classes: ClassVar[tuple[str, ...]] = ("SenseVoiceSmall",)
    folder_files: ClassVar[str] = (f"config.yaml, configuration.json, am.mvn, model.pt and the SentencePiece "
                                   f"model they name ({BPE_MODEL})")

    query_ids: tuple[int, int, int, int]
    vocab: SenseVoiceVocab
    frame_ms: int

    @staticmethod
    def missing_files(folder: Path, config: dict[str, Any]) -> list[str]:
        """What a SenseVoice folder lacks beyond config.yaml, am.mvn and model.pt: its SentencePiece model."""
        name = bpe_model_name(folder, config)
        return [] if (folder / name).is_file() else [name]

    @staticmethod
    def check_loaded(spec: str, model: torch.nn.Module, kwargs: dict[str, Any]) -> None:
        """Refuse a loaded model this family cannot decode, naming what is wrong."""
        if not hasattr(kwargs.get("tokenizer"), "sp"):
            raise ConfigError(f"asr.model = {spec!r}: SenseVoice needs its SentencePiece tokenizer (a .bpe.model "
                             "named in configuration.json or config.yaml)")
        for part in ("encoder", "ctc", "embed", "lid_dict", "textnorm_dict"):
            if not hasattr(model, part):
                raise ConfigError(f"asr.model = {spec!r} is a {type(model).__name__} without {part}; it is not "
                                 "a SenseVoice-Small model")

    @staticmethod
    def prepare(model: torch.nn.Module, dtype: torch.dtype) -> None:
        """Nothing to do: the SANM encoder and the CTC layer run in any dtype (log-probabilities in float32)."""

    @staticmethod
    def check_settings(cfg: AsrConfig, model_class: str | None) -> None:
        """Refuse asr settings this family cannot honour, before any work.

        Raises:
            ConfigError: hotwords are set (SenseVoice has no hotword biasing).
        """
        if cfg.hotwords:
            raise ConfigError("asr.hotwords needs a SeACo-Paraformer model; SenseVoice has no hotword biasing, "
                              "so remove asr.hotwords")

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, frontend: Any, cfg: AsrConfig) -> SenseVoiceFamily:
        """What decoding needs, read once at load time from FunASR's model, tokenizer and frontend.

        Raises:
            ValueError: hotwords are set (SenseVoice has none), or the tokenizer is not a SenseVoice one.
        """
        cls.check_settings(cfg, type(model).__name__)
        sp = tokenizer.sp
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        vocab = SenseVoiceVocab.from_pieces(pieces, int(model.blank_id), int(model.sos), int(model.eos))
        norm = "withitn" if cfg.use_itn else "woitn"
        queries = (int(model.lid_dict[cfg.language]), *EVENT_EMOTION_QUERIES, int(model.textnorm_dict[norm]))
        return cls(queries, vocab, int(frontend.frame_shift) * int(frontend.lfr_n))

    def wrap(self, model: torch.nn.Module) -> Any:
        """The model itself: its encoder masks padded frames (no wrapper, whatever asr.pad_invariant says)."""
        return model

    def decode(self, lm: Any, speech: torch.Tensor, speech_lengths: torch.Tensor,
               segment_ms: Sequence[int]) -> list[SegmentResult]:
        """Decode padded features: exactly one result per item, in order.

        Args:
            lm: the loaded model (``asr.types.LoadedModel``): ``net`` and ``tokenizer`` are used.
            speech: (n_items, frames, feature_dim) features on the model's device, zero padded.
            speech_lengths: (n_items,) real frames per item.
            segment_ms: each segment's length in ms; token times are clamped to it.
        """
        # with_queries builds a new tensor, which matters: the encoder scales its input in place.
        x, lengths = self.with_queries(lm.net, speech, speech_lengths)
        enc = lm.net.encoder(x, lengths)[0]
        results = []
        for i, (n, ms) in enumerate(zip(lengths.tolist(), segment_ms)):
            log_probs = lm.net.ctc.log_softmax(enc[i: i + 1, :n])[0].float()  # this item's frames only
            results.append(self.item_result(log_probs, int(ms)))
        return results

    def with_queries(self, net: Any, speech: torch.Tensor, lengths: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The features with the four query embeddings in front of every item, and the new lengths."""
        ids = torch.tensor([self.query_ids], dtype=torch.long, device=speech.device)
        queries = net.embed(ids).to(speech.dtype).expand(speech.size(0), -1, -1)
        return torch.cat((queries, speech), dim=1), lengths.to(torch.int64) + N_QUERIES

    def item_result(self, log_probs: torch.Tensor, segment_ms: int) -> SegmentResult:
        """One item's result from its CTC log-probabilities (frames incl. the four query frames, vocab)."""
        language, emotion, event = (self._slot_value(log_probs[k], k) for k in range(3))
        spans = self.text_spans(log_probs[N_QUERIES:])
        pieces = [self.vocab.pieces[s.token_id] for s in spans]
        tokens, starts, ends = [], [], []
        for i, token in piece_tokens(pieces):
            start, end = frame_span_ms(spans[i], self.frame_ms, segment_ms)
            tokens.append(token)
            starts.append(start)
            ends.append(end)
        return SegmentResult(tokens=tuple(tokens), token_start_ms=tuple(starts),
                             token_end_ms=tuple(ends), language=language, emotion=emotion, event=event)

    def text_spans(self, log_probs: torch.Tensor) -> list[TokenSpan]:
        """The text tokens of the speech frames and their frames: greedy CTC, tags taken out.

        Without tags among the greedy tokens their runs are already the forced alignment; with
        tags, the tokens left are aligned again, so the frames a tag held go to a neighbour or blank.
        """
        runs = greedy_runs(log_probs.argmax(dim=-1).cpu().numpy(), self.vocab.blank_id)
        kept = [r for r in runs if r.token_id not in self.vocab.drop_ids]
        if len(kept) == len(runs):
            return runs
        targets = [r.token_id for r in kept]
        return forced_align(log_probs.cpu().numpy(), targets, self.vocab.blank_id)

    def _slot_value(self, frame: torch.Tensor, slot: int) -> str:
        """The field value of the best tag of the slot's kind in its output frame."""
        ids, values = zip(*self.vocab.slot_tags[slot])
        best = int(frame[list(ids)].argmax())
        return values[best]


def piece_tokens(pieces: Sequence[str]) -> list[tuple[int, str]]:
    """SentencePiece pieces -> tokens in the project's convention, with the index of their piece.

    ``▁`` (a space before the piece) is dropped, a piece of only ``▁`` gives no token, and a piece
    that a word continues into the next one gets ``@@`` wherever the stitcher would otherwise put
    a space between them, so ``core.text.join_tokens`` writes the words as SentencePiece does.
    """
    out: list[tuple[int, str]] = []
    space = True
    for i, piece in enumerate(pieces):
        body = piece.lstrip(WORD_START)
        space = space or len(body) < len(piece)
        if not body:
            continue
        if out and not space and needs_space(out[-1][1][-1], body[0]):
            out[-1] = (out[-1][0], out[-1][1] + SUBWORD_MARK)
        out.append((i, body))
        space = False
    return out


def bpe_model_name(folder: Path, config: dict[str, Any]) -> str:
    """The SentencePiece model a SenseVoice folder names: configuration.json's (as FunASR resolves it
    for a hub folder), else config.yaml's ``tokenizer_conf.bpemodel``, else the hub model's file name."""
    metas = {}
    if (folder / "configuration.json").is_file():
        try:
            metas = json.loads((folder / "configuration.json").read_text(encoding="utf-8")).get("file_path_metas", {})
        except (ValueError, AttributeError):
            metas = {}
    named = (metas.get("tokenizer_conf") or {}).get("bpemodel") or (config.get("tokenizer_conf") or {}).get("bpemodel")
    return str(named or BPE_MODEL)
