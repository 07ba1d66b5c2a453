"""speechrnn-download: the Hydra task that fetches, verifies, extracts, indexes and caches data."""

from __future__ import annotations

from typing import Any

from speechrnn.cli.hydra_app import hydra_main


def download_task(cfg: Any) -> None:
    """Prepare the corpus `cfg.data` names (download it when missing) and print its summary."""
    from speechrnn.data.corpus import prepare
    from speechrnn.data.settings import DataConfig
    from speechrnn.data.summary import print_summary
    from speechrnn.settings import from_mapping

    data = from_mapping(DataConfig, cfg.data, "data")
    print_summary(prepare(data, progress=True), data)


main = hydra_main(
    "download",
    "speechrnn.cli.download:download_task",
    "speechrnn-download: fetch, verify, extract, index and cache a corpus.",
)
