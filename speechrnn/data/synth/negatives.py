"""Negative speech: espeak-ng saying thousands of non-command words and phrases, in GSC layout."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, to_pcm16
from speechrnn.data.parallel import default_jobs, run_tasks
from speechrnn.data.staging import is_complete, read_marker, staged, write_marker
from speechrnn.data.synth import noise
from speechrnn.data.synth.espeak import FRAME, Inventory, Voice, inventory
from speechrnn.data.synth.lexicon import (
    Lexicon,
    english_lexicon,
    source_versions,
)
from speechrnn.data.synth.negative_plan import (
    KIND,
    KINDS,
    PARTS,
    Item,
    NegativeSettings,
    assign_voices,
    plan_items,
    voice_pools,
)
from speechrnn.data.synth.writer import (
    SPLIT_LISTS,
    clip_rng,
    faded_speech,
    place,
    write_wav,
)
from speechrnn.errors import ConfigError, DataError

MANIFEST = "negatives.tsv"
COLUMNS = ("path", "word", "kind", "part", "speaker", "variant", "command", "distance")


@dataclass(frozen=True)
class NegativeClips:
    """Clips of one part: paths[i] (relative to root) says words[i], by speakers[i]."""

    root: Path
    paths: tuple[str, ...]
    words: tuple[str, ...]
    speakers: tuple[str, ...]
    kinds: tuple[str, ...]
    variants: tuple[str, ...]


def generate(
    out_dir: Path,
    settings: NegativeSettings | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the negatives to `out_dir` (GSC layout); a no-op when already there, complete."""
    settings = settings or NegativeSettings()
    workers = jobs if jobs is not None else default_jobs()
    if workers < 1:
        raise ConfigError(f"jobs: {workers} must be >= 1")
    out = Path(out_dir)
    if not is_complete(out, settings.key()):
        inv = inventory()
        lexicon = english_lexicon(settings.lexicon)
        with staged(out) as build_dir:
            _build(build_dir, settings, inv, lexicon, workers, progress)
    return out


def negative_clips(root: Path, part: str = "train") -> NegativeClips:
    """The clips of a finished negatives dir's `part` (train: the ones to train on)."""
    root = Path(root)
    if part not in PARTS:
        raise DataError(f"unknown negatives part {part!r}; expected one of {', '.join(PARTS)}")
    marker = read_marker(root)
    if marker is None or marker.get("kind") != KIND:
        raise DataError(f"{root}: not a finished negatives dir (no {KIND} marker)")
    with (root / MANIFEST).open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["part"] == part]
    return NegativeClips(
        root, *(tuple(r[c] for r in rows) for c in ("path", "word", "speaker", "kind", "variant"))
    )


def render_negative(binary: str, voice: Voice, text: str, settings: NegativeSettings) -> np.ndarray:
    """One clip: `text` by `voice` at a random level and offset over a noise floor; int16 (16000,).

    The level is that of the loudest 10 ms of speech, the floor is drawn below it; peaks stay
    under full scale."""
    rng = clip_rng(settings.seed, voice, text)
    speech = faded_speech(binary, voice, text)  # (S,)
    frames = speech[: speech.shape[0] // FRAME * FRAME].reshape(-1, FRAME)  # (F, FRAME)
    loudest = max(float(np.sqrt((frames**2).mean(axis=1)).max()) if frames.size else 0.0, 1e-9)
    gain = 10 ** (rng.uniform(*settings.level_db) / 20) / loudest
    gain *= min(1.0, 0.99 / (gain * max(np.abs(speech).max(), 1e-9)))
    clip = place(gain * speech, rng)  # (16000,)
    floor = gain * loudest * 10 ** (-rng.uniform(*settings.floor_db) / 20)
    clip += floor / noise.NOISE_RMS * noise.floor_noise(rng, CLIP_SAMPLES)
    return to_pcm16(np.clip(clip, -1.0, 1.0))


def _build(
    root: Path,
    settings: NegativeSettings,
    inv: Inventory,
    lexicon: Lexicon,
    jobs: int,
    progress: bool,
) -> None:
    items = plan_items(settings, lexicon)
    clips = assign_voices(items, voice_pools(settings, inv), settings)
    for item in items:
        (root / item.name).mkdir()
    tasks = [partial(_write_clip, root, inv.binary, item, v, settings) for item, v in clips]
    run_tasks(tasks, jobs, "synthesizing negatives", progress)
    rows = sorted(
        (
            _clip_path(item, v),
            item.name,
            item.kind,
            item.part,
            v.speaker_id,
            v.variant,
            item.command,
            str(item.distance),
        )
        for item, v in clips
    )
    with (root / MANIFEST).open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows([COLUMNS, *rows])
    heldout = [row[0] for row in rows if row[3] == "heldout"]
    (root / SPLIT_LISTS["testing"]).write_text("".join(f"{p}\n" for p in heldout))
    (root / SPLIT_LISTS["validation"]).write_text("")
    counts = {
        part: {kind: sum(r[3] == part and r[2] == kind for r in rows) for kind in KINDS}
        for part in PARTS
    }
    folders = {
        part: {kind: sum(i.part == part and i.kind == kind for i in items) for kind in KINDS}
        for part in PARTS
    }
    marker = {
        **settings.key(),
        "clips": counts,
        "folders": folders,
        "homophones_left_out": [list(h) for h in lexicon.homophones],
        "espeak_ng": inv.version,
        **source_versions(),
    }
    write_marker(root, marker)


def _write_clip(
    root: Path, binary: str, item: Item, voice: Voice, settings: NegativeSettings
) -> None:
    write_wav(root / _clip_path(item, voice), render_negative(binary, voice, item.text, settings))


def _clip_path(item: Item, voice: Voice) -> str:
    return f"{item.name}/{voice.speaker_id}_nohash_0.wav"
