"""What a run shows while it trains, from its EMA networks: held-out retrieval (the score that picks
best.safetensors) and sample grids and WAVs (the app's live preview, RUN_DIR/samples)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from core import audio, checkpoint, face
from core.config import ModelConfig
from core.vocoder import Vocoder

from .data.datasets import Dataset


class Previews:
    def __init__(self, model_cfg: ModelConfig, train_data: Dataset, val_data: Dataset, crop_frames: int,
                 device: torch.device):
        self.cfg, self.train_data, self.val_data = model_cfg, train_data, val_data
        self.crop, self.device = crop_frames, device

    def _face(self, path) -> torch.Tensor:
        return face.image_to_tensor(face.prepare_face(face.load_image(path), self.cfg.img_size, None))

    def _mel(self, path) -> torch.Tensor:
        mel = audio.log_mel(audio.load_audio(path), self.cfg.mel_frontend)
        mel, _ = audio.pad_frames(mel, minimum=self.crop)
        return mel[:, : self.crop][None]

    def _genders(self, speakers) -> torch.Tensor:
        return torch.tensor([self.cfg.genders.index(s.gender) for s in speakers], device=self.device)

    @torch.no_grad()
    def retrieval(self, ema) -> dict[str, float]:
        """Cross-modal retrieval on held-out paired speakers: for each speaker's voice, is its own
        face the nearest in style space (top-1)?"""
        spk = self.val_data.speakers
        if len(spk) < 2:
            return {}
        genders = self._genders(spk)
        faces = torch.stack([self._face(s.faces[0]) for s in spk]).to(self.device)
        mels = torch.stack([self._mel(s.voices[0]) for s in spk]).to(self.device)
        fs = torch.nn.functional.normalize(ema["style_encoder_image"](faces, genders), dim=-1)
        vs = torch.nn.functional.normalize(ema["style_encoder_audio"](mels, genders), dim=-1)
        top1 = ((vs @ fs.t()).argmax(1) == torch.arange(len(spk), device=self.device)).float().mean().item()
        return {"val/retrieval_top1": top1, "val/speakers": float(len(spk))}

    @torch.no_grad()
    def write(self, ema, jdc, out_dir: Path, step: int, with_voice: bool = True) -> dict:
        """A face grid (rows: source faces; columns: voice references of different speakers, or
        latent styles when there are no voices) and one voice converted to match a face."""
        from PIL import Image

        out_dir.mkdir(parents=True, exist_ok=True)
        pool = self.val_data.speakers or [s for s in self.train_data.speakers if s.faces and s.voices]
        refs = pool[:4]
        src = self.train_data.speakers
        faces_src = [i for i, s in enumerate(src) if s.faces][:4]
        x = torch.stack([self._face(src[i].faces[j % len(src[i].faces)]) for j, i in enumerate(faces_src)])
        x = x.to(self.device)
        size = self.cfg.img_size
        columns = len(refs) if refs else 4
        grid = Image.new("RGB", ((columns + 1) * size, (len(faces_src) + 1) * size), (255, 255, 255))
        for r in range(len(faces_src)):
            grid.paste(face.tensor_to_image(x[r]), (0, (r + 1) * size))
        for c in range(columns):
            if refs:  # columns are reference voices (their face above them)
                ref = refs[c]
                grid.paste(face.tensor_to_image(self._face(ref.faces[0])), ((c + 1) * size, 0))
                g = self._genders([ref]).expand(len(faces_src))
                mel = self._mel(ref.voices[0])[None].to(self.device).expand(len(faces_src), -1, -1, -1)
                s = ema["style_encoder_audio"](mel, g)
            else:  # no voices (e.g. an avatar set alone): columns are latent styles, alternating genders
                z = torch.randn(1, self.cfg.latent_dim, generator=torch.Generator().manual_seed(c))
                s = ema["mapping"](z.to(self.device), torch.tensor([c % 2], device=self.device))
                s = s.expand(len(faces_src), -1)
            for r, img in enumerate(ema["generator_image"](x, s)):
                grid.paste(face.tensor_to_image(img), ((c + 1) * size, (r + 1) * size))
        name = "faces-from-voices" if refs else "faces-from-latents"
        grid_path = out_dir / f"{name}-{step:06d}.png"
        checkpoint.atomic_write(grid_path, lambda tmp: grid.save(tmp, format="PNG"))
        result = {"step": step, "faces": str(grid_path)}
        if not with_voice or not refs:
            return result
        # one source voice converted to match the first reference face
        voice_src = next(s for s in src if s.voices)
        mel = audio.log_mel(audio.load_audio(voice_src.voices[0]), self.cfg.mel_frontend)
        mel, t = audio.pad_frames(mel, multiple=4)
        s = ema["style_encoder_image"](self._face(refs[0].faces[0])[None].to(self.device), self._genders(refs[:1]))
        m = mel[None, None].to(self.device)
        converted = ema["generator_audio"](m, s, jdc.get_feature(m))[0, 0, :, :t]
        wav = Vocoder.griffin_lim(self.cfg.mel_frontend)(converted.cpu()).numpy()
        wav_path = out_dir / f"voice-from-face-{step:06d}.wav"
        checkpoint.atomic_write(wav_path, lambda tmp: sf.write(tmp, np.clip(wav, -1, 1), audio.SAMPLE_RATE,
                                                               format="WAV", subtype="PCM_16"))
        result["voice"] = str(wav_path)
        return result
