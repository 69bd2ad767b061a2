"""Weight snapshots every `k` steps, with bounded disk: the trajectory for `experiments.analyze`.

`WeightSnapshots(path, every=k)` is a Keras callback that records the flat
trainable weights (in `model.trainable_variables` order, flattened row-major,
as `control_opt.analysis` flattens them) whenever the optimizer's step counter
crosses a multiple of `every`, and writes them to one `.npz` file:

    steps     [T] int64      the optimizer step (gradient evaluations) of each snapshot
    weights   [T, d] float32 the snapshots (d = P, or the projection's dimension)
    every     ()             the current spacing in steps (grows by thinning)
    dim       ()             P, the number of trainable weights
    projection_seed ()       -1 when `weights` are the weights themselves, else the seed
                             of the Gaussian projection (`projection_matrix`)

Bounded disk (and memory): at most `max_snapshots` rows of at most
`projection_dim` floats.

* Thinning: when `max_snapshots` are held, every other one is dropped and the
  spacing doubles, so the kept snapshots stay evenly spaced (what a stochastic
  area or a power spectrum needs: one `dt`) and always cover the whole run.
* Projection: with `projection_dim` set and `P > projection_dim`, each snapshot is
  `R w` with `R` a fixed `[projection_dim, P]` Gaussian matrix scaled by
  `1/sqrt(projection_dim)` (Johnson-Lindenstrauss: distances, hence principal
  components and areas, are kept up to `1 +- O(1/sqrt(d))`). `R` is regenerated
  from its seed (`projection_matrix`), never stored. Default None: full weights
  (the MNIST-1D CNN's 5,210 floats are 20 KB a snapshot).

Anchored optimizers (Entropy-SGD, ...): the snapshot is the anchor `w`, not the
probe the model holds during the inner loop.

Steps: the callback sees the counter at the end of each call into TensorFlow,
i.e. every `steps_per_execution` steps; `every` should be a multiple of it for
evenly spaced snapshots (a warning otherwise).

Writing: at the end of every `write_every_epochs`-th epoch and at the end of
training, atomically (`control_opt._internal.atomic`), only if something new was
recorded. Resuming: an existing file is read at `on_train_begin` and rows past
the optimizer's current step (written after the checkpoint) are dropped, so a
resumed run's snapshots equal those of a straight one.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from absl import logging

from control_opt._internal.atomic import atomic_path
from control_opt.optimizers import find_anchored_optimizer

__all__ = ["WeightSnapshots", "read_snapshots", "projection_matrix", "Snapshots", "SNAPSHOTS_FILE"]

SNAPSHOTS_FILE = "snapshots.npz"


def projection_matrix(dim: int, projection_dim: int, seed: int) -> np.ndarray:
    """The `[projection_dim, dim]` Gaussian projection of `WeightSnapshots`, entries N(0, 1/projection_dim)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((projection_dim, dim)) / np.sqrt(projection_dim)).astype(np.float32)


