"""Teach a base model a word it was trained without, and measure what it learnt and kept: the
word's recall on its test clips, the other classes' accuracy before and after, and false alarms
on the long streaming recording of the test split.

PYTHONPATH=scripts python -m benchmarks.enroll BASE.ckpt --corpus ../shared/gsc_real_dev \
    --word go [--takes 10] [--out runs/enroll-go] [--duration 3600]

The takes are `--takes` clips of the word from the corpus's training split (one per speaker,
spread over the speakers), endpointed as speechrnn-enroll endpoints a user's takes. Both models
run as checkpoints (torch) on the same clips: the test split with the word as a label (for the
base, its clips are `_unknown_`), and the recording speechrnn-eval streaming=true builds from
it (commands including the word, other words and noise; `--duration` seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from speechrnn.audio import read_audio
from speechrnn.checkpoint import load_checkpoint
from speechrnn.data.corpus import open_corpus
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import SplitData, load_split
from speechrnn.evaluation.evaluate import predict_probabilities
from speechrnn.evaluation.longform import LongformConfig
from speechrnn.evaluation.spotting import match, posteriors_of
from speechrnn.evaluation.streaming_eval import noise_recordings, split_recording
from speechrnn.inference.predict import Predictor, load_model
from speechrnn.inference.streaming import StreamConfig, detect
from speechrnn.inference.takes import TakeError, TakeLimits, find_takes
from speechrnn.labels import LIST_FILES, SILENCE, UNKNOWN
from speechrnn.training.anchors import corpus_anchors
from speechrnn.training.enroll import EnrollSettings, anchors_beside, enroll

TOLERANCE = 0.5  # seconds, as speechrnn-eval scores detections


def training_takes(corpus: Path, word: str, count: int) -> list[Path]:
    """`count` clips of `word` from the training split, one per speaker, spread over the
    speakers; a clip speechrnn-enroll would refuse (clipped, cut short) gives way to the next."""
    held = set()
    for name in LIST_FILES.values():
        held |= set((corpus / name).read_text().split())
    clips = [p for p in sorted((corpus / word).glob("*.wav")) if f"{word}/{p.name}" not in held]
    speakers = list({p.name.split("_nohash_")[0]: p for p in reversed(clips)}.values())[::-1]
    usable = [p for p in speakers if _usable(p)]
    if len(usable) < count:
        raise SystemExit(f"{corpus / word}: {len(usable)} usable training speakers, {count} asked")
    return [usable[i] for i in np.linspace(0, len(usable) - 1, count).round().astype(int)]


def _usable(path: Path) -> bool:
    try:
        find_takes([(path.name, read_audio(path))], TakeLimits(min_takes=1), one_each=True)
    except TakeError:
        return False
    return True


def released_like(base: Path, corpus: Path, out: Path) -> Path:
    """`base` as a release ships it: a standalone checkpoint with the anchors of its training
    split beside it (the word's own clips among them, as `_unknown_`, are left out by enroll)."""
    model = load_checkpoint(base)
    out.mkdir(parents=True, exist_ok=True)
    saved = model.save(out / "base.pt")
    corpus_anchors(model, str(corpus)).save(anchors_beside(saved))
    return saved


def accuracies(clips: SplitData, probs: np.ndarray, labels: list[str], word: str) -> dict:
    """Accuracy on every clip but the word's, and per class, with `labels` the model's own."""
    truth = [clips.labels[t] for t in clips.targets]
    said = [labels[i] for i in probs.argmax(axis=1)]
    others = [i for i, t in enumerate(truth) if t != word]
    per = {
        label: float(np.mean([said[i] == label for i in others if truth[i] == label]))
        for label in clips.labels
        if label != word and any(truth[i] == label for i in others)
    }
    correct = sum(said[i] == truth[i] for i in others)
    return {"accuracy": correct / len(others), "clips": len(others), "per_class": per}


def streaming(model: Predictor, wave: np.ndarray, events: list[Any], word: str) -> dict:
    """Hits of the word, and false alarms per hour of every label, at the default detector."""
    config = StreamConfig()
    found = detect(wave, posteriors_of(wave, model.probabilities, config), model.labels, config)
    result = match(events, found, TOLERANCE)
    hours = wave.shape[0] / 16000 / 3600
    false = [found[d].label for d in result.false_alarms]
    ours = [e for e in range(len(events)) if events[e].label == word]
    keywords = [e for e, ev in enumerate(events) if ev.label not in (word, SILENCE, UNKNOWN)]
    hit = {e for e, _ in result.hits}
    return {
        "word_events": len(ours),
        "word_hits": sum(e in hit for e in ours),
        "word_false_alarms_per_hour": false.count(word) / hours,
        "other_false_alarms_per_hour": (len(false) - false.count(word)) / hours,
        "other_misses": sum(e not in hit for e in keywords) / max(1, len(keywords)),
        "hours": hours,
    }


def bench_enroll(
    trained: Path,
    corpus: Path,
    word: str,
    out: Path,
    takes: int = 10,
    duration: float = 3600.0,
    settings: EnrollSettings | None = None,
) -> dict[str, Any]:
    """Enroll `word` into the checkpoint `trained` from `takes` training clips; measure both."""
    settings = settings or EnrollSettings()
    paths = training_takes(corpus, word, takes)
    found = find_takes([(p.name, read_audio(p)) for p in paths])
    base = released_like(trained, corpus, out / "base")
    taught = enroll(base, word, found, out / "model", settings, log=print)
    before, after = load_model(base), load_model(taught.checkpoint)
    words = tuple(w for w in taught.labels if w not in (SILENCE, UNKNOWN))
    data = DataConfig(root=str(corpus), words=words)
    clips = load_split(data, "test", taught.labels)
    probs = {
        name: predict_probabilities(m.backend, clips.waves, 256, progress=False)
        for name, m in (("before", before), ("after", after))
    }
    mine = clips.targets == taught.labels.index(word)
    scores_after = probs["after"][mine]
    noise = noise_recordings(open_corpus(data, progress=False).noise())
    recording = split_recording(clips, noise, LongformConfig(duration=duration))
    report = {
        "word": word,
        "takes": [str(p) for p in paths],
        "enroll": taught.to_dict(),
        "word_test_clips": int(mine.sum()),
        "word_recall": float((scores_after.argmax(axis=1) == len(taught.labels) - 1).mean()),
        "word_recall_at_threshold": float((scores_after[:, -1] >= settings.threshold).mean()),
        "others_before": accuracies(clips, probs["before"], before.labels, word),
        "others_after": accuracies(clips, probs["after"], after.labels, word),
        "streaming_before": streaming(before, recording.wave, recording.events, word),
        "streaming_after": streaming(after, recording.wave, recording.events, word),
    }
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary(report: dict[str, Any]) -> str:
    """The figures of a report as a few lines."""
    b, a = report["others_before"], report["others_after"]
    sb, sa = report["streaming_before"], report["streaming_after"]
    return "\n".join(
        [
            f"{report['word']}: recall {100 * report['word_recall']:.1f}% of "
            f"{report['word_test_clips']} test clips "
            f"({100 * report['word_recall_at_threshold']:.1f}% at the detector's threshold)",
            f"other classes: {100 * b['accuracy']:.2f}% -> {100 * a['accuracy']:.2f}% "
            f"({b['clips']} clips)",
            f"recording ({sa['hours']:.2f} h): {sa['word_hits']} of {sa['word_events']} "
            f"{report['word']} detected, {sa['word_false_alarms_per_hour']:.1f} false alarms/h "
            f"as {report['word']}; other labels' false alarms/h "
            f"{sb['other_false_alarms_per_hour']:.1f} -> {sa['other_false_alarms_per_hour']:.1f},"
            f" misses {100 * sb['other_misses']:.1f}% -> {100 * sa['other_misses']:.1f}%",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="a checkpoint trained without --word")
    parser.add_argument("--corpus", type=Path, required=True, help="a GSC-layout corpus")
    parser.add_argument("--word", required=True, help="the word to teach (a corpus folder)")
    parser.add_argument("--takes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/enroll-bench"))
    parser.add_argument("--duration", type=float, default=3600.0, help="recording seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = bench_enroll(
        args.base,
        args.corpus,
        args.word,
        args.out,
        args.takes,
        args.duration,
        EnrollSettings(seed=args.seed),
    )
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
