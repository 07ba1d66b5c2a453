"""SpeechCommandsDataModule: cached splits served as row-index batches, gathered on the device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, TypeVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from speechrnn.audio import PCM_SCALE
from speechrnn.augment import AugmentConfig, NoiseBank, batch_seed
from speechrnn.augment import augment as augment_waves
from speechrnn.data.corpus import Corpus, open_corpus, open_negatives, prepare
from speechrnn.data.fitset import FitSet, fit_set
from speechrnn.data.index import TaskPlan
from speechrnn.data.settings import DataConfig
from speechrnn.data.splits import SplitData, compose_split, load_split, training_plan
from speechrnn.errors import DataError

EVAL_SEED = 0  # validation/test sets stay the same whatever the training seed
COPY_ROWS = 4096  # rows per chunk when moving a split onto the device

T = TypeVar("T")
# A training batch's clips (N, T) in [-1, 1], targets (N,), labels, noise bank and seeded
# generator -> the batch the module trains on, in place of the augmentation (the detection stage).
Mixer = Callable[[torch.Tensor, torch.Tensor, list[str], NoiseBank, torch.Generator], tuple]


class RowBatch(NamedTuple):
    """What the DataLoaders yield: rows of a split's store; the first `silent` are -1 (silence)."""

    split: str
    rows: torch.Tensor  # (B,) int64
    epoch: int
    index: int
    silent: int = 0


class SplitStore:
    """A split's int16 waves and targets; moved onto a device the first time it is asked for."""

    def __init__(self, waves: np.ndarray, targets: np.ndarray, resident: Callable[[str], bool]):
        self.host = waves  # (N, T) int16, usually a memmap
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, np.int64))  # (N,)
        self.resident = resident
        self._on: dict[torch.device, tuple[torch.Tensor | None, torch.Tensor]] = {}

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) rows on any device -> int16 waves (B, T) and targets (B,) on that device."""
        device = rows.device
        if device not in self._on:
            waves = self._upload(device) if self.resident(device.type) else None
            self._on[device] = (waves, self.targets.to(device))
        waves, targets = self._on[device]
        safe = rows.clamp(min=0)  # (B,)
        if waves is None:
            picked = torch.from_numpy(self.host[safe.cpu().numpy()])  # (B, T) int16
            return picked.to(device, non_blocking=True), targets[safe]
        return waves[safe], targets[safe]

    def _upload(self, device: torch.device) -> torch.Tensor:
        out = torch.empty(self.host.shape, dtype=torch.int16, device=device)  # (N, T)
        for start in range(0, self.host.shape[0], COPY_ROWS):
            chunk = np.array(self.host[start : start + COPY_ROWS])  # (<=COPY_ROWS, T)
            out[start : start + chunk.shape[0]].copy_(torch.from_numpy(chunk))
        return out


class BatchPlan(Dataset[RowBatch]):
    """Batches of one split; item i is batch i of the current epoch's row order."""

    def __init__(
        self,
        split: str,
        rows_for: Callable[[int], np.ndarray],
        size: int,
        batch_size: int,
        current_epoch: Callable[[], int | None] = lambda: None,
        shard: tuple[int, int] = (0, 1),
    ):
        self.split, self.rows_for, self.size, self.batch_size = split, rows_for, size, batch_size
        self.current_epoch = current_epoch  # the Trainer's epoch, when one drives the loop
        self.rank, self.world = shard  # this process's share of every batch: rows[rank::world]
        self.epoch = -1
        self._rows = np.zeros(0, np.int64)

    def __len__(self) -> int:
        """Batches of `batch_size` rows; a last one too small to give each process a row merges."""
        full, rest = divmod(self.size, self.batch_size)
        return full + int(rest >= self.world)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._rows = epoch, self.rows_for(epoch)

    def __getitem__(self, i: int) -> RowBatch:
        # The Trainer's epoch wins over the sampler's count: on a restart Lightning may build the
        # iterator before it calls set_epoch.
        epoch = self.current_epoch()
        self.set_epoch(max(self.epoch, 0) if epoch is None else epoch)
        end = (i + 1) * self.batch_size if i + 1 < len(self) else self.size
        rows = self._rows[i * self.batch_size : end][self.rank :: self.world]
        rows = rows[np.argsort(rows >= 0, kind="stable")]  # silence first
        silent = int(np.count_nonzero(rows < 0))
        index = i * self.world + self.rank  # seeds this share's augmentation
        return RowBatch(self.split, torch.from_numpy(rows), self.epoch, index, silent)