class Snapshots:
    """A snapshot file's contents: `steps` [T], `weights` [T, d], `every`, `dim`, `projection_seed` (-1: none)."""

    def __init__(self, steps, weights, every, dim, projection_seed=-1):
        self.steps = np.asarray(steps, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.every = int(every)
        self.dim = int(dim)
        self.projection_seed = int(projection_seed)

    @property
    def projected(self) -> bool:
        return self.projection_seed >= 0

    def __len__(self):
        return len(self.steps)


def read_snapshots(path: str) -> Snapshots:
    """Reads a file written by `WeightSnapshots`.

    Raises:
      FileNotFoundError: naming `path`.
      ValueError: the file lacks a field (not a snapshot file).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weight snapshots at {path}")
    with np.load(path) as data:
        missing = {"steps", "weights", "every", "dim"} - set(data.files)
        if missing:
            raise ValueError(f"{path} is not a weight-snapshot file: it lacks {sorted(missing)}")
        seed = int(data["projection_seed"]) if "projection_seed" in data.files else -1
        return Snapshots(data["steps"], data["weights"], data["every"], data["dim"], seed)


class WeightSnapshots(keras.callbacks.Callback):
    """Records the (anchor) weights every `every` optimizer steps into `path` (module docstring).

    Args:
      path: the `.npz` file (e.g. `<workdir>/snapshots.npz`).
      every: initial spacing in optimizer steps (doubles at each thinning).
      max_snapshots: the cap on the number of rows kept (>= 4, even).
      projection_dim: None for the full weights, else the dimension of the
        random projection (used only when the model has more weights).
      projection_seed: the projection's seed.
      write_every_epochs: write the file every this many epochs (and at the end).
      writes: False: record (and read an existing file) but never write it (a multi-worker run's
        other workers: reading replica-local weights is a collective every worker joins).
    """

    def __init__(self, path: str, every: int, *, max_snapshots: int = 1000, projection_dim: int | None = None,
                 projection_seed: int = 0, write_every_epochs: int = 10, writes: bool = True):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"`every` must be a positive integer, got {every}")
        if int(max_snapshots) < 4 or int(max_snapshots) % 2:
            raise ValueError(f"`max_snapshots` must be an even integer >= 4, got {max_snapshots}")
        if projection_dim is not None and int(projection_dim) < 2:
            raise ValueError(f"`projection_dim` must be None or >= 2, got {projection_dim}")
        self.path = path
        self.every = int(every)
        self.max_snapshots = int(max_snapshots)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.projection_seed = int(projection_seed)
        self.write_every_epochs = max(1, int(write_every_epochs))
        self.writes = bool(writes)
        self.steps, self.rows = [], []
        self._projection = None
        self._dirty = False
        self._warned = False

    # ------------------------------------------------------------------ reading the weights

    def _flat_weights(self) -> np.ndarray:
        variables = self.model.trainable_variables
        values = [v.numpy() for v in variables]
        anchored = find_anchored_optimizer(self.model)
        if anchored is not None and getattr(anchored, "_anchors", None) is not None \
                and not bool(np.asarray(anchored._anchor_in_model.numpy())):  # pylint: disable=protected-access
            # The model holds the probe; the anchor is in the optimizer's slots.
            values = [anchored._anchors[anchored._get_variable_index(v)].numpy()  # pylint: disable=protected-access
                      for v in variables]
        flat = np.concatenate([np.asarray(v, dtype=np.float32).reshape(-1) for v in values])
        if self._projection is not None:
            flat = self._projection @ flat
        return flat

    # ------------------------------------------------------------------ callback

    def on_train_begin(self, logs=None):
        dim = sum(int(np.prod(v.shape)) for v in self.model.trainable_variables)
        self._dim = dim
        if self.projection_dim is not None and dim > self.projection_dim:
            self._projection = projection_matrix(dim, self.projection_dim, self.projection_seed)
        step = int(self.model.optimizer.iterations.numpy())
        self.steps, self.rows = [], []
        if os.path.exists(self.path):
            stored = read_snapshots(self.path)
            expected_seed = self.projection_seed if self._projection is not None else -1
            if stored.dim != dim or stored.projection_seed != expected_seed:
                raise ValueError(f"{self.path} holds snapshots of another model or projection "
                                 f"(dim {stored.dim}, projection seed {stored.projection_seed}); "
                                 f"expected dim {dim}, projection seed {expected_seed}")
            keep = stored.steps <= step
            self.steps = list(stored.steps[keep])
            self.rows = list(stored.weights[keep])
            self.every = max(self.every, stored.every)
        if not self.steps or self.steps[-1] < step and step % self.every == 0:
            self._record(step)  # the starting point (step 0 of a fresh run)
        self._last_bucket = step // self.every

    def _record(self, step):
        self.steps.append(step)
        self.rows.append(self._flat_weights())
        self._dirty = True
        if len(self.steps) > self.max_snapshots:
            self._thin()

    def _thin(self):
        """Doubles the spacing: keeps the snapshots at multiples of 2 * every (evenly spaced again)."""
        self.every *= 2
        kept = [(s, r) for s, r in zip(self.steps, self.rows) if s % self.every == 0]
        self.steps, self.rows = [s for s, _ in kept], [r for _, r in kept]
        self._last_bucket = (self.steps[-1] if self.steps else 0) // self.every
        logging.info("weight snapshots: thinned to %d, one every %d steps", len(self.steps), self.every)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        bucket = step // self.every
        if bucket > self._last_bucket:
            if step % self.every and not self._warned:
                logging.warning("weight snapshots: step %d is not a multiple of every=%d (make `every` a multiple "
                                "of steps_per_execution for evenly spaced snapshots)", step, self.every)
                self._warned = True
            self._last_bucket = bucket
            self._record(step)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.write_every_epochs == 0:
            self.write()

    def on_train_end(self, logs=None):
        self.write()

    def write(self):
        """Writes the file atomically if anything was recorded since the last write (and it `writes`)."""
        if not self._dirty or not self.writes:
            return
        weights = np.stack(self.rows).astype(np.float32) if self.rows else np.zeros((0, 0), np.float32)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with atomic_path(self.path, suffix=".npz") as tmp:
            np.savez(tmp, steps=np.asarray(self.steps, dtype=np.int64), weights=weights,
                     every=np.int64(self.every), dim=np.int64(self._dim),
                     projection_seed=np.int64(self.projection_seed if self._projection is not None else -1))
        self._dirty = False

    def snapshots(self) -> Snapshots:
        """What is held now (also before it is written)."""
        weights = np.stack(self.rows) if self.rows else np.zeros((0, 0), np.float32)
        return Snapshots(self.steps, weights, self.every, self._dim,
                         self.projection_seed if self._projection is not None else -1)
