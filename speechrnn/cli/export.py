"""speechrnn-export: the Hydra task that exports a checkpoint to ONNX (and int8)."""

from __future__ import annotations

from typing import Any

from speechrnn.cli.hydra_app import hydra_main


def export_task(cfg: Any) -> Any:
    """Export the checkpoint `cfg` names, print the outcome; with quantize=int8 also int8."""
    from speechrnn.inference.export import ExportConfig, export_int8, export_onnx
    from speechrnn.settings import from_mapping

    settings = from_mapping(ExportConfig, cfg, "export")
    result = export_onnx(
        settings.ckpt_path, settings.out, settings.audio, settings.max_clips, settings.tolerance
    )
    print(
        f"wrote {result.path} ({len(result.labels)} labels; max |p_onnx - p_torch| = "
        f"{result.max_abs_diff:.1e} over {result.clips} clips)"
    )
    if settings.quantize == "int8":
        result = export_int8(result, settings)
    return result


main = hydra_main("export", "speechrnn.cli.export:export_task", "speechrnn-export: export to ONNX.")
