"""Human-readable exports of one document: SRT, WebVTT, JSON and plain text.

Subtitle cues are sentences: each segment's tokens split at pauses of ``stitch.sentence_gap_s``
(a segment can run 30 s, too long for one cue) and at every change of speaker. A segment without
tokens is one cue. Failed segments (text None) and empty ones make no cue, since an empty cue is
invalid SRT. With speakers, a cue (and a TXT line) starts with its speaker: ``S1: text``; JSON gives
each segment and token a ``speaker`` (null without speakers).

When the model tells the language of a segment (SenseVoice), the exports carry it: SRT, which has
no place for metadata, starts a cue with ``[zh]`` wherever the language changes (the first cue
too); WebVTT wraps each cue's text in a language span (``<lang zh>...</lang>``, part of the format,
not shown by players); JSON has ``language``, ``emotion`` and ``event`` per segment and
``languages`` per document. ``nospeech`` is no language and gets no marker. Paraformer's exports
are unchanged.

Files mirror the inputs' folders: ``/data/2024/05/x.wav`` (inputs ``/data``) is exported to
``<output_dir>/srt/2024/05/x.srt``, the path relative to the common base of the input folders (see
``export_stems``). Each is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
from vadpack.core.atomic import write_text_atomic
from vadpack.stitcher.config import FORMATS
from vadpack.stitcher.text import split_sentences
from vadpack.stitcher.types import DocumentText, SegmentText, Sentence, TokenTime

MAX_STEM_BYTES = 120  # with "__", a 100-char id and ".json" the name stays under 255 bytes (ext4, APFS)
# An id used as it is: starts and ends with a letter or digit (so "<name>.srt" has no "..").
_SAFE_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


# ---- times -----------------------------------------------------------------------------------

def _hms_ms(t_s: float) -> tuple[int, int, int, int]:
    """Hours, minutes, seconds, milliseconds of ``t_s`` rounded to the nearest millisecond."""
    if not t_s >= 0:  # also catches NaN
        raise ValueError(f"a cue time must be a non-negative number of seconds, got {t_s!r}")
    total_ms = int(t_s * 1000 + 0.5)  # round half up; Python's round() would round half to even
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, ms = divmod(rest, 1000)
    return hours, minutes, seconds, ms


def srt_time(t_s: float) -> str:
    """``HH:MM:SS,mmm`` as SRT writes it (hours grow past two digits after 99 h)."""
    return "{:02d}:{:02d}:{:02d},{:03d}".format(*_hms_ms(t_s))


def vtt_time(t_s: float) -> str:
    """``HH:MM:SS.mmm`` as WebVTT writes it."""
    return "{:02d}:{:02d}:{:02d}.{:03d}".format(*_hms_ms(t_s))


# ---- cues and renderers ------------------------------------------------------------------------

NO_LANGUAGE = "nospeech"  # SenseVoice's answer when it hears no speech: not a language to mark


def document_cues(doc: DocumentText, gap_s: float) -> list[Sentence]:
    """The subtitle cues of ``doc``: its segments' sentences, in time order, with their segment's language."""
    cues: list[Sentence] = []
    for seg in doc.segments:
        language = seg.language if seg.language != NO_LANGUAGE else None
        if seg.tokens:
            cues.extend(replace(c, language=language) for c in split_sentences(seg.tokens, gap_s))
        elif seg.text and seg.text.strip():
            cues.append(Sentence(text=seg.text, start_s=seg.start_s, end_s=seg.end_s, speaker=seg.speaker,
                                 language=language))
    return cues


def cue_text(cue: Sentence) -> str:
    """A cue's text on one line, after its speaker when it has one (``S1: text``)."""
    text = _one_line(cue.text)
    return f"{cue.speaker}: {text}" if cue.speaker else text


def _one_line(text: str) -> str:
    # A blank line ends an SRT cue, and "-->" reads as a timing line: keep cue text on one line.
    return " ".join(text.split()).replace("-->", "->")


def to_srt(cues: Sequence[Sentence]) -> str:
    """SRT: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` each followed by a blank line.

    A cue whose language differs from the cue before it starts with ``[<language>] ``.
    """
    out, previous = [], None
    for k, c in enumerate(cues, start=1):
        marker = f"[{c.language}] " if c.language and c.language != previous else ""
        previous = c.language or previous
        out.append(f"{k}\n{_span(c, srt_time)}\n{marker}{cue_text(c)}\n\n")
    return "".join(out)


def _span(cue: Sentence, fmt: Callable[[float], str]) -> str:
    # A cue never ends before it starts, even if a model's token times do.
    return f"{fmt(cue.start_s)} --> {fmt(max(cue.end_s, cue.start_s))}"


