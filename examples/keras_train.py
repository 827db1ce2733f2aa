"""Train a tiny behaviour-cloning policy (camera + state -> action) with Keras ``model.fit``, first
from a ``prf.keras.PyDataset`` and then from ``prf.keras.to_tf_dataset`` (tf.data).

    python examples/keras_train.py --steps 40          # pusht_sim_v30 from ../shared/data
    KERAS_BACKEND=jax python examples/keras_train.py --data pydataset

Batches are ``({"image": uint8 [B, H, W, 3], "state": float32 [B, S]}, action float32 [B, A])``.
Prints one loss per epoch of ``--steps-per-epoch`` steps; ``--json`` prints ``{"losses": [...]}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np

import prf
import prf.keras

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot" / "pusht_sim_v30"


def build_model(ds: prf.Dataset, camera: str) -> keras.Model:
    h, w = ds[0][camera].shape[:2]
    state, action = ds.column("observation.state"), ds.column("action")
    image_in = keras.Input((h, w, 3), dtype="uint8", name="image")
    state_in = keras.Input((state.shape[1],), name="state")
    x = keras.layers.Rescaling(1 / 255.0)(image_in)
    x = keras.layers.Conv2D(16, 5, strides=4, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    s = keras.layers.Normalization(mean=state.mean(0), variance=state.var(0) + 1e-6)(state_in)
    x = keras.layers.Concatenate()([x, s])
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dense(action.shape[1])(x)
    # predict the normalised action, return it in the dataset's units
    out = keras.layers.Normalization(mean=action.mean(0), variance=action.var(0) + 1e-6, invert=True)(x)
    return keras.Model({"image": image_in, "state": state_in}, out)


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(DEFAULT))
    p.add_argument("--camera", default="observation.image")
    p.add_argument("--steps", type=int, default=100, help="total training steps")
    p.add_argument("--steps-per-epoch", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--data", choices=["both", "pydataset", "tfdata"], default="both")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    for name in ("steps", "steps_per_epoch", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    keras.utils.set_random_seed(0)
    ds = prf.open_dataset(args.dataset, cameras=[args.camera])
    model = build_model(ds, args.camera)
    inv_std = (1 / np.sqrt(ds.column("action").var(0) + 1e-6)).astype(np.float32)

    def normalised_mse(y, p):  # in normalised action units, so the loss reads like the other examples'
        ops = keras.ops
        return ops.mean(ops.square(ops.multiply(ops.subtract(y, p), inv_std)))

    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss=normalised_mse)
    select = dict(inputs={"image": args.camera, "state": "observation.state"}, targets="action")
    # --steps in all: epochs of --steps-per-epoch steps (fewer when --steps is smaller), split between
    # the two inputs with --data both (the PyDataset gets the odd epoch; an input given 0 epochs is skipped)
    steps_per_epoch = min(args.steps_per_epoch, args.steps)
    epochs = -(-args.steps // steps_per_epoch)
    verbose = 0 if args.json else 2
    losses: list[float] = []
    if args.data in ("both", "pydataset"):
        train = prf.keras.PyDataset(ds, args.batch_size, shuffle=True, seed=0, drop_last=True, workers=2, **select)
        n = epochs if args.data == "pydataset" else (epochs + 1) // 2
        # shuffle=False keeps prf's order; prf already shuffles samples with its seeded sampler
        hist = model.fit(train, epochs=n, steps_per_epoch=steps_per_epoch, shuffle=False, verbose=verbose)
        losses += hist.history["loss"]
    if args.data in ("both", "tfdata"):
        train = prf.keras.to_tf_dataset(ds, args.batch_size, shuffle=True, seed=1, drop_last=True, num_epochs=None,
                                        **select)
        n = epochs if args.data == "tfdata" else epochs // 2
        if n:
            hist = model.fit(train, epochs=n, steps_per_epoch=steps_per_epoch, verbose=verbose)
            losses += hist.history["loss"]
    if args.json:
        print(json.dumps({"losses": [float(x) for x in losses]}))
    return losses


if __name__ == "__main__":
    main()
