"""A deterministic pool of distinct, speakable English sentences for the synthetic corpus.

Sentences come from a few templates over common words (all in CMUdict, so the pocketsphinx
WER check has pronunciations for them); `sentence_pool(n, seed)` returns n distinct ones.
"""
from __future__ import annotations

import numpy as np

NAMES = ["Anna", "Peter", "Maria", "David", "Laura", "Simon", "Emma", "Oliver", "Grace", "Thomas", "Lucy", "Henry"]
ADJECTIVES = ["small", "bright", "quiet", "heavy", "golden", "narrow", "friendly", "ancient", "early", "gentle",
              "sudden", "curious", "empty", "careful", "simple", "warm", "distant", "busy"]
NOUNS = ["garden", "river", "window", "market", "letter", "kitchen", "bridge", "village", "teacher", "camera",
         "island", "station", "pencil", "basket", "mountain", "doctor", "ticket", "morning", "engine", "picture",
         "farmer", "painter", "castle", "forest"]
VERBS_PAST = ["found", "painted", "carried", "opened", "cleaned", "watched", "followed", "visited", "borrowed",
              "repaired", "described", "remembered", "noticed", "ordered", "moved", "explained"]
PLACES = ["near the old bridge", "after the long winter", "before the morning train", "behind the yellow house",
          "during the quiet evening", "at the edge of town", "under the tall trees", "across the busy street",
          "in the middle of summer", "beside the open window"]
COLOURS = ["red", "blue", "green", "white", "black", "brown"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"]
FEELINGS = ["happy", "tired", "surprised", "worried", "proud", "calm", "hungry", "ready"]


def _sentence(rng: np.random.Generator) -> str:
    pick = lambda words: words[rng.integers(len(words))]  # noqa: E731
    template = rng.integers(6)
    if template == 0:
        return f"{pick(NAMES)} {pick(VERBS_PAST)} the {pick(ADJECTIVES)} {pick(NOUNS)} {pick(PLACES)}."
    if template == 1:
        return f"The {pick(NOUNS)} was {pick(ADJECTIVES)} and the {pick(NOUNS)} looked {pick(ADJECTIVES)}."
    if template == 2:
        return f"Please bring {pick(NUMBERS)} {pick(COLOURS)} {pick(NOUNS)}s to the {pick(NOUNS)}."
    if template == 3:
        return f"We felt {pick(FEELINGS)} when the {pick(NOUNS)} {pick(VERBS_PAST)} the {pick(NOUNS)}."
    if template == 4:
        return f"Is the {pick(ADJECTIVES)} {pick(NOUNS)} still {pick(PLACES)}?"
    return f"{pick(NAMES)} and {pick(NAMES)} {pick(VERBS_PAST)} a {pick(COLOURS)} {pick(NOUNS)} {pick(PLACES)}."


def sentence_pool(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(_sentence(rng), None)
    return list(seen)
