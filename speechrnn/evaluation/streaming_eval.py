"""Streaming evaluation: a long recording through the predictor's detector, scored and plotted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechrnn.audio import CLIP_SAMPLES, SAMPLE_RATE, read_audio
from speechrnn.data.corpus import open_corpus
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import SplitData
from speechrnn.evaluation.longform import (
    LongformConfig,
    Recording,
    build_recording,
    read_labels,
    write_labels,
)
from speechrnn.evaluation.negative_bench import load_bench, scan_false_alarms
from speechrnn.evaluation.report import Section
from speechrnn.evaluation.scans import StepScan
from speechrnn.evaluation.settings import SpottingConfig
from speechrnn.evaluation.shipped_point import score_point, shipped_section
from speechrnn.evaluation.spotter import Spotter
from speechrnn.evaluation.spotting import (
    DEFAULT_THRESHOLDS,
    TARGET_FA_PER_HOUR,
    operating_point,
    sweep_scan,
)
from speechrnn.inference.streaming import StreamConfig
from speechrnn.labels import SILENCE, UNKNOWN, is_keyword

MAX_USER_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class StreamingSettings:
    """Everything a streaming evaluation needs besides the model and the split."""

    longform: LongformConfig = field(default_factory=LongformConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    spotting: SpottingConfig = field(default_factory=SpottingConfig)

    def recording(
        self, clips: SplitData, data: DataConfig, labels: list[str], progress: bool
    ) -> Recording:
        """The user's recording when one is set, else one built from the split's clips."""
        if self.spotting.audio is not None and self.spotting.labels is not None:
            return user_recording(self.spotting.audio, self.spotting.labels, labels)
        noise = noise_recordings(open_corpus(data, progress).noise())
        return split_recording(clips, noise, self.longform)


def split_recording(clips: SplitData, noise: list[np.ndarray], config: LongformConfig) -> Recording:
    """A long recording of the split's command and `_unknown_` clips over the corpus's noise."""
    commands, unknown = [], []
    for wave, target, path in zip(clips.waves, clips.targets, clips.paths, strict=True):
        label = clips.labels[int(target)]
        if label == SILENCE:
            continue
        item = (label, np.asarray(wave, np.float32) / 32768.0, path)  # (T,)
        (unknown if label == UNKNOWN else commands).append(item)
    return build_recording(commands, unknown, noise, config)


def noise_recordings(bank: Any) -> list[np.ndarray]:
    """The recordings of a NoiseBank as float32 arrays."""
    return [
        bank.flat[int(s) : int(s) + int(n) + CLIP_SAMPLES - 1].numpy()
        for s, n in zip(bank.starts, bank.spans, strict=True)
    ]


def user_recording(audio: str, labels_path: str, model_labels: list[str]) -> Recording:
    """A user's long recording and its labels file, checked against the model's labels."""
    wave = read_audio(Path(audio), max_seconds=MAX_USER_SECONDS)  # (T,)
    seconds = wave.shape[0] / SAMPLE_RATE
    return Recording(wave, read_labels(labels_path, model_labels, seconds))


def evaluate_streaming(
    spotter: Spotter,
    recording: Recording,
    spotting: SpottingConfig,
    out: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Score `recording` with the model's detector at every threshold (and at the operating
    point the model carries, if any); write labels.tsv and det.png."""
    scan = spotter.scan(recording.wave, progress)
    grid = spotting.thresholds or DEFAULT_THRESHOLDS
    result = sweep_scan(scan, recording.events, spotting.tolerance, grid, spotter.stream.threshold)
    result["recording"] = {
        "source": spotting.audio or "built from the split",
        "seconds": round(recording.seconds, 3),
        "commands": sum(is_keyword(e.label) for e in recording.events),
        "unknown_words": sum(e.label == UNKNOWN for e in recording.events),
    }
    if spotter.shipped and isinstance(scan, StepScan):
        result["shipped"] = score_point(scan, recording.events, spotting.tolerance)
    write_labels(recording.events, out / "streaming_labels.tsv")
    plot_det(result, out / "det.png")
    if spotting.negatives is not None:
        bench = load_bench(Path(spotting.negatives))
        bench_scan = spotter.scan(bench.wave, progress)
        negative = scan_false_alarms(
            bench_scan, bench.events, result["thresholds"], spotter.stream.threshold
        )
        negative["source"] = spotting.negatives
        if "shipped" in result and isinstance(bench_scan, StepScan):
            negative["shipped"] = score_point(bench_scan, bench.events, 0.0)
        result["negative_speech"] = negative
        plot_false_alarms(result, out / "negative_speech.png")
    return result


