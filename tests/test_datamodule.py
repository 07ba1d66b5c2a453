"""SpeechCommandsDataModule end to end on a tone corpus, with and without a Lightning Trainer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from speechrnn.audio import PCM_SCALE
from speechrnn.augment import AugmentConfig
from speechrnn.data.datamodule import BatchPlan, RowBatch, SpeechCommandsDataModule
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import load_split
from speechrnn.errors import DataError
from speechrnn.labels import SILENCE, UNKNOWN

from support.tones import TOY_OTHERS, TOY_WORDS

NO_AUGMENT = AugmentConfig(time_shift_ms=0.0, noise_prob=0.0, gain_db=0.0, speed=0.0)


@pytest.fixture
def data(toy_corpus: Path, tmp_path: Path) -> DataConfig:
    return DataConfig(
        root=str(toy_corpus), cache_dir=str(tmp_path / "cache"), words=TOY_WORDS, batch_size=16
    )


def _module(data: DataConfig, augment: AugmentConfig = NO_AUGMENT, seed: int = 0):
    module = SpeechCommandsDataModule(data, augment, seed=seed, progress=False)
    module.prepare_data()
    module.setup("fit")
    return module


def _train_batches(module: SpeechCommandsDataModule, augment: bool):
    return [module.gather(batch, augment) for batch in module.train_dataloader()]


def test_twelve_class_batches(data: DataConfig) -> None:
    module = _module(data)
    assert module.labels == [SILENCE, UNKNOWN, *TOY_WORDS]
    assert module.num_train_clips == 60 + 6 + 6
    assert module.num_val_clips == module.num_test_clips == 20 + 2 + 2
    loader = module.train_dataloader()
    assert len(loader) == 5
    batches = _train_batches(module, augment=False)
    waves = torch.cat([w for w, _ in batches])
    targets = torch.cat([t for _, t in batches])
    assert all(w.dtype == torch.float32 and w.shape[1] == 16000 for w, _ in batches)
    assert targets.dtype == torch.int64 and waves.shape == (72, 16000)
    counts = torch.bincount(targets, minlength=12)
    assert counts[0] == 6 and counts[1] == 6 and (counts[2:] == 6).all()
    silence = waves[targets == 0]
    assert (silence.abs().amax(dim=1) > 0).all()
    assert waves.abs().max() <= 1.0


@pytest.mark.parametrize("size", [64, 65, 129, 130, 131, 3])
def test_ddp_shares_split_every_batch_once(size: int) -> None:
    rows = np.arange(size) - 5  # the first five rows stand for silence (-1 and below)

    def plan(shard: tuple[int, int]) -> list[RowBatch]:
        batches = BatchPlan("train", lambda epoch: rows, size, 64, shard=shard)
        return [batches[i] for i in range(len(batches))]

    single = plan((0, 1))
    assert np.array_equal(np.concatenate([b.rows.numpy() for b in single]), np.sort(rows))
    shares = [plan((rank, 3)) for rank in range(3)]
    assert len({len(s) for s in shares}) == 1  # every process steps the same number of times
    for i, whole in enumerate(single[: len(shares[0])]):
        parts = [s[i] for s in shares]
        assert all(p.rows.numel() > 0 and p.silent == int((p.rows < 0).sum()) for p in parts)
        assert sorted(p.index for p in parts) == [3 * i, 3 * i + 1, 3 * i + 2]
        if i + 1 < len(shares[0]):
            assert np.array_equal(np.sort(np.concatenate([p.rows for p in parts])), whole.rows)
    every = np.concatenate([p.rows.numpy() for s in shares for p in s])
    assert np.array_equal(np.sort(every), np.sort(rows))  # no row twice, none lost


def test_35_class_style_task_has_no_specials(data: DataConfig) -> None:
    every = dataclasses.replace(data, words=None, silence_share=0.0, unknown_share=0.0)
    module = _module(every)
    assert module.labels == sorted(TOY_WORDS + TOY_OTHERS)
    assert module.num_train_clips == 78 and module.num_val_clips == 26


def test_eval_loaders_are_deterministic_and_untouched(data: DataConfig) -> None:
    module = _module(data, AugmentConfig(gain_db=6.0))
    first = [module.gather(b, augment=False) for b in module.val_dataloader()]
    second = [module.gather(b, augment=False) for b in module.val_dataloader()]
    for (w1, t1), (w2, t2) in zip(first, second, strict=True):
        assert torch.equal(w1, w2) and torch.equal(t1, t2)
    reference = load_split(data, "validation", module.labels)
    waves = torch.cat([w for w, _ in first])
    assert torch.equal(waves, torch.from_numpy(np.asarray(reference.waves)).float() / PCM_SCALE)
    assert torch.equal(torch.cat([t for _, t in first]), torch.from_numpy(reference.targets))


def test_load_split_maps_words_to_a_checkpoints_labels(data: DataConfig) -> None:
    split = load_split(data, "test", [SILENCE, UNKNOWN, "yes", "no"])
    known = [p for p in split.paths if p.split("/")[0] in ("yes", "no")]
    assert len(known) == 4 and split.waves.dtype == np.int16
    assert (split.targets == 0).sum() == 1 and (split.targets == 1).sum() == 1
    assert split.paths[-1].startswith("_silence_/") and "#" in split.paths[-1]
    assert split.speakers[-1] == ""
    plain = load_split(data, "test", ["yes", "no"])
    assert len(plain) == 4 and set(plain.targets.tolist()) == {0, 1}
    everything = dataclasses.replace(data, words=None)
    every = load_split(everything, "test", sorted(TOY_WORDS + TOY_OTHERS))
    assert isinstance(every.waves, np.memmap) and len(every) == 26
    with pytest.raises(DataError, match=r"words \(nothing, here\) share nothing with the test"):
        load_split(data, "test", ["nothing", "here"])
    with pytest.raises(DataError, match="unknown split"):
        load_split(data, "dev", ["yes", "no"])


def test_unknown_resampled_per_epoch_in_the_loader(data: DataConfig) -> None:
    module = _module(data)
    loader = module.train_dataloader()
    unknown = module.labels.index(UNKNOWN)

    def drawn(epoch: int) -> list[int]:
        loader.sampler.set_epoch(epoch)
        rows = torch.cat([b.rows for b in loader])
        targets = module.train_plan.targets[rows.clamp(min=0).numpy()]
        return sorted(rows[(rows >= 0) & torch.from_numpy(targets == unknown)].tolist())

    assert drawn(0) != drawn(1)
    assert drawn(1) == drawn(1)
    assert module.train_plan.unknown_p is None
    by_word = _module(dataclasses.replace(data, unknown_draw="word")).train_plan
    assert by_word.unknown_p is not None and by_word.unknown_p.sum() == pytest.approx(1.0)


def test_same_seed_same_augmented_batches(data: DataConfig) -> None:
    config = AugmentConfig(gain_db=3.0)
    first = _train_batches(_module(data, config, seed=3), augment=True)
    again = _train_batches(_module(data, config, seed=3), augment=True)
    other = _train_batches(_module(data, config, seed=4), augment=True)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], other[0][0])
    plain = _module(data, config, seed=3)
    raw = [plain.gather(b, augment=False) for b in plain.train_dataloader()]
    assert not torch.equal(raw[0][0], first[0][0])
    assert torch.equal(raw[0][1], first[0][1])


def test_resident_store_matches_memory_map(data: DataConfig) -> None:
    mapped = _train_batches(_module(data), augment=False)
    resident = _train_batches(_module(dataclasses.replace(data, resident=True)), augment=False)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(mapped, resident, strict=True))


def test_a_missing_validation_list_is_one_clear_error(
    toy_corpus: Path, tmp_path: Path, data: DataConfig
) -> None:
    import shutil

    root = tmp_path / "c"
    shutil.copytree(toy_corpus, root)
    (root / "validation_list.txt").unlink()
    module = _module(dataclasses.replace(data, root=str(root)))
    with pytest.raises(DataError, match="validation split has no clips"):
        module.val_dataloader()


class _Recorder(L.LightningModule):
    """Records what each step receives."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(16000, 12)
        self.seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"train": [], "val": []}

    def training_step(self, batch, batch_idx):
        self.seen["train"].append(batch)
        return self.layer(batch[0]).logsumexp(dim=1).mean()

    def validation_step(self, batch, batch_idx):
        self.seen["val"].append(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_gets_augmented_train_and_untouched_val_batches(data: DataConfig) -> None:
    module = SpeechCommandsDataModule(data, AugmentConfig(gain_db=6.0), seed=0, progress=False)
    model = _Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=module)
    waves, targets = model.seen["train"][0]
    assert waves.shape == (16, 16000) and waves.dtype == torch.float32
    assert targets.dtype == torch.int64
    module.trainer = None  # detached, the plan counts its own epochs from 0 again
    first = module.train_dataloader().dataset[0]
    assert isinstance(first, RowBatch) and first.rows.shape == (16,) and first.epoch == 0
    assert torch.equal(module.gather(first, augment=True)[0], waves)
    reference = load_split(data, "validation", module.labels)
    val = torch.cat([w for w, _ in model.seen["val"][-2:]])
    assert torch.equal(val, torch.from_numpy(np.asarray(reference.waves)).float() / PCM_SCALE)
    epoch1 = model.seen["train"][2][0]
    assert not torch.equal(epoch1, waves)


