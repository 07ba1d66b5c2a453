"""The Python steps of scripts/release.sh: standalone weights, anchors, the manifest of the
released model (sha256s, figures from its evaluation report) and the model card's figures.

python scripts/release.py weights RUN_CKPT OUT.pt
python scripts/release.py anchors OUT.pt CORPUS [--splits train,validation]
python scripts/release.py manifest DEST NAME --metrics report/metrics.json --recipe TEXT ...
python scripts/release.py card DEST/release.json docs/model-card.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from speechrnn.data.files import sha256_file
from speechrnn.inference.released import MANIFEST, RELEASE_FORMAT
from speechrnn.version import __version__

BEGIN, END = "<!-- release figures: begin -->", "<!-- release figures: end -->"


def weights(run_checkpoint: Path, out: Path) -> Path:
    """A run's checkpoint as a standalone one (weights, settings, labels; no optimizer)."""
    from speechrnn.checkpoint import load_checkpoint

    return load_checkpoint(run_checkpoint).save(out)


def anchors(checkpoint: Path, corpus: str, splits: list[str]) -> Path:
    """The anchors of `checkpoint` from the clips it was trained on, beside it."""
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.training.anchors import corpus_anchors
    from speechrnn.training.enroll import anchors_beside

    model = load_checkpoint(checkpoint)
    return corpus_anchors(model, corpus, splits).save(anchors_beside(checkpoint))


def check_thresholds(checkpoint: Path) -> str:
    """What the release says of per-keyword thresholds: a per-clip model has none (the
    detector's shared threshold applies); a causal listener must be calibrated first."""
    from speechrnn.checkpoint import load_checkpoint

    if load_checkpoint(checkpoint).config.causal:
        raise SystemExit(
            f"{checkpoint}: a causal listener: calibrate its thresholds into its metadata "
            "(speechrnn.evaluation.calibration) before releasing it"
        )
    return "none: a per-clip model, detected at the shared --detect-threshold"


def figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures a release keeps from its speechrnn-eval metrics.json."""
    out: dict[str, Any] = {
        "test": {
            "corpus": Path(metrics["corpus"]).name,  # no machine's path in the package
            "split": metrics["split"],
            "clips": metrics["clips"],
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro"]["f1"],
            "per_class": metrics["per_class"],
        }
    }
    stream = metrics.get("streaming")
    if stream:
        at = stream["thresholds"].index(stream["default_threshold"])
        overall = stream["overall"]
        out["streaming"] = {
            "hours": stream["hours"],
            "commands": stream["recording"]["commands"],
            "threshold": stream["default_threshold"],
            "miss_rate": overall["frr_raw"][at],
            "false_alarms_per_hour": overall["fa_per_hour_raw"][at],
            "threshold_at_1_fa_per_hour": overall["threshold_at_target"],
            "miss_rate_at_1_fa_per_hour": overall["frr_at_target"],
        }
        negative = stream.get("negative_speech")
        if negative:
            out["negative_speech"] = {
                "hours": negative["hours"],
                "threshold": stream["default_threshold"],
                "false_alarms_per_hour": negative["overall"]["fa_per_hour_raw"][at],
                "threshold_at_1_fa_per_hour": negative["overall"]["threshold_at_target"],
            }
    return out


def manifest(
    dest: Path, name: str, metrics: Path, recipe: str, thresholds: str, commands: list[str]
) -> Path:
    """Write DEST/release.json for the files `name`.int8.onnx, `name`.pt and
    `name`.anchors.npz in DEST, with the figures of the evaluation report `metrics`."""
    import onnx

    from speechrnn.metadata import from_onnx_properties

    onnx_path = dest / f"{name}.int8.onnx"
    props = {
        p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props
    }
    files = {
        "onnx": onnx_path,
        "weights": dest / f"{name}.pt",
        "anchors": dest / f"{name}.anchors.npz",
    }
    data = {
        "format": RELEASE_FORMAT,
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "speechrnn_version": __version__,
        "labels": from_onnx_properties(props)["labels"],
        "files": {
            role: {
                "path": path.name,
                "sha256": sha256_file(path, progress=False),
                "bytes": path.stat().st_size,
            }
            for role, path in files.items()
            if path.is_file()
        },
        "recipe": recipe,
        "commands": commands,
        "thresholds": thresholds,
        "figures": figures(json.loads(metrics.read_text())),
    }
    path = dest / MANIFEST
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def card(release: Path, page: Path) -> Path:
    """Rewrite the figures section of the model card from the release manifest."""
    data = json.loads(release.read_text())
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page}: no {BEGIN} ... {END} section to fill")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    page.write_text(f"{head}{BEGIN}\n{card_figures(data)}{END}{tail}")
    return page


def card_figures(data: dict[str, Any]) -> str:
    """The model card's figures, as Markdown, from a release manifest."""
    test = data["figures"]["test"]
    onnx = data["files"]["onnx"]
    lines = [
        f"Release `{data['name']}`, built {data['created']} by speechrnn "
        f"{data['speechrnn_version']} (`scripts/release.sh`, recipe: `{data['recipe']}`).",
        "",
        f"- `{onnx['path']}`: {onnx['bytes']:,} bytes, sha256 `{onnx['sha256']}`",
        f"- test split of `{test['corpus']}`: **{100 * test['accuracy']:.1f} %** of "
        f"{test['clips']} clips, macro F1 {test['macro_f1']:.3f}",
        f"- per-keyword thresholds: {data['thresholds']}",
    ]
    stream = data["figures"].get("streaming")
    if stream:
        at_one = stream["threshold_at_1_fa_per_hour"]
        lines.append(
            f"- streaming ({stream['hours']:.2f} h built from the test split, "
            f"{stream['commands']} commands): at the default threshold {stream['threshold']:g}, "
            f"{100 * stream['miss_rate']:.1f} % missed at {stream['false_alarms_per_hour']:.1f} "
            "false alarms an hour; "
            + (
                f"{100 * stream['miss_rate_at_1_fa_per_hour']:.1f} % missed at 1 false alarm an "
                f"hour (threshold {at_one:g})"
                if at_one is not None
                else "no threshold reaches 1 false alarm an hour"
            )
        )
    negative = data["figures"].get("negative_speech")
    if negative:
        lines.append(
            f"- negative speech ({negative['hours']:.2f} h of words that are not commands, "
            f"voices and words the training never used): "
            f"{negative['false_alarms_per_hour']:.1f} false alarms an hour at "
            f"{negative['threshold']:g}; at most 1 an hour from threshold "
            f"{negative['threshold_at_1_fa_per_hour']}"
        )
    lines += ["", "| label | precision | recall | F1 | clips |", "|---|---:|---:|---:|---:|"]
    for label, s in test["per_class"].items():
        scores = " | ".join(f"{s[k]:.3f}" for k in ("precision", "recall", "f1"))
        lines.append(f"| `{label}` | {scores} | {s['support']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("weights")
    step.add_argument("run_checkpoint", type=Path)
    step.add_argument("out", type=Path)
    step = steps.add_parser("anchors")
    step.add_argument("checkpoint", type=Path)
    step.add_argument("corpus")
    step.add_argument("--splits", default="train,validation")
    step = steps.add_parser("thresholds")
    step.add_argument("checkpoint", type=Path)
    step = steps.add_parser("manifest")
    step.add_argument("dest", type=Path)
    step.add_argument("name")
    step.add_argument("--metrics", type=Path, required=True)
    step.add_argument("--recipe", required=True)
    step.add_argument("--thresholds", required=True)
    step.add_argument("--command", action="append", default=[])
    step = steps.add_parser("card")
    step.add_argument("release", type=Path)
    step.add_argument("page", type=Path)
    args = parser.parse_args(argv)
    if args.step == "weights":
        print(weights(args.run_checkpoint, args.out))
    elif args.step == "anchors":
        print(anchors(args.checkpoint, args.corpus, args.splits.split(",")))
    elif args.step == "thresholds":
        print(check_thresholds(args.checkpoint))
    elif args.step == "manifest":
        path = manifest(
            args.dest, args.name, args.metrics, args.recipe, args.thresholds, args.command
        )
        print(path)
    else:
        print(card(args.release, args.page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
