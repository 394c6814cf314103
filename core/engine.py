"""The inference engine: one object that the app, the CLI and batch export all use.

    engine = Engine()
    engine.load()                                   # embedded default model, device "auto"
    face = engine.face_from_voice("me.png", "voice.wav")
    wav = engine.voice_from_face("speech.wav", "avatar.png")

Sources may be one item or a list (processed in batches); results follow the same shape.
Images come back as RGB PIL images at the model size, audio as float32 numpy at 24 kHz.
Every problem a user can fix raises core.errors.UserError with a one-line message.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

from . import audio, checkpoint, face
from .config import DEVICE_CHOICES, VOCODER_CHOICES, ModelConfig
from .errors import UserError
from .model import EMA_MODULES, AudioTrunk
from .vocoder import Vocoder, load_vocoder

ImageInput = Union[str, Path, Image.Image]
AudioInput = Union[str, Path, np.ndarray, "Audio"]

RESOURCES = Path(os.environ.get("XFAVOT_RESOURCES", Path(__file__).resolve().parent.parent / "resources"))
DEFAULT_CHECKPOINT = RESOURCES / "default" / "xfavot-default.safetensors"
MAX_SOURCE_SECONDS = 60 * 60     # a source clip is converted in chunks; beyond an hour we refuse
MAX_REFERENCE_SECONDS = 30.0     # a style needs a few seconds; longer references are cut here
CHUNK_FRAMES = 2000              # 25 s of mel per generator call on long sources
CONTEXT_FRAMES = 64              # read either side of a chunk so the seams see real context
MAX_TRANSPOSE = 12               # semitones: an octave either way
REGISTER_SECONDS = 30.0          # a source's register is read from its first 30 s
REGISTER_HOP = 4 * audio.HOP     # YIN every 50 ms for a clip's register: 2.8 ms for 3 s against 50 ms at the mel hop
# A transposition moves the source's formants too, by this share of its semitones (a +12 transposition:
# formants +4 semitones, x1.26; voice changers' usual formant settings for a change of gender are
# +2..+4 at +12; chosen from that practice, then measured, see voice_from_style). G_A on its own
# keeps much of the source's vocal tract.
FORMANT_SHARE = 1 / 3
# A face made from a voice's style that the face read-out does not find this sure to be of the
# voice's gender is made again with the style pushed along the gender axis (the difference of the
# genders' mean latent styles) by these fractions of it in turn, until it is (face_from_style).
GENDER_CONFIDENCE = 0.95
GENDER_STEPS = (0.25, 0.5, 0.75, 1.0)
# A voice's style is snapped onto the styles of the model's training faces before G_I reads it: the
# softmax(cosine / SNAP_TEMPERATURE)-weighted mean of its SNAP_NEIGHBOURS nearest of its gender
# (see face_from_style for what that bought).
SNAP_NEIGHBOURS = 4
SNAP_TEMPERATURE = 0.05
# Source faces given as files keep G_I's encoding of them for this many files (Engine._encoded_sources).
SOURCE_CACHE = 32
# Voice conversion toward a voice reference moves the converted mel's long-term spectral envelope
# this share of the way to the reference's (audio.match_envelope; see voice_from_style).
ENVELOPE_MATCH = 1.0
# G_A does not always land where a transposition sends it (its pitch follows the style more than its
# F0 features): a conversion whose register misses the style's by more than LANDING_TOLERANCE
# semitones is tried again with the transposition moved by each of LANDING_RETRIES on the clip's first
# LANDING_SECONDS, and the one that lands nearest is kept (voice_from_style).
LANDING_TOLERANCE = 2.0
LANDING_RETRIES = (-4, 4)
LANDING_SECONDS = 10.0
# Voice conversion toward a voice reference reads G_A's style pushed away from the source's own:
# s_ref + STYLE_PUSH * (s_ref - s_source) (voice_from_style).
STYLE_PUSH = 0.5


@dataclass
class Audio:
    samples: np.ndarray
    rate: int = audio.SAMPLE_RATE


@dataclass
class Style:
    """A point in the shared face/voice style space, with where it came from."""
    vector: np.ndarray            # (style_dim,) float32
    gender: str                   # "female" / "male": the head that produced it
    source: str                   # "face", "voice", "latent", "mix"
    domain: str = ""              # mapping-network domain, for latent styles
    seed: int | None = None
    f0_hz: float | None = None    # a voice reference's measured register (median F0); None: read from the style
    envelope: np.ndarray | None = None  # (80,) a voice reference's timbre (audio.speech_envelope), matched after G_A

    def mix(self, other: "Style", t: float) -> "Style":
        """Linear interpolation (t = 0 -> self, 1 -> other)."""
        vec = (1 - t) * self.vector + t * other.vector
        return Style(vec.astype(np.float32), self.gender if t < 0.5 else other.gender, "mix")


ModelInfo = checkpoint.ModelRecord  # what load() returns: the file's record, vocoder = the one in use


def _readout(extra: dict, prefix: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    tensors = checkpoint.split_prefix(extra, prefix)
    return (tensors["weight"].float().to(device), tensors["bias"].float().to(device)) if tensors else None


def resolve_device(device: str = "auto") -> torch.device:
    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("CUDA was requested but no CUDA GPU is available; use --device cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("MPS (Apple GPU) was requested but is not available here; use --device cpu or auto")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise UserError(f"unknown device {device!r}; use one of {', '.join(DEVICE_CHOICES)}")
    return torch.device(device)


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 autocast on CUDA, and on CPUs with native bf16 (AVX-512 BF16 / AMX); else full fp32."""
    if not amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and torch.backends.mkldnn.is_available()
                                 and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return torch.bfloat16
    return None