def to_vtt(cues: Sequence[Sentence]) -> str:
    """WebVTT: a ``WEBVTT`` header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm``; text is HTML-escaped,
    and in a ``<lang xx>`` span when its language is known."""
    body = "".join(f"{_span(c, vtt_time)}\n{_vtt_cue_text(c)}\n\n" for c in cues)
    return "WEBVTT\n\n" + body


def _vtt_cue_text(cue: Sentence) -> str:
    text = _vtt_escape(cue_text(cue))
    # A language tag is letters, digits and hyphens (BCP 47); anything else would break the markup.
    if cue.language and re.fullmatch(r"[A-Za-z0-9-]+", cue.language):
        return f"<lang {cue.language}>{text}</lang>"
    return text


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: a bare "<" or "&" would start a tag or an entity.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_txt(cues: Sequence[Sentence]) -> str:
    """Plain text, one sentence per line."""
    return "".join(f"{cue_text(c)}\n" for c in cues)


def to_json(doc: DocumentText) -> str:
    """JSON of the document: ids, duration, text, languages, and its segments (with language, emotion,
    event: null when the model does not tell) with their tokens. Times in s, to 1 ms.

    The bytes are those of ``json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False) + "\\n"``
    of the nested dicts (keys in the order above), written from templates: the standard library's
    encoder with an indent runs in Python, about 60 us per token, which for an archive of 100 M
    tokens is hours; the templates take a few us.
    """
    segments = ",\n  ".join(_SEGMENT_JSON % (
        _jint(s.segment_index), _jms(s.start_s), _jms(s.end_s), _jstr(s.text), _jstr(s.speaker),
        _jstr(s.language), _jstr(s.emotion), _jstr(s.event), _json_tokens(s.tokens)) for s in doc.segments)
    return _DOCUMENT_JSON % (_jstr(doc.recording_id), _jstr(doc.path), _jms(doc.duration_s), _jstr(doc.text),
                             _json_list([_jstr(x) for x in doc.languages], " "),
                             f"[\n  {segments}\n ]" if doc.segments else "[]")


# json.dumps(indent=1) of a document: each level one space deeper, "," ends an item, ": " follows a key.
_DOCUMENT_JSON = ('{\n "recording_id": %s,\n "path": %s,\n "duration_s": %s,\n "text": %s,\n "languages": %s,\n'
                  ' "segments": %s\n}\n')
_SEGMENT_JSON = ('{\n   "segment_index": %s,\n   "start_s": %s,\n   "end_s": %s,\n   "text": %s,\n   "speaker": %s,\n'
                 '   "language": %s,\n   "emotion": %s,\n   "event": %s,\n   "tokens": %s\n  }')
_TOKEN_JSON = '{\n     "token": %s,\n     "start_s": %s,\n     "end_s": %s,\n     "speaker": %s\n    }'


def _json_tokens(tokens: Sequence[TokenTime]) -> str:
    jstr, jms = _jstr, _jms
    return _json_list([_TOKEN_JSON % (jstr(t.token), jms(t.start_s), jms(t.end_s), jstr(t.speaker))
                       for t in tokens], "   ")


def _json_list(items: list[str], indent: str) -> str:
    """A JSON list of encoded ``items`` whose closing bracket is at ``indent``."""
    if not items:
        return "[]"
    inner = f",\n{indent} "
    return f"[\n{indent} {inner.join(items)}\n{indent}]"


