"""What the app shows about audio and the compute device: plain functions over the engine, no Qt,
run on the worker thread like every other engine call."""
from __future__ import annotations

import numpy as np
import torch

from core import audio
from core.engine import Engine


def mel_picture(engine: Engine, wav: np.ndarray) -> np.ndarray:
    """(80, T) log-mel in 0..1 (low bands first) for display; any model's front end."""
    frontend = engine.cfg.mel_frontend if engine.cfg else "xfavot24k"
    mel = audio.log_mel(np.asarray(wav, dtype=np.float32), frontend).numpy()
    lo, hi = np.percentile(mel, 1), np.percentile(mel, 99.5)
    return np.clip((mel - lo) / max(hi - lo, 1e-6), 0, 1)


def device_summary(engine: Engine) -> str:
    """The compute device in words, with memory where it means something."""
    dev = engine.device
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        name = torch.cuda.get_device_name(dev)
        return f"CUDA · {name} · {(total - free) / 2**30:.1f} of {total / 2**30:.0f} GiB in use"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU · {torch.get_num_threads()} threads"
