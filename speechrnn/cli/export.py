"""speechrnn-export: the Hydra task that exports a checkpoint to ONNX (and int8)."""

from __future__ import annotations

from typing import Any

from speechrnn.cli.hydra_app import hydra_main


def export_task(cfg: Any) -> Any:
    """Export the checkpoint `cfg` names, print the outcome; with quantize=int8 also int8. A
    causal checkpoint (the listener) exports its stream step."""
    from speechrnn.inference.backends import OnnxBackend
    from speechrnn.inference.export import ExportConfig, export_int8, export_onnx
    from speechrnn.inference.stream_export import CHUNKS, export_listener, is_causal, stream_clips
    from speechrnn.settings import from_mapping

    settings = from_mapping(ExportConfig, cfg, "export")
    if is_causal(settings.ckpt_path):
        result, point = export_listener(settings.ckpt_path, settings.out, settings.tolerance)
        carried = "its operating point" if point else "no operating point"
        print(
            f"wrote {result.path} (stream step, {carried}; max |p_onnx - p_torch| = "
            f"{result.max_abs_diff:.1e} streamed in {len(CHUNKS)} chunk sizes)"
        )
        opener = stream_clips
    else:
        result = export_onnx(
            settings.ckpt_path, settings.out, settings.audio, settings.max_clips, settings.tolerance
        )
        print(
            f"wrote {result.path} ({len(result.labels)} labels; max |p_onnx - p_torch| = "
            f"{result.max_abs_diff:.1e} over {result.clips} clips)"
        )
        opener = OnnxBackend
    if settings.quantize == "int8":
        result = export_int8(result, settings, opener)
        print("\n".join(int8_lines(result, settings.heldout)))
    return result


def int8_lines(result: Any, heldout: str | None) -> list[str]:
    """What the int8 check found: size, agreement one clip per call, batch independence and,
    with held-out speech, accuracy one clip per call and batched, overall and per label."""
    from speechrnn.inference.quantize import METHOD, size_mb

    scored = result.int8
    float_mb, int8_mb = size_mb(result.path), size_mb(result.int8_path)
    lines = [
        f"wrote {result.int8_path} ({METHOD}): {int8_mb:.2f} MB vs {float_mb:.2f} MB float "
        f"({int8_mb / float_mb:.0%})",
        f"int8 against float over {scored.clips} clips, one clip per call: top-1 agreement "
        f"{scored.agreement:.1%}, max |p_int8 - p_float| = {scored.max_abs_diff:.1e}; a clip "
        f"alone against in a batch: max |p_alone - p_batch| = {scored.batch_diff:.1e}",
    ]
    if scored.per_file is None or scored.batched is None:
        return lines
    before, after = scored.per_file
    clips = sum(n for _, n in before.per_label.values())
    lines.append(f"accuracy on the test split of {heldout} ({clips} clips), float -> int8:")
    for mode, (a, b) in (("one clip per call", scored.per_file), ("batched", scored.batched)):
        points = 100 * (b.overall - a.overall)
        lines.append(f"  {mode}: {a.overall:.4f} -> {b.overall:.4f} ({points:+.2f} points)")
    lines.append("  per label, one clip per call:")
    for label, (hits, n) in before.per_label.items():
        lines.append(
            f"    {label:12s} float {hits:4d}/{n:<4d} int8 {after.per_label[label][0]:4d}/{n}"
        )
    return lines


main = hydra_main("export", "speechrnn.cli.export:export_task", "speechrnn-export: export to ONNX.")