class EpochSampler(Sampler[int]):
    """Batch indices in order; each pass starts the plan's next epoch (or the one set_epoch set).

    `first_batch(epoch)` says where a pass of that epoch starts: 0, or the batches done when a
    run stopped inside it (resumed), so a resumed run draws exactly the batches it had left."""

    def __init__(self, plan: BatchPlan, first_batch: Callable[[int], int] = lambda e: 0) -> None:
        self.plan, self.next_epoch, self.first_batch = plan, 0, first_batch

    def set_epoch(self, epoch: int) -> None:
        self.next_epoch = epoch

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[int]:
        # Read when the first batch is asked for, not when the iterator is made: on a restart
        # Lightning makes it before the Trainer's epoch is restored.
        trainer_epoch = self.plan.current_epoch()
        self.plan.set_epoch(self.next_epoch if trainer_epoch is None else trainer_epoch)
        self.next_epoch = self.plan.epoch + 1
        yield from range(self.first_batch(self.plan.epoch), len(self.plan))


def _unwrap(item: RowBatch) -> RowBatch:
    return item


class SpeechCommandsDataModule(L.LightningDataModule):
    """Batches `(waves float32 (B, 16000), targets int64 (B,))`; augmentation on the device."""

    def __init__(
        self,
        data: DataConfig,
        augment: AugmentConfig,
        seed: int = 0,
        progress: bool = True,
        train_data: DataConfig | None = None,
        mixer: Mixer | None = None,
    ) -> None:
        super().__init__()
        self.data, self.augment_config, self.seed, self.progress = data, augment, seed, progress
        self.train_data = train_data or data  # the training plan's shares, when they differ
        self.mixer = mixer
        self.labels: list[str] = []
        self.corpus: Corpus | None = None
        self.fit: FitSet | None = None
        self.train_plan: TaskPlan | None = None
        self._stores: dict[str, SplitStore] = {}
        self._eval_sets: dict[str, SplitData] = {}
        self._bank: NoiseBank | None = None
        self._banks: dict[torch.device, NoiseBank] = {}
        self._generators: dict[torch.device, torch.Generator] = {}
        self.stopped_at: int | None = None  # batches of this epoch done when a stop was saved
        self._resume: tuple[int, int] | None = None  # (epoch, batch) of a restored stop

    def prepare_data(self) -> None:
        prepare(self.data, self.progress)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        self.corpus = open_corpus(self.data, self.progress)
        self.labels = self.corpus.labels(self.data)
        negatives = open_negatives(self.data, self.corpus, self.progress)
        self.fit = fit_set(self.corpus, self.data.fit_on, negatives)
        self.train_plan = training_plan(
            self.fit.words, self.labels, self.train_data, self.fit.negatives_from
        )
        if not self.train_plan.known.size:
            raise DataError(f"{self.corpus.root}: the train split has no clips of the task's words")
        self._stores["train"] = SplitStore(self.fit.waves, self.train_plan.targets, self._resident)
        self._bank = self.corpus.noise()

    def schedule_epochs(self, max_epochs: int) -> int:
        """Epochs over the fitted clips that take as many steps as `max_epochs` over the train
        split alone: a final fit keeps the schedule chosen on validation."""
        fit = self._require(self.fit)
        if not fit.final:
            return max_epochs
        train = training_plan(fit.words[: fit.train_clips], self.labels, self.train_data)
        train_clips = int(train.known.size) + train.n_unknown + train.n_silence
        return max(1, round(max_epochs * train_clips / self.num_train_clips))

    @property
    def num_train_clips(self) -> int:
        """Clips per training epoch: known words + this epoch's _unknown_ draw + _silence_."""
        plan = self._require(self.train_plan)
        return int(plan.known.size) + plan.n_unknown + plan.n_silence

    @property
    def num_val_clips(self) -> int:
        return len(self.eval_set("validation"))

    @property
    def num_test_clips(self) -> int:
        return len(self.eval_set("test"))

    def eval_set(self, split: str) -> SplitData:
        """The fixed validation or test set (the same one `load_split` builds; data.test_set's)."""
        if split not in self._eval_sets:
            if split == "test" and self.data.test_set is not None:
                data = load_split(self.data, split, self.labels, progress=self.progress)
            else:
                corpus = self._require(self.corpus)
                data = compose_split(corpus, split, self.labels, self.data, EVAL_SEED)
            self._eval_sets[split] = data
            self._stores[split] = SplitStore(data.waves, data.targets, self._resident)
        return self._eval_sets[split]

    def train_dataloader(self) -> DataLoader:
        plan = self._require(self.train_plan)
        batches = BatchPlan(
            "train",
            lambda epoch: plan.train_rows(self.seed, epoch),
            self.num_train_clips,
            self.data.batch_size,
            lambda: None if self.trainer is None else self.trainer.current_epoch,
            self._shard(),
        )
        return self._loader(batches, self._first_batch)

    def state_dict(self) -> dict[str, int]:
        """Saved in a checkpoint: where a run stopped inside an epoch (`stopped_at`) resumes."""
        if self.stopped_at is None or self.trainer is None:
            return {}
        return {"epoch": self.trainer.current_epoch, "batch": self.stopped_at}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batch"])) if state else None

    def _first_batch(self, epoch: int) -> int:
        """Where a training pass of `epoch` starts: past the batches a stopped run had done."""
        return self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        if not isinstance(batch, RowBatch):
            return batch
        training = self.trainer is not None and self.trainer.training
        return self.gather(batch, augment=training and batch.split == "train")

    def gather(self, batch: RowBatch, augment: bool) -> tuple[torch.Tensor, ...]:
        """Row indices -> (waves float32 (B, T) in [-1, 1], targets int64 (B,)) on their device;
        augmented training rows go through the mixer instead, when there is one."""
        store = self._stores[batch.split]
        pcm, targets = store.gather(batch.rows)  # (B, T), (B,)
        waves = pcm.float().mul_(1.0 / PCM_SCALE)  # (B, T)
        if batch.split != "train":
            return waves, targets
        plan = self._require(self.train_plan)
        device = batch.rows.device
        gen = self._generator(device, batch.epoch, batch.index)
        if batch.silent:
            silence, _, _ = self._bank_on(device).silence(batch.silent, gen)  # (S, T)
            waves[: batch.silent] = silence
            targets[: batch.silent] = plan.silence_target
        if augment and self.mixer is not None:
            return self.mixer(waves, targets, self.labels, self._bank_on(device), gen)
        if augment:
            waves = augment_waves(waves, self.augment_config, self._bank_on(device), gen)
        return waves, targets

    def _eval_loader(self, split: str) -> DataLoader:
        size = len(self.eval_set(split))
        return self._loader(
            BatchPlan(
                split,
                lambda epoch: np.arange(size),
                size,
                self.data.batch_size,
                shard=self._shard(),
            )
        )

    def _shard(self) -> tuple[int, int]:
        """(rank, processes): under DDP each process takes its share of every batch."""
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    @staticmethod
    def _loader(plan: BatchPlan, first_batch: Callable[[int], int] = lambda e: 0) -> DataLoader:
        sampler = EpochSampler(plan, first_batch)
        return DataLoader(plan, batch_size=None, sampler=sampler, collate_fn=_unwrap)

    def _resident(self, device_type: str) -> bool:
        return self.data.resident_on(device_type)

    def _bank_on(self, device: torch.device) -> NoiseBank:
        if device not in self._banks:
            self._banks[device] = self._require(self._bank).to(device)
        return self._banks[device]

    def _generator(self, device: torch.device, epoch: int, index: int) -> torch.Generator:
        """The device's generator, reseeded for (seed, epoch, batch index): order-independent."""
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device)
        return self._generators[device].manual_seed(batch_seed(self.seed, epoch, index))

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise RuntimeError("SpeechCommandsDataModule.setup() has not run yet")
        return value