def test_benchmark_functions_run(toy_corpus: Path, tmp_path: Path) -> None:
    from benchmarks.data import bench_baseline, bench_datamodule

    ours = bench_datamodule(toy_corpus, tmp_path / "cache", batch_size=16, seconds=0.2)
    assert ours["clips_per_s"] > 0 and ours["cache_build_s"] >= 0
    assert bench_baseline(toy_corpus, workers=0, batch_size=16, seconds=0.2)["clips_per_s"] > 0


@pytest.mark.gpu
def test_cuda_resident_batches_match_the_cpu_path(data: DataConfig) -> None:
    module = _module(data, AugmentConfig(gain_db=3.0))
    batch = module.train_dataloader().dataset[0]
    on_cpu = module.gather(batch, augment=False)
    before = torch.cuda.memory_allocated()
    on_gpu = module.gather(batch._replace(rows=batch.rows.cuda()), augment=False)
    assert torch.cuda.memory_allocated() - before >= 78 * 16000 * 2  # the whole split went over
    k = batch.silent
    assert torch.equal(on_cpu[0][k:], on_gpu[0][k:].cpu())
    assert torch.equal(on_cpu[1], on_gpu[1].cpu())
    first = module.gather(batch._replace(rows=batch.rows.cuda()), augment=True)
    again = module.gather(batch._replace(rows=batch.rows.cuda()), augment=True)
    assert first[0].device.type == "cuda" and torch.equal(first[0], again[0])
