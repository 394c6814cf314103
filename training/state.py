"""What a training checkpoint holds besides the header, and the EMA that fills it.

- networks: the EMA copies under `<module>.` (what inference loads), the trained copies under
  `train.<module>.`, discriminators and frozen nets under `<module>.`;
- optimiser state: tensors under `optim.<name>.<param>.<field>`, the rest (param groups, step
  counters stored as numbers) in the JSON header, so resuming restores Adam's moments.
Shared by the XFaVoT trainer, the auxiliary-network and vocoder trainers.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core import checkpoint
from core.errors import UserError


def optimizer_state(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """-> (tensors, JSON-able meta) for one optimiser."""
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "scalars": {}}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{name}.{idx}.{key}"] = value
            else:
                meta["scalars"][f"{idx}.{key}"] = value
    return tensors, meta


def load_optimizer_state(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    for key, value in meta["scalars"].items():
        idx, field = key.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def ema_decay(step: int, beta: float) -> float:
    """EMA decay with warm-up: (1 + t) / (10 + t) early on, the configured beta later. A fixed
    0.999 from step 0 keeps the EMA ~82 % at its random start after 200 steps."""
    return min(beta, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.ModuleDict, nets: torch.nn.ModuleDict, names, beta: float) -> None:
    for name in names:
        for p_ema, p in zip(ema[name].parameters(), nets[name].parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(ema[name].buffers(), nets[name].buffers()):
            b_ema.copy_(b)


def pack(nets: torch.nn.ModuleDict, ema: torch.nn.ModuleDict, optims: dict, others) -> tuple[dict, dict]:
    """-> (tensors, optimiser meta) of a training checkpoint; `others` are saved as they are."""
    tensors, optim_meta = {}, {}
    for name in ema:
        tensors.update({f"{name}.{k}": v for k, v in ema[name].state_dict().items()})
        tensors.update({f"train.{name}.{k}": v for k, v in nets[name].state_dict().items()})
    for name in others:
        tensors.update({f"{name}.{k}": v for k, v in nets[name].state_dict().items()})
    for name, opt in optims.items():
        t, optim_meta[name] = optimizer_state(name, opt)
        tensors.update(t)
    return tensors, optim_meta


def unpack(tensors: dict, optim_meta: dict, nets: torch.nn.ModuleDict, ema: torch.nn.ModuleDict, optims: dict,
           others) -> None:
    """The inverse of pack()."""
    for name in ema:
        ema[name].load_state_dict(checkpoint.split_prefix(tensors, name))
        nets[name].load_state_dict(checkpoint.split_prefix(tensors, f"train.{name}"))
    for name in others:
        nets[name].load_state_dict(checkpoint.split_prefix(tensors, name))
    for name, opt in optims.items():
        load_optimizer_state(name, opt, tensors, optim_meta[name])


def load_matching_weights(nets: torch.nn.ModuleDict, path: str | Path, fresh: tuple[str, ...] = ()) -> int:
    """Start from another checkpoint's weights. Tensors whose shape differs (e.g. mapping heads
    for another speaker set) and the networks named in `fresh` keep their fresh initialisation.
    -> the XFaVoT training steps behind those weights (0 for a file of auxiliary networks only),
    which the new run's files carry on."""
    unknown = sorted(set(fresh) - set(nets))
    if unknown:
        raise UserError(f"init_fresh: no network named {', '.join(unknown)} (networks: {', '.join(nets)})")
    theirs_nets, cfg, meta, _ = checkpoint.load_model(path)
    loaded = 0
    for name, net in theirs_nets.items():
        if name in fresh:
            continue
        mine = nets[name].state_dict()
        theirs = {k: v for k, v in net.state_dict().items() if k in mine and mine[k].shape == v.shape}
        nets[name].load_state_dict(theirs, strict=False)
        loaded += len(theirs)
    if loaded == 0:
        raise UserError(f"{Path(path).name} ({cfg.preset!r} preset) shares no weights with this model")
    return checkpoint.total_steps(meta) if meta.get("trained") else 0