def plot_false_alarms(result: dict[str, Any], path: Path) -> None:
    """False alarms per hour against the threshold: the command recording's and negative
    speech's (every detection there is one), beside the DET curve."""
    import matplotlib.pyplot as plt

    from speechrnn.evaluation.report import save_figure

    negative = result["negative_speech"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, values, hours in (
        ("commands, other words and noise", result["overall"]["fa_per_hour_raw"], result["hours"]),
        ("negative speech (no command)", negative["overall"]["fa_per_hour_raw"], negative["hours"]),
    ):
        ax.plot(result["thresholds"], np.maximum(values, 0.5 / hours), "-o", ms=3, label=name)
    ax.axhline(TARGET_FA_PER_HOUR, color="grey", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("detection threshold")
    ax.set_ylabel("false alarms per hour")
    ax.set_title("False alarms per hour by threshold (zero drawn at half of one)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_det(result: dict[str, Any], path: Path) -> None:
    """Miss rate against false alarms per hour, one line per keyword and a bold overall one."""
    import matplotlib.pyplot as plt

    from speechrnn.evaluation.report import save_figure

    fig, ax = plt.subplots(figsize=(6.5, 5))
    floor = 0.5 / result["hours"]  # zero false alarms drawn at half of one
    for name, curve in result["keywords"].items():
        ax.plot(
            np.maximum(curve["fa_per_hour"], floor), curve["frr"], lw=0.8, alpha=0.6, label=name
        )
    overall = result["overall"]
    ax.plot(
        np.maximum(overall["fa_per_hour"], floor),
        overall["frr"],
        "k-o",
        lw=2,
        ms=3,
        label="overall",
    )
    ax.axvline(TARGET_FA_PER_HOUR, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("false rejection rate (miss rate)")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"DET curve over {result['hours']:.2f} h (thresholds {result['thresholds'][0]:g}"
        f"-{result['thresholds'][-1]:g})"
    )
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    save_figure(fig, path)


def sections(result: dict[str, Any]) -> list[Section]:
    """The report's streaming part: headline, per-keyword table, the DET curve; the false alarms
    on negative speech by threshold when there are some."""
    grid, default = result["thresholds"], result["default_threshold"]
    rec = result["recording"]

    def row(name: str, curve: dict[str, Any]) -> tuple[object, ...]:
        frr, fa = operating_point(curve, grid, default)
        target = curve["threshold_at_target"]
        delay = curve["delay"]
        return (
            name,
            curve["events"],
            f"{frr:.3f}",
            f"{fa:.2f}",
            "-" if target is None else f"{target:g}",
            "-" if target is None else f"{curve['frr_at_target']:.3f}",
            "-" if delay["median"] is None else f"{delay['median']:.2f} / {delay['p90']:.2f}",
        )

    parts = [
        Section(
            "Streaming: misses and false alarms",
            [
                f"{rec['seconds'] / 3600:.2f} h of audio ({rec['source']}): {rec['commands']} "
                f"commands, {rec['unknown_words']} other words. {_detector_text(result)}; a "
                f"detection hits a command when it lies within {result['tolerance']} s of it.",
                f"At the default threshold {default:g}; the 1 FA/h threshold is the lowest "
                f"swept one at which this and every higher threshold give at most "
                f"{TARGET_FA_PER_HOUR:g} false alarm per hour. Delay: seconds from the end of "
                f"the command to the detection (median / 90th percentile).",
            ],
            (
                "keyword",
                "commands",
                f"miss rate @{default:g}",
                f"FA/h @{default:g}",
                "threshold @1 FA/h",
                "miss rate @1 FA/h",
                "delay s",
            ),
            [row("overall", result["overall"])]
            + [row(k, c) for k, c in result["keywords"].items()],
            images=["det.png"],
        )
    ]
    if "shipped" in result:
        parts.append(shipped_section(result))
    if "negative_speech" in result:
        parts.append(_negative_section(result))
    return parts


def _detector_text(result: dict[str, Any]) -> str:
    """Which detector the sweep ran, in words."""
    detector = result["detector"]
    if detector["kind"] == "listener":
        return (
            f"Detector: the causal model's listener, {detector['step_seconds'] * 1000:g} ms "
            f"steps, {detector['average_steps']}-step averaging, {detector['suppress']:g} s "
            f"suppression, one threshold for every keyword"
        )
    return (
        f"Detector as speechrnn-predict: {detector['stride']} s stride, {detector['average']} s "
        f"averaging, {detector['suppress']} s suppression"
    )


def _negative_section(result: dict[str, Any]) -> Section:
    negative = result["negative_speech"]
    target = negative["overall"]["threshold_at_target"]
    rows = [
        (f"{t:g}", f"{a:.2f}", f"{b:.2f}")
        for t, a, b in zip(
            result["thresholds"],
            result["overall"]["fa_per_hour_raw"],
            negative["overall"]["fa_per_hour_raw"],
            strict=True,
        )
    ]
    return Section(
        "Streaming: false alarms on speech with no command",
        [
            f"{negative['hours']:.2f} h of words and phrases that are not commands "
            f"({negative['source']}); every detection there is a false alarm. The lowest threshold "
            f"with at most {TARGET_FA_PER_HOUR:g} an hour: "
            f"{'none swept' if target is None else f'{target:g}'}."
        ],
        ("threshold", "FA/h, command recording", "FA/h, negative speech"),
        rows,
        images=["negative_speech.png"],
    )
