"""Image-side pre-training: G_I and E_I learn reference-guided face translation from rendered
pairs of fresh identities (training/data/face_bank.py) before the XFaVoT run.

    xfavot pretrain-image --out IMAGE.safetensors --steps 12000      # then: xfavot train --init ... --init IMAGE.safetensors

A deviation from the paper, which trains G_I only with its unsupervised objective: on two CPU
cores that objective cannot teach a generator to draw in the steps it can afford (the default
model's faces stayed blurry blocks after 4,000 steps). A supervised L1 to the rendered target
is ~20x cheaper per step than a full XFaVoT step and needs no discriminator. The output file
holds G_I and E_I only; `xfavot train --init` takes it after a file with the other networks.

    xfavot pretrain-image --init MODEL --freeze-encoder --out POLISHED.safetensors --steps 6000 --lr 3e-4

polishes a trained model's G_I on the same pairs with its E_I (and so the style space that E_A,
the mapping network and the read-outs were fitted to) frozen; the output is MODEL with G_I
replaced. The recipe's stage 5f: the GAN terms of the XFaVoT stages left G_I's faces streaked and
its held-out pair L1 at 0.075 (0.043 after pre-training).

    xfavot pretrain-image --init POLISHED --freeze-encoder --adversarial 0.03 ...

adds pix2pix's remedy for the blur an L1 alone leaves (the mean of the eyes it is unsure of is
no eyes): a PatchGAN, trained from scratch beside G_I, judges 64-px patches of the rendered
targets against G_I's outputs (hinge loss, spectral norm; no R1, so a step costs ~1.4x an L1
step). The recipe's stage 5g. `--detail 1` adds an L1 between the output's and the target's
Laplacians, which pins the colour of the fine detail the PatchGAN asks for (without it the eyes
came out as coloured specks): stage 5h.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from tqdm import tqdm

from core import checkpoint
from core.config import ModelConfig
from core.engine import autocast_dtype
from core.face import tensor_to_image
from core.model import build_networks

from . import image_detail
from .data.face_bank import FaceBank
from .state import load_optimizer_state, optimizer_state

NETWORKS = ("generator_image", "style_encoder_image")
STATE_FORMAT = "xfavot-image-pretraining"


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN, one step shallower for 64-px faces: (B, 3, 64, 64) -> (B, 1, 14, 14)
    real/fake scores, each over a ~34-px window (an eye, a mouth corner, a hair edge)."""

    def __init__(self, dim: int = 32):
        super().__init__()
        layers, channels = [], [3, dim, 2 * dim, 4 * dim]
        for i, (a, b) in enumerate(zip(channels, channels[1:])):
            layers += [spectral_norm(nn.Conv2d(a, b, 4, 2 if i < 2 else 1, 1)), nn.LeakyReLU(0.2)]
        layers.append(spectral_norm(nn.Conv2d(channels[-1], 1, 4, 1, 1)))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


def learning_rate(step: int, steps: int, base: float) -> float:
    """Cosine from `base` down to a tenth of it."""
    return base * (0.55 + 0.45 * math.cos(math.pi * min(step / max(steps, 1), 1.0)))


@torch.no_grad()
def validate(nets: dict, bank: FaceBank, device: torch.device, batches: int = 12, batch_size: int = 8) -> dict:
    """On the bank's held-out group (identities and poses never trained on): pair L1, the L1 of
    returning the source unchanged (the score to beat), and the outputs' fine detail over the
    targets' (`image_detail.detail_ratios`: sharpness < 1 is blur, colour detail > 1 specks)."""
    generator = torch.Generator().manual_seed(1)
    made, copied, outputs, targets = [], [], [], []
    for _ in range(batches):
        x, r, g, t = (v.to(device) for v in bank.batch(batch_size, generator, "val"))
        y = nets["generator_image"](x, nets["style_encoder_image"](r, g)).float()
        made.append((y - t).abs().mean().item())
        copied.append((x - t).abs().mean().item())
        outputs.append(y.clamp(-1, 1))
        targets.append(t)
    return {"val_pair_l1": sum(made) / batches, "copy_source_l1": sum(copied) / batches,
            **image_detail.detail_ratios(torch.cat(outputs), torch.cat(targets))}


