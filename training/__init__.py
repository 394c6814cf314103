"""XFaVoT training: data, losses and the trainer (see the training issue)."""
