"""Train a tiny behaviour-cloning policy (camera + state -> action) with JAX and optax on a Grain
pipeline of prf batches.

    python examples/jax_train.py --steps 40            # pusht_sim_v30 from ../shared/data

The pipeline: ``prf.jax.map_dataset`` (prf's order for this JAX process, batched decode) ->
``.repeat()`` (each epoch in its own order) -> ``.to_iter_dataset()`` (reader threads) ->
``.map(prf.jax.to_jax)``. Prints one loss per step; ``--json`` prints ``{"losses": [...]}`` last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax

import prf
import prf.jax

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot" / "pusht_sim_v30"


def init_params(key: jax.Array, state_dim: int, action_dim: int) -> dict:
    k1, k2, k3 = jax.random.split(key, 3)
    feat = 8 * 8 * 3 + state_dim  # image pooled to 8x8x3, plus the state
    return {
        "w1": jax.random.normal(k1, (feat, 128)) * (1 / np.sqrt(feat)), "b1": jnp.zeros(128),
        "w2": jax.random.normal(k2, (128, 128)) * (1 / np.sqrt(128)), "b2": jnp.zeros(128),
        "w3": jax.random.normal(k3, (128, action_dim)) * (1 / np.sqrt(128)), "b3": jnp.zeros(action_dim),
    }


def policy(params: dict, image: jax.Array, state: jax.Array) -> jax.Array:
    """``image uint8 [B, H, W, 3]``, normalised ``state float32 [B, S]`` -> normalised action ``[B, A]``."""
    b, h, w, c = image.shape
    x = image.astype(jnp.float32) / 255.0
    x = x.reshape(b, 8, h // 8, 8, w // 8, c).mean(axis=(2, 4)).reshape(b, -1)  # average-pool to 8x8
    x = jnp.concatenate([x, state], axis=1)
    x = jax.nn.relu(x @ params["w1"] + params["b1"])
    x = jax.nn.relu(x @ params["w2"] + params["b2"])
    return x @ params["w3"] + params["b3"]


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(DEFAULT))
    p.add_argument("--camera", default="observation.image")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    ds = prf.open_dataset(args.dataset, cameras=[args.camera])
    state, action = ds.column("observation.state"), ds.column("action")
    s_mean, s_std = jnp.asarray(state.mean(0)), jnp.asarray(state.std(0) + 1e-6)
    a_mean, a_std = jnp.asarray(action.mean(0)), jnp.asarray(action.std(0) + 1e-6)

    params = init_params(jax.random.key(0), state.shape[1], action.shape[1])
    tx = optax.adam(args.lr)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, batch):
        def loss_fn(p):
            pred = policy(p, batch[args.camera], (batch["observation.state"] - s_mean) / s_std)
            return jnp.mean((pred - (batch["action"] - a_mean) / a_std) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    keys = [args.camera, "observation.state", "action"]
    pipeline = (
        prf.jax.map_dataset(ds, args.batch_size, shuffle=True, seed=0, drop_last=True)
        .repeat()
        .to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
        .map(lambda b: prf.jax.to_jax({k: b[k] for k in keys}))
    )
    losses: list[float] = []
    for batch in pipeline:
        params, opt_state, loss = train_step(params, opt_state, batch)
        losses.append(float(loss))
        if not args.json:
            print(f"step {len(losses):4d}  loss {losses[-1]:.4f}")
        if len(losses) >= args.steps:
            break
    if args.json:
        print(json.dumps({"losses": losses}))
    return losses


if __name__ == "__main__":
    main()