@torch.no_grad()
def preview(nets: dict, bank: FaceBank, device: torch.device, path: Path, n: int = 6) -> None:
    """Rows: source, reference, rendered target, output (held-out group)."""
    x, r, g, t = (v.to(device) for v in bank.batch(n, torch.Generator().manual_seed(2), "val"))
    y = nets["generator_image"](x, nets["style_encoder_image"](r, g)).clamp(-1, 1)
    image = tensor_to_image(torch.cat([torch.cat(list(v), 2) for v in (x, r, t, y)], 1))  # (3, 4H, nW)
    checkpoint.atomic_write(path, lambda tmp: image.resize((image.width * 2, image.height * 2)).save(tmp, format="PNG"))


def pretrain_image(model_cfg: ModelConfig | None, out: str | Path, steps: int, device: str = "cpu", batch_size: int = 8,
                   lr: float = 1e-3, seed: int = 0, resume: bool = False, checkpoint_every: int = 500,
                   bank: FaceBank | None = None, progress: bool = True,
                   should_stop: Callable[[int], bool] | None = None, init: str | Path | None = None,
                   freeze_encoder: bool = False, adversarial: float = 0.0, detail: float = 0.0) -> dict:
    """Train G_I + E_I for `steps` steps (resumable from OUT.train.safetensors); writes OUT (the two
    networks, fp32, with model_cfg) and OUT.png (a preview) at every checkpoint, and when
    should_stop(step) turns true (then resume=True continues). -> metrics.
    init: start from this model's G_I and E_I (its config replaces model_cfg); OUT is then the
    whole model with the trained networks replaced. freeze_encoder: E_I stays as it is.
    adversarial: the weight of a PatchDiscriminator's hinge loss beside the pair L1 (0: none).
    detail: the weight of an L1 between the output's and the target's Laplacians (0: none)."""
    out, dev = Path(out), torch.device(device)
    all_nets = None
    if init is not None:
        all_nets, model_cfg, _, _ = checkpoint.load_model(init, require=NETWORKS)
    bank = bank or FaceBank.load_or_render(out.with_name(out.stem + ".bank.safetensors"), model_cfg.img_size,
                                           progress=progress)
    torch.manual_seed(seed)
    all_nets = all_nets if all_nets is not None else build_networks(model_cfg)
    nets = {name: all_nets[name].to(dev) for name in NETWORKS}
    trained = [name for name in NETWORKS if not (freeze_encoder and name == "style_encoder_image")]
    for name in NETWORKS:
        nets[name].requires_grad_(name in trained).train(name in trained)
    params = [p for name in trained for p in nets[name].parameters()]
    betas = (0.5, 0.99) if adversarial else (0.9, 0.99)  # pix2pix's beta1 beside a discriminator
    opt = torch.optim.Adam(params, lr, betas=betas)
    critic = PatchDiscriminator().to(dev) if adversarial else None
    critic_opt = torch.optim.Adam(critic.parameters(), lr, betas=betas) if critic else None
    state_path = Path(str(out) + ".train.safetensors")
    step = 0
    if resume and state_path.is_file():
        tensors, header = checkpoint.load_tensors(state_path)
        for name in trained:
            nets[name].load_state_dict(checkpoint.split_prefix(tensors, name))
        load_optimizer_state("image", opt, tensors, header["optimizer"])
        if critic is not None:
            critic.load_state_dict(checkpoint.split_prefix(tensors, "patch_discriminator"))
            load_optimizer_state("patch_discriminator", critic_opt, tensors, header["critic_optimizer"])
        step = header["step"]
    amp = autocast_dtype(dev, True)

    def mixed_precision():
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp is not None)

    bar = tqdm(total=steps, initial=step, desc="image pre-training", disable=not progress)
    started, metrics = time.perf_counter(), {}
    while step < steps:
        for group in opt.param_groups + (critic_opt.param_groups if critic else []):
            group["lr"] = learning_rate(step, steps, lr)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)  # a resumed run draws what an unbroken one would
        x, r, g, t = (v.to(dev) for v in bank.batch(batch_size, generator))
        with mixed_precision():
            y = nets["generator_image"](x, nets["style_encoder_image"](r, g))
        y = y.float()
        pair_l1 = (y - t).abs().mean()
        loss = pair_l1
        if detail:
            loss = loss + detail * (image_detail.laplacian(y) - image_detail.laplacian(t)).abs().mean()
        if critic is not None:
            with mixed_precision():
                critic_loss = F.relu(1 - critic(t)).mean() + F.relu(1 + critic(y.detach())).mean()
            critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            critic_opt.step()
            with mixed_precision():
                loss = loss - adversarial * critic(y).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update()
        bar.set_postfix(pair_l1=f"{pair_l1.item():.3f}")
        stopping = should_stop is not None and should_stop(step)
        if step % checkpoint_every == 0 or step == steps or stopping:
            for net in nets.values():
                net.eval()
            metrics = validate(nets, bank, dev)
            preview(nets, bank, dev, out.with_suffix(".png"))
            for name in trained:
                nets[name].train()
            tensors, optim_meta = optimizer_state("image", opt)
            tensors.update({f"{name}.{k}": v for name in trained for k, v in nets[name].state_dict().items()})
            header = {"format": STATE_FORMAT, "step": step, "optimizer": optim_meta}
            if critic is not None:
                critic_tensors, header["critic_optimizer"] = optimizer_state("patch_discriminator", critic_opt)
                tensors.update(critic_tensors)
                tensors.update({f"patch_discriminator.{k}": v for k, v in critic.state_dict().items()})
            checkpoint.save_tensors(state_path, tensors, header)
            record = {"steps": step, "batch_size": batch_size, "lr": lr, "trained": trained, "adversarial": adversarial,
                      "detail": detail, **metrics}
            if init is None:
                checkpoint.save_model(out, nets, model_cfg, {
                    "description": f"G_I + E_I pre-trained on rendered pairs, {step} steps", "image_pretraining": record})
            else:
                what = "G_I" if trained == ["generator_image"] else "G_I and E_I"
                how = " and ".join(([f"a PatchGAN (weight {adversarial:g})"] if adversarial else [])
                                   + ([f"a Laplacian L1 (weight {detail:g})"] if detail else []))
                how = f" with {how}" if how else ""
                # each stage keeps the records of the stages before it
                key = "image_polish" + ("_adversarial" if adversarial else "") + ("_detail" if detail else "")
                _replace_networks(init, out, {name: nets[name] for name in trained}, {key: record},
                                  f"then {what} polished {step} steps on rendered pairs{how}")
            bar.write(f"step {step}: val pair L1 {metrics['val_pair_l1']:.4f} (copying the source: "
                      f"{metrics['copy_source_l1']:.4f}), sharpness {metrics['sharpness']:.3f}, "
                      f"colour detail {metrics['colour_detail']:.3f}")
        if stopping:
            break
    bar.close()
    return {"steps": step, "seconds": time.perf_counter() - started, **metrics}


def _replace_networks(model: str | Path, out: Path, nets: dict, meta: dict, described: str) -> None:
    """OUT = MODEL (every tensor, its header) with `nets`' weights in place of its own (the
    networks MODEL's loaders read: a training checkpoint's EMA copies, an exported file's only),
    `meta` added and `described` appended to its description."""
    tensors, header = checkpoint.load_tensors(model)
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            old = tensors[f"{name}.{key}"]
            tensors[f"{name}.{key}"] = value.detach().to("cpu", old.dtype)
    old_meta = header.get("meta", {})
    description = "; ".join(d for d in (old_meta.get("description", ""), described) if d)
    header = {**header, "meta": {**old_meta, **meta, "description": description}}
    checkpoint.save_tensors(out, tensors, header)