def resolve_checkpoint(path: str | Path | None) -> Path:
    if path:
        return Path(path)
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(f"the embedded default model is not installed ({DEFAULT_CHECKPOINT} is missing); "
                        "pass --checkpoint FILE, or create an untrained one with `xfavot init`")
    return DEFAULT_CHECKPOINT


def semitones_between(own_hz: float, target_hz: float | None) -> int:
    """Whole semitones (|n| <= MAX_TRANSPOSE) from one register to another; 0 if either is unknown."""
    if target_hz is None or not np.isfinite(own_hz):
        return 0
    return int(np.clip(round(12 * np.log2(target_hz / own_hz)), -MAX_TRANSPOSE, MAX_TRANSPOSE))


def formant_factor(semitones: int) -> float:
    """Frequency stretch of the source mel that goes with a transposition (FORMANT_SHARE)."""
    return float(2 ** (FORMANT_SHARE * semitones / 12))


def _file_key(img: ImageInput) -> tuple | None:
    """What identifies a source face given as a file (path, size, modification time); None for an image in memory."""
    if isinstance(img, Image.Image):
        return None
    try:
        st = Path(img).stat()
    except OSError:
        return None  # reading it will say what is wrong
    return str(Path(img).resolve()), st.st_size, st.st_mtime_ns


def _as_list(x) -> tuple[list, bool]:
    if isinstance(x, (list, tuple)):
        if not x:
            raise UserError("no inputs were given")
        return list(x), True
    return [x], False


