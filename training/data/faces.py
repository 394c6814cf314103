"""Procedural avatar faces (PIL), drawn from a speaker identity plus per-image nuisance.

Voice-linked cues (what the face says about the voice):
  gender  long or bob hair, lashes, lip colour  |  short hair, heavier brows, facial hair
  age     young: blush, smooth  |  adult: one forehead line  |  senior: grey hair, wrinkles, eye bags
  build   face, neck and shoulder width, double chin for "large"
  energy  lively: big round eyes with highlights, high arched brows  |  calm: half-lidded eyes, flat low brows
Free attributes (not in the voice): skin tone, hair colour, clothes colour, hair-style variant.
Per-image nuisance (domain-invariant content a translation must keep): head shift/rotation/scale,
expression (neutral, smile, open mouth), gaze, background colour and lighting.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from .. import processes
from .identity import CLOTHES_COLOURS, HAIR_COLOURS, SKIN_TONES, Identity

S = 256  # drawing canvas; images are downsampled to the output size for antialiasing
GREY_HAIR = (196, 196, 200)
EXPRESSIONS = ("neutral", "smile", "open")


@dataclass
class Nuisance:
    dx: float
    dy: float
    angle: float
    scale: float
    expression: str
    gaze: float
    background: tuple[int, int, int]
    light: float        # overall brightness factor
    side_light: float   # -1 (light from the left) .. 1 (from the right)

    def to_dict(self) -> dict:
        return asdict(self)


def sample_nuisance(rng: np.random.Generator) -> Nuisance:
    hue = rng.uniform(0, 1)
    background = tuple(int(v) for v in 150 + 80 * np.abs(np.sin(2 * np.pi * (hue + np.array([0, 1 / 3, 2 / 3])))))
    return Nuisance(dx=float(rng.uniform(-8, 8)), dy=float(rng.uniform(-6, 6)), angle=float(rng.uniform(-8, 8)),
                    scale=float(rng.uniform(0.94, 1.06)), expression=EXPRESSIONS[rng.integers(3)],
                    gaze=float(rng.uniform(-1, 1)), background=background, light=float(rng.uniform(0.85, 1.12)),
                    side_light=float(rng.uniform(-1, 1)))


def _shade(colour, factor: float):
    return tuple(int(max(0, min(255, c * factor))) for c in colour)


def _mix(a, b, t: float):
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def render_face(identity: Identity, nuisance: Nuisance, size: int = 128) -> Image.Image:
    person = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    _draw_person(ImageDraw.Draw(person), identity, nuisance)
    # pose: rotate/scale about the face centre, then shift
    person = person.rotate(nuisance.angle, resample=Image.BICUBIC, center=(S / 2, S / 2 - 8),
                           translate=(nuisance.dx, nuisance.dy))
    if abs(nuisance.scale - 1) > 1e-3:
        scaled = person.resize((int(S * nuisance.scale),) * 2, Image.BICUBIC)
        offset = (S - scaled.width) // 2
        person = Image.new("RGBA", (S, S), (0, 0, 0, 0))
        person.alpha_composite(scaled, (offset, offset)) if offset >= 0 else person.alpha_composite(
            scaled.crop((-offset, -offset, -offset + S, -offset + S)))
    canvas = Image.new("RGBA", (S, S), nuisance.background + (255,))
    gradient = np.linspace(1.08, 0.9, S)[:, None, None]  # soft top-down backdrop falloff
    canvas = Image.fromarray((np.asarray(canvas, dtype=np.float32) * np.concatenate(
        [np.repeat(gradient, 3, axis=2), np.ones((S, 1, 1))], axis=2)).clip(0, 255).astype(np.uint8), "RGBA")
    canvas.alpha_composite(person)
    arr = np.asarray(canvas.convert("RGB"), dtype=np.float32)
    side = 1 + 0.12 * nuisance.side_light * np.linspace(-1, 1, S)[None, :, None]
    arr = (arr * nuisance.light * side).clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").resize((size, size), Image.LANCZOS)


def _draw_person(d: ImageDraw.ImageDraw, idt: Identity, nz: Nuisance) -> None:
    skin = SKIN_TONES[idt.skin]
    hair = GREY_HAIR if idt.age == "senior" else HAIR_COLOURS[idt.hair]
    clothes = CLOTHES_COLOURS[idt.clothes]
    female = idt.gender == "female"
    cx, cy = S / 2, S / 2 - 14
    rx = {"slim": 47, "average": 56, "large": 68}[idt.build]
    ry = 72
    shoulder = {"slim": 78, "average": 96, "large": 122}[idt.build]
    neck = {"slim": 17, "average": 22, "large": 31}[idt.build]
    line = _shade(skin, 0.72)

    # hair behind the head (long styles)
    if female and idt.hair_style in (0, 1):
        bottom = cy + (ry + 70 if idt.hair_style == 0 else ry + 8)
        d.rounded_rectangle((cx - rx - 16, cy - ry - 10, cx + rx + 16, bottom), radius=rx, fill=hair)
    # shoulders and neck
    d.ellipse((cx - shoulder, S - 48, cx + shoulder, S + 90), fill=clothes)
    d.polygon([(cx - 26, S - 46), (cx, S - 20), (cx + 26, S - 46)], fill=_shade(clothes, 0.8))  # collar
    d.rectangle((cx - neck, cy + ry - 24, cx + neck, S - 40), fill=_shade(skin, 0.9))
    # ears, head
    d.ellipse((cx - rx - 9, cy - 10, cx - rx + 9, cy + 18), fill=_shade(skin, 0.95))
    d.ellipse((cx + rx - 9, cy - 10, cx + rx + 9, cy + 18), fill=_shade(skin, 0.95))
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    if idt.build == "large":  # double chin
        d.arc((cx - rx * 0.45, cy + ry - 22, cx + rx * 0.45, cy + ry + 6), 20, 160, fill=line, width=2)

    # age cues
    if idt.age == "young":
        for sx in (-1, 1):
            x = cx + sx * rx * 0.55
            d.ellipse((x - 11, cy + 16, x + 11, cy + 28), fill=_mix(skin, (235, 120, 130), 0.45))
    if idt.age in ("adult", "senior"):
        d.arc((cx - 22, cy - 48, cx + 22, cy - 34), 200, 340, fill=line, width=2)
    if idt.age == "senior":
        for k in (1, 2):
            d.arc((cx - 26 + 3 * k, cy - 50 - 7 * k, cx + 26 - 3 * k, cy - 36 - 7 * k), 200, 340, fill=line, width=2)
        for sx in (-1, 1):
            x = cx + sx * rx * 0.42
            d.arc((x - 11, cy + 2, x + 11, cy + 14), 20, 160, fill=line, width=2)  # eye bags
        d.arc((cx - 36, cy + 12, cx - 12, cy + 50), 110, 200, fill=line, width=2)  # smile lines
        d.arc((cx + 12, cy + 12, cx + 36, cy + 50), 340, 70, fill=line, width=2)

    # hair on top
    if female:
        if idt.hair_style == 2:  # bun
            d.ellipse((cx - 24, cy - ry - 34, cx + 24, cy - ry + 8), fill=hair)
        d.chord((cx - rx - 4, cy - ry - 8, cx + rx + 4, cy + ry * 0.35), 180, 360, fill=hair)
        d.polygon([(cx - rx + 2, cy - 20), (cx - 6, cy - ry + 4), (cx + rx * 0.7, cy - 30), (cx + rx + 3, cy - 8),
                   (cx + rx + 3, cy - 40), (cx - rx - 3, cy - 40)], fill=hair)  # side-swept fringe
    else:
        top = cy - ry - (10 if idt.hair_style == 1 else 5)
        if idt.age == "senior":  # receding: sides only
            for sx in (-1, 1):
                d.pieslice((cx - rx - 3, top + 18, cx + rx + 3, cy + ry * 0.5), 180 if sx < 0 else 300,
                           240 if sx < 0 else 360, fill=hair)
        else:
            d.chord((cx - rx - 3, top, cx + rx + 3, cy + ry * 0.3), 180, 360, fill=hair)
            if idt.hair_style == 2:
                d.polygon([(cx - rx, cy - 30), (cx - 10, top + 6), (cx + 30, top + 2), (cx + rx, cy - 34)], fill=hair)

    # eyes and brows: energy
    lively = idt.energy == "lively"
    eye_y = cy - 4
    ew, eh = (13, 11) if lively else (12, 4)
    if idt.age == "young":
        ew, eh = ew + 1, eh + 1
    brow_colour = _shade(hair, 0.75) if idt.age != "senior" else (150, 150, 155)
    brow_w = 3 if female else 6
    gaze = nz.gaze * 3
    for sx in (-1, 1):
        ex = cx + sx * rx * 0.42
        d.ellipse((ex - ew, eye_y - eh, ex + ew, eye_y + eh), fill=(250, 250, 250), outline=_shade(skin, 0.55), width=2)
        iris = min(eh, 8)
        d.ellipse((ex + gaze - iris, eye_y - iris, ex + gaze + iris, eye_y + iris), fill=(70, 50, 40))
        d.ellipse((ex + gaze - iris / 2, eye_y - iris / 2, ex + gaze + iris / 2, eye_y + iris / 2), fill=(15, 10, 10))
        if lively:
            d.ellipse((ex + gaze + 2, eye_y - 6, ex + gaze + 6, eye_y - 2), fill=(255, 255, 255))
            d.arc((ex - 16, eye_y - 40, ex + 16, eye_y - 12), 200, 340, fill=brow_colour, width=brow_w)
        else:
            d.rectangle((ex - ew - 1, eye_y - eh - 6, ex + ew + 1, eye_y - 1), fill=skin)  # heavy lids
            d.line((ex - ew - 1, eye_y - 1, ex + ew + 1, eye_y - 1), fill=_shade(skin, 0.5), width=2)
            d.line((ex - 15, eye_y - 13, ex + 15, eye_y - 13), fill=brow_colour, width=brow_w)
        if female:  # lashes
            for k in (-1, 0, 1):
                x0 = ex + k * ew * 0.6
                y0 = eye_y - (eh if lively else 1)
                d.line((x0, y0, x0 + k * 2 + sx * 2, y0 - 5), fill=(20, 15, 15), width=2)

    # nose
    d.line((cx + 2, cy + 2, cx - 4, cy + 22, cx + 5, cy + 24), fill=_shade(skin, 0.7), width=2)

    # mouth: expression (nuisance) and lip colour (gender cue)
    lip = (192, 60, 80) if female else _shade(skin, 0.6)
    my = cy + ry * 0.55
    if nz.expression == "smile":
        d.chord((cx - 20, my - 12, cx + 20, my + 10), 10, 170, fill=(120, 30, 40), outline=lip, width=3)
    elif nz.expression == "open":
        d.ellipse((cx - 10, my - 5, cx + 10, my + 13), fill=(90, 20, 30), outline=lip, width=3)
    else:
        d.line((cx - 16, my + 2, cx + 16, my + 2), fill=lip, width=4 if female else 3)

    # facial hair (male free-ish cue of gender)
    beard = _shade(hair, 0.8)
    if idt.facial_hair == 1:  # stubble
        for k in range(60):
            a = np.pi * (0.15 + 0.7 * ((k * 37) % 60) / 60)
            r = 0.78 + 0.2 * ((k * 17) % 10) / 10
            x, y = cx + np.cos(a) * rx * r, cy + 12 + np.sin(a) * (ry - 10) * r
            d.point((x, y), fill=beard)
    if idt.facial_hair in (2, 3):
        d.polygon([(cx - 20, my - 2), (cx - 4, my - 9), (cx + 4, my - 9), (cx + 20, my - 2), (cx, my - 4)], fill=beard)
    if idt.facial_hair == 3:
        d.chord((cx - rx + 2, cy + 6, cx + rx - 2, cy + ry + 8), 20, 160, fill=beard)
        d.ellipse((cx - 12, my - 4, cx + 12, my + 8), fill=(90, 20, 30) if nz.expression != "neutral" else beard)


def contact_sheet(rows: list[tuple[str, list[Image.Image]]], thumb: int = 96) -> Image.Image:
    """A grid with one labelled row per speaker."""
    label_w = 150
    cols = max(len(images) for _, images in rows)
    sheet = Image.new("RGB", (label_w + cols * thumb, len(rows) * thumb), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        for line_no, text in enumerate(label.split("\n")):
            draw.text((6, r * thumb + 8 + 13 * line_no), text, fill=(0, 0, 0))
        for c, img in enumerate(images):
            sheet.paste(img.resize((thumb, thumb), Image.LANCZOS), (label_w + c * thumb, r * thumb))
    return sheet


def render_in_workers(fn: Callable, jobs: Sequence, workers: int = 2, desc: str = "render", unit: str = "job",
                      progress: bool = True) -> list:
    """[fn(job) for job in jobs], in `workers` worker processes (1: in this one), with a progress
    bar. PIL drawing is single-threaded, so rendering scales with processes; fn must be a module-level function."""
    bar = tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress)
    results = []
    if workers > 1:
        with processes.context().Pool(workers) as pool:
            for result in pool.imap(fn, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
                results.append(result)
                bar.update()
    else:
        for job in jobs:
            results.append(fn(job))
            bar.update()
    bar.close()
    return results
