"""XFaVoT Studio: the desktop app (PySide6) and the `xfavot` command line."""
__version__ = "0.1.0"