class Engine:
    INFERENCE_MODULES = EMA_MODULES + ("jdc",)

    def __init__(self, batch_size: int = 16, align_faces: bool = True):
        self.batch_size = batch_size
        self.align_faces = align_faces
        self.nets: torch.nn.ModuleDict | None = None
        self.cfg: ModelConfig | None = None
        self.info: ModelInfo | None = None
        self.vocoder: Vocoder | None = None
        # read-outs (weight, bias) where the file has them (training/readouts.py)
        self.face_gender: tuple[torch.Tensor, torch.Tensor] | None = None
        self.f0_register: tuple[torch.Tensor, torch.Tensor] | None = None
        self.face_styles: dict[str, torch.Tensor] = {}  # gender -> (identities, style_dim)
        self.device = torch.device("cpu")
        self.aligner: face.FaceAligner | None = None
        self._gender_means: torch.Tensor | None = None  # (genders, style_dim): mean M(z, gender)
        self._sources: collections.OrderedDict = collections.OrderedDict()  # file key -> encoded source face
        self.last_seconds = 0.0  # wall time of the last task
        self._lock = threading.RLock()

    # -- loading ------------------------------------------------------------------------------
    def load(self, checkpoint_path: str | Path | None = None, device: str = "auto", vocoder: str = "auto") -> ModelInfo:
        """vocoder: "neural" (the model's own), "griffin-lim", or "auto": the one the model's
        recipe measured to sound closer to real speech (meta `preferred_vocoder`), else the neural one."""
        if vocoder not in VOCODER_CHOICES:
            raise UserError(f"unknown vocoder {vocoder!r}; use one of {', '.join(VOCODER_CHOICES)}")
        path = resolve_checkpoint(checkpoint_path)
        dev = resolve_device(device)
        nets, cfg, meta, extra = checkpoint.load_model(path, require=self.INFERENCE_MODULES)
        vocoder = self._vocoder_from(cfg, meta, extra, path, vocoder)
        with self._lock:
            self.nets, self.cfg = nets.to(dev).eval(), cfg
            self.device = dev
            self.vocoder = vocoder.to(dev)
            self._gender_means = None
            self._sources.clear()
            self.face_gender, self.f0_register = (
                _readout(extra, prefix, dev) for prefix in (checkpoint.FACE_GENDER_PREFIX, checkpoint.F0_REGISTER_PREFIX))
            bank = checkpoint.split_prefix(extra, checkpoint.FACE_STYLES_PREFIX)
            self.face_styles = {g: v.float().to(dev) for g, v in bank.items() if g in cfg.genders}
            self.aligner = face.FaceAligner(str(dev)) if self.align_faces else None
            self.info = dataclasses.replace(checkpoint.describe(path), vocoder=vocoder.description)
        return self.info

    @staticmethod
    def warm_up() -> None:
        """Import now what later tasks would import on first use, in pieces that hold the GIL long
        enough to freeze a GUI thread (up to 0.65 s measured on 2 cores): librosa's YIN and pitch
        shift (numba kernels: compiled on a fresh install, about 3 s to load after) and torch._dynamo,
        which torch.optim imports when fine-tuning builds its first optimizer (about 1.4 s)."""
        import librosa.core.pitch  # noqa: F401
        import librosa.effects  # noqa: F401
        import torch._dynamo  # noqa: F401

    @staticmethod
    def _vocoder_from(cfg: ModelConfig, meta: dict, extra: dict, path: Path, choice: str) -> Vocoder:
        if choice == "griffin-lim" or (choice == "auto" and meta.get("preferred_vocoder") == "griffin-lim"):
            return Vocoder.griffin_lim(cfg.mel_frontend, "Griffin-Lim")
        ref = meta.get("vocoder")
        state = checkpoint.split_prefix(extra, "vocoder")
        if state and ref:
            return Vocoder.from_state(ref, state)
        if ref and ref.get("path"):  # a vocoder file next to (or relative to) the checkpoint
            return load_vocoder((path.parent / ref["path"]).resolve())
        if choice == "neural":
            raise UserError(f"{path.name} has no neural vocoder; choose Griffin-Lim or auto "
                            "(or attach one: xfavot attach-vocoder)")
        return Vocoder.griffin_lim(cfg.mel_frontend)

    def _need_model(self) -> None:
        if self.nets is None:
            raise UserError("no model is loaded")

    @property
    def domains(self) -> list[str]:
        self._need_model()
        return self.cfg.domain_names()

    # -- input preparation --------------------------------------------------------------------
    def _face_tensor(self, img: ImageInput) -> torch.Tensor:
        if not isinstance(img, Image.Image):
            img = face.load_image(img)
        else:
            img = face.to_rgb(img)
        img = face.prepare_face(img, self.cfg.img_size, self.aligner)
        return face.image_to_tensor(img)

    def _waveform(self, wav: AudioInput, max_seconds: float, refuse: bool = False) -> np.ndarray:
        """Mono 24 kHz; beyond max_seconds a reference is cut, a source (refuse) is refused."""
        if isinstance(wav, (str, Path)):
            return audio.load_audio(wav, max_seconds=max_seconds, refuse=refuse)
        if isinstance(wav, Audio):
            samples, rate = wav.samples, wav.rate
        else:
            samples, rate = np.asarray(wav), audio.SAMPLE_RATE
        if refuse:
            audio.refuse_longer(len(samples) / rate, max_seconds, "the recording")
        return audio.prepare_waveform(samples[: int(max_seconds * rate)], rate)

    def _speech(self, wav: AudioInput, max_seconds: float, refuse: bool = False) -> np.ndarray:
        """`_waveform` at the corpora's loudness (audio.TARGET_LUFS), what E_A, JDC and G_A learnt
        from: a microphone's level is anyone's. /work/runs/probes/level_probe.py (26 validation
        pairs, source and reference scaled together): at -20 / -10 / 0 / +8 dB, pYIN-voiced share
        of the converted speech kept 0.20 / 0.74 / 0.86 / 0.87, d-vector margin -0.010 / +0.021 /
        +0.039 / +0.036, the reference's style at cosine 0.952 / 0.990 / 1 / 0.994 to its own."""
        return audio.normalize_loudness(self._waveform(wav, max_seconds, refuse))

    def _mel(self, wav: np.ndarray, precise: bool = True) -> torch.Tensor:
        return audio.log_mel(wav, self.cfg.mel_frontend, precise).to(self.device)  # (80, T)

    def _gender_index(self, gender: str | None) -> int | None:
        if gender in (None, "", "auto"):
            return None
        if gender not in self.cfg.genders:
            raise UserError(f"gender must be one of {', '.join(self.cfg.genders)} or auto, not {gender!r}")
        return self.cfg.genders.index(gender)

    # -- styles -------------------------------------------------------------------------------
    @torch.inference_mode()
    def style_of_face(self, img: ImageInput, gender: str | None = None) -> Style:
        """Style of a reference face through E_I. gender None = estimated (the model's face-gender
        read-out where it has one, else D_I's heads)."""
        self._need_model()
        with self._lock:
            x = self._face_tensor(img)[None].to(self.device)
            g = self._gender_index(gender)
            if g is None:
                g = self._estimate_face_gender(x)
            s = self.nets["style_encoder_image"](x, torch.tensor([g], device=self.device))
        return Style(s[0].cpu().numpy(), self.cfg.genders[g], "face")

    @torch.inference_mode()
    def style_of_voice(self, wav: AudioInput, gender: str | None = None) -> Style:
        """Style of a reference voice through E_A. gender None = estimated from the voice's register
        (median F0), or by C_A's gender head for a clip without voiced frames."""
        self._need_model()
        with self._lock:
            samples = self._speech(wav, MAX_REFERENCE_SECONDS)
            # a float32 STFT: 1.5-5 ms sooner on the bundled voices, E_A's styles equal within 1e-4
            mel = self._mel(samples, precise=False)
            envelope = audio.speech_envelope(mel).cpu().numpy()
            mel, _ = audio.pad_frames(mel, minimum=AudioTrunk.MIN_FRAMES)  # E_A needs >= 1 s of frames
            x = mel[None, None]
            f0 = audio.median_f0([samples], REGISTER_HOP)
            g = self._gender_index(gender)
            if g is None:
                g = self._estimate_voice_gender(f0, x)
            s = self.nets["style_encoder_audio"](x, torch.tensor([g], device=self.device))
        return Style(s[0].cpu().numpy(), self.cfg.genders[g], "voice", f0_hz=f0 if np.isfinite(f0) else None,
                     envelope=envelope)

    @torch.inference_mode()
    def face_features(self, images: list[ImageInput]) -> torch.Tensor:
        """E_I's trunk features (N, D) of faces, on the CPU (what the gender read-out reads)."""
        self._need_model()
        with self._lock:
            x = torch.stack([self._face_tensor(img) for img in images]).to(self.device)
            return torch.cat([self.nets["style_encoder_image"].shared(chunk) for chunk in x.split(self.batch_size)]).cpu()

    def _estimate_face_gender(self, x: torch.Tensor) -> int:
        if self.face_gender is not None:  # a read-out fitted on the model's training faces
            return int(self._face_gender_probs(x)[0].argmax())
        # else D_I, which has one real/fake head per gender: the head that finds the face most
        # "real" is the model's guess. Heuristic, and why a gender can be passed in.
        if "discriminator_image" not in self.nets:
            raise UserError("this model cannot tell the gender of a face; choose female or male")
        return int(self.nets["discriminator_image"].logits(x)[0].argmax())

    def _estimate_voice_gender(self, f0: float, x: torch.Tensor) -> int:
        # The register decides: C_A's gender head learns the source of *converted* speech and
        # reads clean voices near chance (48.7 % on the validation speakers of the m7 model), while
        # the F0 rule read all of them right (probes in the model card).
        by_f0 = audio.gender_from_f0(f0)
        if by_f0 in self.cfg.genders:
            return self.cfg.genders.index(by_f0)
        if "classifier_audio" not in self.nets:
            raise UserError("this model cannot tell the gender of a voice; choose female or male")
        gender_logits, _ = self.nets["classifier_audio"](x)
        return int(gender_logits[0].argmax())

    @torch.inference_mode()
    def sample_style(self, domain: str | int, seed: int) -> Style:
        """A style from the mapping network: z ~ N(0, I) seeded, through the domain's head."""
        self._need_model()
        names = self.cfg.domain_names()
        if isinstance(domain, int) or (isinstance(domain, str) and domain.isdigit()):
            index = int(domain)
            if not 0 <= index < len(names):
                raise UserError(f"domain index {index} is out of range (0..{len(names) - 1})")
        elif domain in names:
            index = names.index(domain)
        else:
            shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
            raise UserError(f"unknown domain {domain!r}; this model has: {shown}")
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(1, self.cfg.latent_dim, generator=gen).to(self.device)
        with self._lock:
            s = self.nets["mapping"](z, torch.tensor([index], device=self.device))
        gender = names[index] if index < len(self.cfg.genders) else ""
        return Style(s[0].cpu().numpy(), gender, "latent", names[index], int(seed))

    def _style_tensor(self, styles: Sequence[Style], n: int) -> torch.Tensor:
        vecs = np.stack([s.vector for s in styles]).astype(np.float32)
        if vecs.shape[-1] != self.cfg.style_dim:
            raise UserError(f"style vector has {vecs.shape[-1]} values; this model uses {self.cfg.style_dim}")
        t = torch.from_numpy(vecs).to(self.device)
        return t.expand(n, -1) if len(styles) == 1 else t

    # -- generation ---------------------------------------------------------------------------
    def _pair_up(self, sources, style, what: str) -> tuple[list, bool, list[Style]]:
        """Sources as a list (and whether a list was given), with one style or one per source."""
        self._need_model()
        items, many = _as_list(sources)
        styles, _ = _as_list(style)
        if len(styles) not in (1, len(items)):
            raise UserError(f"got {len(styles)} styles for {len(items)} source {what}")
        return items, many, styles

    @torch.inference_mode()
    def face_from_style(self, sources: ImageInput | Sequence[ImageInput], style: Style | Sequence[Style],
                        hold_gender: bool = True, snap: bool = True):
        """Translate one or more source faces with one style (or one style per source).

        snap: a *voice's* style is first snapped onto the training faces' styles (`snap_to_faces`).
        G_I learnt from E_I's styles of faces; E_A's styles of voices sit off that set (InfoNCE
        aligns directions only) and made streaked faces. On the validation speakers (52 faces,
        the shipped model) voice -> face attribute accuracy 0.697 -> 0.740 (gender 0.94 -> 0.98,
        age 0.33 -> 0.48, build 0.83 -> 0.77, energy 0.69 -> 0.73); the nearest one face style
        alone also 0.740, 16 neighbours 0.736; real training-split voices' avatar gender 82.1 ->
        85.2 % (estimated gender), 94.9 -> 99.9 % (told). A deviation from the paper, where E_A's
        style goes to G_I as it is.

        hold_gender: a face made from a *voice's* style keeps the voice's gender (`_hold_gender`).
        E_A's styles of real voices often land between the genders' faces: on the real speakers
        of the training split (243 clips, 4 faces each; the shipped model) avatar gender by the
        oracle 79.6 % -> 82.1 % with the voice's gender estimated, 90.0 % -> 94.9 % when told;
        validation voice -> face attribute accuracy 0.692 -> 0.697 (52 faces). Moving the style
        toward the gender's mean instead reached 82.9 / 96.4 % but cost the other attributes
        (0.659; build 0.79 -> 0.67); a confidence of 0.6 or 0.8 instead of 0.95 changed little
        (90.4 / 90.7 % told)."""
        items, many, styles = self._pair_up(sources, style, "faces")
        if snap:
            styles = [self.snap_to_faces(st) if st.source == "voice" else st for st in styles]
        start = time.perf_counter()
        out = []
        with self._lock:
            for i in range(0, len(items), self.batch_size):
                chunk = items[i:i + self.batch_size]
                chunk_styles = styles if len(styles) == 1 else styles[i:i + len(chunk)]
                s = self._style_tensor(chunk_styles, len(chunk))
                source = self._encoded_sources(chunk)
                y = self.nets["generator_image"].decode_with_style(source, s)
                if hold_gender:
                    held = [st.gender if st.source == "voice" else None for st in chunk_styles]
                    y = self._hold_gender(source, s, y, held * len(chunk) if len(held) == 1 else held)
                out.extend(face.tensor_to_image(img) for img in y)
        self.last_seconds = time.perf_counter() - start
        return out if many else out[0]

    def _encoded_sources(self, images: list[ImageInput]) -> tuple[torch.Tensor, dict]:
        """G_I's style-free encoding of source faces (`encode_source`), batched. Faces given as files
        are kept (the last SOURCE_CACHE, by path, size and modification time): a creator restyles the
        same avatar with voice after voice, and its reading, alignment and encoding (1.2 + 5.6 ms for a
        bundled 128-px face on 2 cores, alignment off) then happen once."""
        keys = [_file_key(img) for img in images]
        todo = [i for i, key in enumerate(keys) if key is None or key not in self._sources]
        fresh = {}
        if todo:
            x = torch.stack([self._face_tensor(images[i]) for i in todo]).to(self.device)
            features, skips = self.nets["generator_image"].encode_source(x)
            fresh = {i: (features[j:j + 1].clone(), {size: f[j:j + 1].clone() for size, f in skips.items()})
                     for j, i in enumerate(todo)}
        parts = []
        for i, key in enumerate(keys):
            part = fresh[i] if i in fresh else self._sources[key]
            if key is not None:
                self._sources[key] = part
                self._sources.move_to_end(key)
            parts.append(part)
        while len(self._sources) > SOURCE_CACHE:
            self._sources.popitem(last=False)
        return (torch.cat([f for f, _ in parts]), {size: torch.cat([sk[size] for _, sk in parts]) for size in parts[0][1]})

    def snap_to_faces(self, style: Style) -> Style:
        """The style moved onto the model's training faces' styles of its gender: the
        softmax(cosine / SNAP_TEMPERATURE)-weighted mean of its SNAP_NEIGHBOURS nearest. The
        style as it is for a model without them (face_styles read-out) or of a gender it lacks."""
        bank = self.face_styles.get(style.gender)
        if bank is None:
            return style
        v = torch.as_tensor(style.vector, dtype=torch.float32, device=bank.device)
        nearest = torch.nn.functional.cosine_similarity(bank, v[None], dim=1).topk(min(SNAP_NEIGHBOURS, len(bank)))
        weights = (nearest.values / SNAP_TEMPERATURE).softmax(0)
        snapped = weights @ bank[nearest.indices]
        return dataclasses.replace(style, vector=snapped.cpu().numpy().astype(np.float32))

    def _hold_gender(self, source: tuple[torch.Tensor, dict], s: torch.Tensor, y: torch.Tensor,
                     genders: list[str | None]) -> torch.Tensor:
        """Faces y (made from the encoded sources with styles s) that the face read-out does not find
        GENDER_CONFIDENCE sure to be of `genders` (None: anything goes) are made again with their
        styles pushed along the gender axis by each of GENDER_STEPS in turn; the last try stays.
        Along the axis, not toward the gender's mean: the other attributes stay in the style. A
        redraw runs G_I's style half only (the sources are encoded once)."""
        if self.face_gender is None or all(g is None for g in genders):
            return y
        target = torch.tensor([self.cfg.genders.index(g) if g in self.cfg.genders else -1 for g in genders], device=y.device)

        def unsure(faces, of):
            return self._face_gender_probs(faces).gather(1, of.clamp_min(0)[:, None])[:, 0] < GENDER_CONFIDENCE

        todo = (target >= 0) & unsure(y, target)
        means = self._gender_mean_styles()
        toward = means - (means.sum(0, keepdim=True) - means) / max(len(means) - 1, 1)  # each gender's mean minus the others'
        features, skips = source
        for t in GENDER_STEPS:
            if not todo.any():
                break
            idx = todo.nonzero()[:, 0]
            picked = (features[idx], {size: f[idx] for size, f in skips.items()})
            y[idx] = self.nets["generator_image"].decode_with_style(picked, s[idx] + t * toward[target[idx]])
            if t != GENDER_STEPS[-1]:  # the last try stays whatever the read-out says
                todo[idx] = unsure(y[idx], target[idx])
        return y

    def _face_gender_probs(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.face_gender
        return (self.nets["style_encoder_image"].shared(x) @ weight.T + bias).softmax(1)  # (B, genders)

    @torch.inference_mode()
    def _gender_mean_styles(self) -> torch.Tensor:
        """(genders, style_dim): the mapping network's mean style per gender over 2,048 fixed latents."""
        if self._gender_means is None:
            z = torch.randn(2048, self.cfg.latent_dim, generator=torch.Generator().manual_seed(0)).to(self.device)
            self._gender_means = torch.stack([
                self.nets["mapping"](z, torch.full((len(z),), g, device=self.device)).mean(0)
                for g in range(len(self.cfg.genders))])
        return self._gender_means

    def register_of(self, style: Style) -> float | None:
        """The voice register (Hz) a style asks for: a voice reference's own median F0, else the
        model's register read-out of the style; None for a model without one."""
        if style.f0_hz is not None:
            return style.f0_hz
        if self.f0_register is None:
            return None
        weight, bias = self.f0_register
        s = torch.as_tensor(style.vector, dtype=torch.float32, device=weight.device)
        return float(torch.exp(s @ weight + bias[0]))

    def transposition(self, wav: np.ndarray, style: Style) -> int:
        """Whole semitones (|n| <= 12) that move the clip's register to the style's; 0 if either is unknown."""
        own = audio.median_f0([wav[: int(REGISTER_SECONDS * audio.SAMPLE_RATE)]], REGISTER_HOP)
        return semitones_between(own, self.register_of(style))

    @torch.inference_mode()
    def voice_from_style(self, sources: AudioInput | Sequence[AudioInput], style: Style | Sequence[Style],
                         transpose: bool = True):
        """Convert one or more source voices; each result has its source's length at 24 kHz.

        transpose: G_A's F0 features (JDC) are read from the source moved to the register the
        style asks for (`transposition`), while G_A converts the untouched source mel. G_A,
        trained a few thousand steps, keeps too much of the source's pitch: on the m9 model
        (step 500) and the validation speakers, face -> voice F0 error 23.7 % without, 11.4 %
        with, converted-speech WER ratio 0.40 / 0.47. Shifting the source itself instead reached
        11.6 % but WER 1.76 (the phase vocoder moves formants too). A deviation from the paper:
        the "transpose" of voice changers, with the F0 features as the carrier. The source mel's
        spectral envelope (formants) moves along by a third of the semitones (FORMANT_SHARE,
        audio.warp_formants): on 104 validation pairs of the shipped model one-shot VC's d-vector
        margin rose by 0.019 (paired, se 0.006; -0.064 -> -0.045), WER ratio 0.42 both, face ->
        voice F0 error 10.3 -> 10.7 %. Stretching the whole mel (harmonics too) gained 0.022 but
        WER 0.48 and made 50 of 486 real-voice conversions' pitch jump by > 3 semitones (36 of
        486 for the envelope).

        Toward a *voice* reference, the converted mel is then equalised onto the reference's
        long-term spectral envelope (Style.envelope, audio.match_envelope, ENVELOPE_MATCH, at most
        12 dB a band): G_A moves little of the timbre on its own. On 52 validation pairs of the
        shipped model one-shot VC's d-vector margin -0.035 -> +0.015 (paired +0.049, se 0.008),
        converted-speech WER 0.171 -> 0.153, F0 error 7.8 -> 7.4 %; on 48 pairs of real
        training-split speakers -0.057 -> -0.010 (paired +0.047, se 0.009). Half strength gained
        half (+0.026). A deviation from the paper (a post-filter, not a network).

        Toward a voice reference G_A also reads the reference's style pushed away from the
        source's own, s_ref + STYLE_PUSH (s_ref - s_source) (`_pushed_from_source`): G_A keeps
        some of the source speaker. /work/runs/probes/style_extrap.py, 52 validation pairs:
        push 0 / 0.5 / 1 -> d-vector margin +0.014 / +0.039 / +0.047 (paired +0.024 se 0.004 at
        0.5), WER 0.161 / 0.138 / 0.143, F0 error 7.4 / 7.1 / 10.4 %; 48 real training-split pairs
        (style_extrap_real.py) +0.005 (se 0.004) at 0.5. `xfavot eval --split val`: margin 0.048 ->
        0.074, WER ratio 0.422 -> 0.289. Toward faces and latent samples too it brought face ->
        voice F0 error 8.4 -> 7.5 % but real training-split female voices toward a male avatar
        moved down 91.9 -> 88.1 %: voices only. A deviation from the paper."""
        items, many, styles = self._pair_up(sources, style, "voices")
        start = time.perf_counter()
        out = []
        with self._lock:
            for i, src in enumerate(items):
                wav = self._speech(src, MAX_SOURCE_SECONDS, refuse=True)
                target = styles[0] if len(styles) == 1 else styles[i]
                s = self._pushed_from_source(wav, target)
                steps = self.transposition(wav, target) if transpose else 0
                converted = self._convert_voice(wav, s, target, steps)
                # a voice reference's register is its own F0, which G_A already lands near (val 7.4 %)
                goal = self.register_of(target) if transpose and target.f0_hz is None else None
                if goal is not None:
                    converted = self._land_register(wav, s, target, steps, converted, goal)
                out.append(audio.normalize_loudness(converted))
        self.last_seconds = time.perf_counter() - start
        return out if many else out[0]

    def _pushed_from_source(self, wav: np.ndarray, target: Style) -> torch.Tensor:
        """(1, style_dim): the target's style, pushed away from the source's own by STYLE_PUSH when the
        target is a voice (see voice_from_style)."""
        s = self._style_tensor([target], 1)
        if target.source != "voice" or not STYLE_PUSH:
            return s
        own = self._style_tensor([self.style_of_voice(wav)], 1)  # its first MAX_REFERENCE_SECONDS
        return s + STYLE_PUSH * (s - own)

    def _convert_voice(self, wav: np.ndarray, s: torch.Tensor, target: Style, steps: int) -> np.ndarray:
        """One clip through JDC + G_A (transposed by `steps`), the envelope match and the vocoder."""
        mel = self._convert_mel(self._mel(wav), s, wav if steps else None, steps)
        if target.envelope is not None:
            mel = audio.match_envelope(mel, torch.from_numpy(target.envelope), ENVELOPE_MATCH)
        return self.vocoder(mel).numpy()[: wav.size]

    def _land_register(self, wav: np.ndarray, s: torch.Tensor, target: Style, steps: int,
                       converted: np.ndarray, goal: float) -> np.ndarray:
        """`converted`, or the clip converted again with the transposition among `steps` +
        LANDING_RETRIES whose register lands nearest `goal` (Hz), when `converted` misses it by more
        than LANDING_TOLERANCE semitones. Each retry converts only the first LANDING_SECONDS; the one
        toward the goal goes first, and the other only if that one misses too (validation: the same
        8.4 %, 1.46 conversions per clip instead of 1.62).

        G_A's pitch follows the style more than its F0 features, and jumps: on the 13 validation
        pairs of the shipped model (/work/runs/probes/f0_landing.py), sweeping the transposition
        from -12 to +12 moved most outputs' register by under 2 semitones and some by a fifth at
        one step. With the retry (`xfavot eval --split val`): face -> voice F0 error 11.3 -> 8.4 %,
        d-vector similarity to the speaker 0.653 -> 0.647, real training-split voices toward an
        avatar of the other gender moved the right way 93.5 / 90.4 -> 93.5 / 89.6 % (m->f / f->m,
        243 clips); retries of +-3 / +-6 semitones gave 9.2 / 8.8 % in the probe, a tolerance of 1 /
        3 semitones 8.5 / 9.3 %. Converting once more by the measured miss instead reached 10.6 %.
        Cost: about half the bundled sample pairs are retried; per clip (2-4 s) median real-time
        factor 0.063 -> 0.121 with Griffin-Lim, 0.026 -> 0.058 with the neural vocoder. Only toward
        a style without a measured register (faces, latent samples): a voice reference's own F0 is
        the register, and G_A lands near it (F0 error 7.4 %)."""
        head = int(LANDING_SECONDS * audio.SAMPLE_RATE)

        def off(clip: np.ndarray) -> float:  # semitones from the goal, signed
            f0 = audio.median_f0([clip[:head]], REGISTER_HOP)
            return 12 * np.log2(f0 / goal) if np.isfinite(f0) else float("inf")

        first = off(converted)
        if abs(first) <= LANDING_TOLERANCE:
            return converted
        best, best_miss, tried = steps, abs(first), {steps: converted}
        toward = -1 if first > 0 else 1  # the retry toward the goal first; the other only if that misses too
        for d in sorted(LANDING_RETRIES, key=lambda d: -d * toward):
            retry = int(np.clip(steps + d, -MAX_TRANSPOSE, MAX_TRANSPOSE))
            if retry in tried:
                continue
            tried[retry] = self._convert_voice(wav[:head], s, target, retry)
            if (m := abs(off(tried[retry]))) < best_miss:
                best, best_miss = retry, m
            if best_miss <= LANDING_TOLERANCE:
                break
        if best == steps or wav.size <= head:
            return tried[best]
        return self._convert_voice(wav, s, target, best)

    def _convert_mel(self, mel: torch.Tensor, s: torch.Tensor, wav: np.ndarray | None = None,
                     semitones: int = 0) -> torch.Tensor:
        """(80, T) -> (80, T) through JDC + G_A, in overlapping chunks for long clips; with `wav`
        (the clip of `mel`), JDC reads each chunk of it transposed by `semitones` (chunk by chunk,
        so an hour-long source needs no transposed copy of itself; the seams sit in the context)
        and G_A the mel with its formants moved along (`formant_factor`)."""
        pieces = []
        mel = audio.warp_formants(mel, formant_factor(semitones), self.cfg.mel_frontend)
        for rs, re_, ks, ke in audio.chunk_spans(mel.shape[-1], CHUNK_FRAMES, CONTEXT_FRAMES):
            part, t = audio.pad_frames(mel[:, rs:re_], multiple=4)  # G_A halves time twice
            x = part[None, None]
            f0_in = x
            if wav is not None:
                moved = audio.pitch_shift(wav[rs * audio.HOP: re_ * audio.HOP], semitones)
                f0_in = audio.pad_frames(self._mel(moved)[:, : re_ - rs], multiple=4)[0][None, None]
            f0 = self.nets["jdc"].get_feature(f0_in)
            y = self.nets["generator_audio"](x, s, f0)[0, 0, :, :t]
            pieces.append(y[:, ks - rs:ke - rs])
        return torch.cat(pieces, dim=-1)

    @torch.inference_mode()
    def restyled_mel(self, wav: AudioInput, gender: str | None = None) -> torch.Tensor:
        """(80, T): what G_A makes of a clip restyled with its own voice's style (no transposition),
        frame-aligned with the clip: a vocoder's ground-truth-aligned training input."""
        samples = self._speech(wav, MAX_SOURCE_SECONDS)
        style = self.style_of_voice(samples, gender)
        with self._lock:
            return self._convert_mel(self._mel(samples), self._style_tensor([style], 1)).cpu()

    # -- helpers for front ends (the app shows what it will convert) --------------------------
    def read_voice(self, src: AudioInput, max_seconds: float = MAX_SOURCE_SECONDS) -> np.ndarray:
        """A voice file or recording (Audio) as the engine will hear it: mono float32 at 24 kHz."""
        return self._waveform(src, max_seconds, refuse=True)

    @staticmethod
    def save_voice(path: str | Path, wav: np.ndarray) -> None:
        """WAV/FLAC/OGG by extension; a full disk or a read-only folder is a UserError."""
        try:
            audio.save_audio(path, wav)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc}")

    # -- the four tasks -----------------------------------------------------------------------
    def face_from_voice(self, source_faces, reference_voice: AudioInput, gender: str | None = None):
        """Audio-guided face translation: 'a face that matches this voice'."""
        return self.face_from_style(source_faces, self.style_of_voice(reference_voice, gender))

    def face_from_face(self, source_faces, reference_face: ImageInput, gender: str | None = None):
        """Reference-guided face translation within the image modality."""
        return self.face_from_style(source_faces, self.style_of_face(reference_face, gender))

    def voice_from_face(self, source_voices, reference_face: ImageInput, gender: str | None = None):
        """Image-guided voice conversion: 'a voice that matches this face'."""
        return self.voice_from_style(source_voices, self.style_of_face(reference_face, gender))

    def voice_from_voice(self, source_voices, reference_voice: AudioInput, gender: str | None = None):
        """One-shot voice conversion within the audio modality."""
        return self.voice_from_style(source_voices, self.style_of_voice(reference_voice, gender))