def _jstr(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def _jint(value: int) -> str:
    return json.dumps(value) if type(value) is not int else int.__repr__(value)


def _jms(t_s: float) -> str:
    """A time to 1 ms as JSON writes the float (``repr``); NaN and infinities are refused as by
    ``json.dumps(allow_nan=False)``."""
    r = round(float(t_s), 3)
    if r != r or r in (_INF, -_INF):
        raise ValueError(f"Out of range float values are not JSON compliant: {r!r}")
    return float.__repr__(r)


_INF = float("inf")
_encode_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes a str as


def render(doc: DocumentText, fmt: str, gap_s: float) -> str:
    """The text of ``doc`` in format ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return to_json(doc)
    renderers = {"srt": to_srt, "vtt": to_vtt, "txt": to_txt}
    if fmt not in renderers:
        raise ValueError(f"unknown export format {fmt!r}; allowed formats: {', '.join(FORMATS)}")
    return renderers[fmt](document_cues(doc, gap_s))


# ---- file names and writing ------------------------------------------------------------------

def safe_export_name(path: str, recording_id: str) -> str:
    """A readable file name (without extension) for the exports of one recording.

    The name is made of the input file's stem, with every character that is not a letter, digit,
    mark, ``.``, ``-`` or ``_`` replaced by ``_`` (so no ``/``, ``\\``, NUL, control characters,
    spaces or shell metacharacters), no leading dot or dash and no ``..``, at most 120 UTF-8 bytes;
    then ``__`` and the recording id. Because the id is unique, two files of the same name in
    different folders get different names. When the id already starts with the stem (the scan
    stage builds ids as ``<stem>-<hash>``), the id alone is the name.

    Two recordings never get the same name: the id part is the id itself, or ``id-`` and a 128-bit
    hash of it when the id is not 1-100 characters of ``[A-Za-z0-9._-]`` starting and ending with a
    letter or digit, or has ``__`` or ``..``. The id part never contains ``__`` nor starts with ``_``,
    so it is always what follows the name's last ``__``, and names without ``__`` are ids alone.

    Args:
        path: the input file's path as given (any folder, any separator).
        recording_id: the recording's unique id.

    Returns:
        A name of at most 222 bytes that is one path component, never ``.`` or ``..``.
    """
    stem = _readable_stem(path)
    rid = _id_part(recording_id)
    if not stem or rid.startswith(stem):
        return rid
    return f"{stem}__{rid}"


def _readable_stem(path: str) -> str:
    base = re.split(r"[/\\]", path)[-1]
    stem = os.path.splitext(base)[0]
    stem = unicodedata.normalize("NFC", stem)
    stem = "".join(ch if unicodedata.category(ch)[0] in "LNM" or ch in "-_." else "_" for ch in stem)
    stem = re.sub(r"_+", "_", re.sub(r"\.{2,}", ".", stem)).strip("._-")
    while len(stem.encode("utf-8")) > MAX_STEM_BYTES:  # cut whole characters, never half a UTF-8 one
        stem = stem[:-1]
    return stem.rstrip("._-")


def _id_part(recording_id: str) -> str:
    if _SAFE_ID.fullmatch(recording_id) and "__" not in recording_id and ".." not in recording_id:
        return recording_id
    return "id-" + hashlib.sha256(recording_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def stale_exports(output_dir: str | Path, formats: Iterable[str], owned: set[str]) -> list[Path]:
    """Export files under ``<output_dir>/<format>/`` (any depth) that no recording owns.

    Only files named like exports (``*.<format>`` in a format's folder) are considered, so other
    files a person keeps there are never touched.

    Args:
        output_dir: the run's output folder.
        formats: the format folders to look in.
        owned: the export files of the recordings now in the tables, relative to ``output_dir``.
    """
    stale = []
    for fmt in formats:
        folder = Path(output_dir) / fmt
        if folder.is_dir():
            stale += [p for p in sorted(folder.rglob(f"*.{fmt}"))
                      if p.is_file() and p.relative_to(output_dir).as_posix() not in owned]
    return stale


MAX_NAME_BYTES = 240  # a file name plus ".json" stays under 255 bytes (ext4, APFS)


def export_base(paths: Iterable[str], roots: Iterable[str] = ()) -> str:
    """The folder exports are laid out from: the common base of ``roots`` (the input folders) and
    of the folders of ``paths`` (a file given alone, or through a list file, lies anywhere)."""
    folders = [os.path.abspath(r) for r in roots] + [os.path.dirname(os.path.abspath(p)) for p in paths]
    return os.path.commonpath(folders) if folders else ""


def export_stems(paths: dict[str, str], roots: Iterable[str] = ()) -> dict[str, str]:
    """Each recording's export path without extension, relative to a format's folder (``/``-separated).

    The input's path below ``export_base`` with its extension dropped (``2024/05/x``). Where two
    recordings would get the same stem (``x.wav`` and ``x.mp3`` in one folder), each keeps its
    extension (``x.wav``, ``x.mp3``); a file name too long for a file system gets the safe name of
    ``safe_export_name`` in the same folder. The names depend on the archive alone, not on the
    order of anything, so every run gives the same.

    Args:
        paths: recording id -> the input file's path.
        roots: the input folders as configured.
    """
    base = export_base(paths.values(), roots)
    rel = {rid: os.path.relpath(os.path.abspath(p), base).replace(os.sep, "/") for rid, p in paths.items()}
    stems = {rid: os.path.splitext(r)[0] for rid, r in rel.items()}
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem] = seen.get(stem, 0) + 1
    out = {}
    for rid, stem in stems.items():
        stem = rel[rid] if seen[stem] > 1 else stem
        folder, _, name = stem.rpartition("/")
        if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES or name in (".", ".."):
            name = safe_export_name(paths[rid], rid)
        out[rid] = f"{folder}/{name}" if folder else name
    return out


def _write_files(output_dir: str | Path, files: Sequence[str], text: DocumentText, gap_s: float) -> int:
    """Write ``text`` to ``files`` (``<format>/<stem>.<format>`` relative to ``output_dir``); return how many."""
    for rel in files:
        fmt = rel.rsplit(".", 1)[-1]
        # Not fsync-ed: exports are cheap to recompute and written by the thousand.
        write_text_atomic(Path(output_dir) / rel, render(text, fmt, gap_s), durable=False)
    return len(files)


def write_exports(doc: DocumentText, formats: Iterable[str], output_dir: str | Path,
                  gap_s: float) -> list[Path]:
    """Write ``doc`` in each format to ``<output_dir>/<format>/<name>.<format>``; return the paths."""
    name = safe_export_name(doc.path, doc.recording_id)
    paths = []
    for fmt in formats:
        target = Path(output_dir) / fmt / f"{name}.{fmt}"
        # Not fsync-ed: exports are cheap to recompute and written by the thousand.
        write_text_atomic(target, render(doc, fmt, gap_s), durable=False)
        paths.append(target)
    return paths


# ---- adapter for the stitch stage, which holds rows as dicts -------------------------------------

def document_from_rows(doc: dict, segments: Sequence[dict], tokens: Sequence[dict]) -> DocumentText:
    """Build a ``DocumentText`` from rows of the documents, segments and tokens tables of one recording."""
    by_segment: dict[int, list[TokenTime]] = {}
    for row in sorted(tokens, key=lambda r: (r["segment_index"], r.get("token_index", 0))):
        by_segment.setdefault(row["segment_index"], []).append(
            TokenTime(token=row["token"], start_s=row["start_s"], end_s=row["end_s"], speaker=row.get("speaker")))
    return _document(doc, sorted(segments, key=lambda r: r["segment_index"]),
                     {k: tuple(v) for k, v in by_segment.items()})


def _document(doc: dict, segments: Iterable[dict], by_segment: dict[int, tuple[TokenTime, ...]]) -> DocumentText:
    """The ``DocumentText`` of a document row, its segment rows in order and each segment's tokens."""
    segs = tuple(SegmentText(segment_index=s["segment_index"], start_s=s["start_s"], end_s=s["end_s"],
                             text=s["text"], tokens=by_segment.get(s["segment_index"], ()),
                             speaker=s.get("speaker"), language=s.get("language"), emotion=s.get("emotion"),
                             event=s.get("event"))
                 for s in segments)
    return DocumentText(recording_id=doc["recording_id"], path=doc["path"] or "",
                        duration_s=doc["duration_s"] or 0.0, text=doc["text"] or "", segments=segs,
                        languages=tuple(doc.get("languages") or ()))


def document_from_tables(doc: dict, segments: pa.Table, tokens: pa.Table) -> DocumentText:
    """``document_from_rows`` of one recording's rows given as table slices, read column-wise: the
    same document, without a dict per token (the export of a large archive is millions of tokens)."""
    if tokens.num_rows:
        seg_of = tokens["segment_index"].to_numpy(zero_copy_only=False).astype(np.int64)
        tok_of = (tokens["token_index"].to_numpy(zero_copy_only=False).astype(np.int64)
                  if "token_index" in tokens.column_names else np.zeros(len(seg_of), np.int64))
        if np.any((np.diff(seg_of) < 0) | ((np.diff(seg_of) == 0) & (np.diff(tok_of) < 0))):
            order = np.lexsort((tok_of, seg_of))  # stable, as sorted() by (segment, token)
            tokens, seg_of = tokens.take(pa.array(order)), seg_of[order]
        n = tokens.num_rows
        speakers = tokens["speaker"].to_pylist() if "speaker" in tokens.column_names else [None] * n
        times = list(map(TokenTime, tokens["token"].to_pylist(), tokens["start_s"].to_pylist(),
                         tokens["end_s"].to_pylist(), speakers))
        cuts = np.flatnonzero(np.diff(seg_of)) + 1
        bounds = zip([0, *cuts.tolist()], [*cuts.tolist(), n])
        by_segment = {int(seg_of[lo]): tuple(times[lo:hi]) for lo, hi in bounds}
    else:
        by_segment = {}
    return _document(doc, segments.sort_by("segment_index").to_pylist() if segments.num_rows else [], by_segment)


def write_document_tables(output_dir: str | Path, files: Sequence[str], doc: dict, segments: pa.Table,
                          tokens: pa.Table, gap_s: float) -> int:
    """Write the exports of one document, given as its table slices, to ``files``; return how many."""
    return _write_files(output_dir, files, document_from_tables(doc, segments, tokens), gap_s)


def write_document_exports(output_dir: str | Path, formats: Iterable[str], doc: dict,
                           segments: Sequence[dict], tokens: Sequence[dict], gap_s: float) -> int:
    """Write the exports of one document given as table rows; return how many files were written."""
    return len(write_exports(document_from_rows(doc, segments, tokens), formats, output_dir, gap_s))
