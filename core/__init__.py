"""XFaVoT core: models, audio and image front ends, checkpoints and the inference engine (no Qt)."""
from .errors import UserError

__all__ = ["UserError"]
