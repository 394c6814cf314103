"""Where the app keeps its settings and files.

QSettings holds last folders, devices, the active model and the window layout. User models and
training runs live in the app data folder. XFAVOT_HOME moves both (tests, portable installs).
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

ORGANIZATION, APPLICATION = "XFaVoT", "XFaVoT Studio"


def data_dir() -> Path:
    home = os.environ.get("XFAVOT_HOME")
    path = Path(home) if home else Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation))
    path.mkdir(parents=True, exist_ok=True)
    return path


def app_settings() -> QSettings:
    if os.environ.get("XFAVOT_HOME"):
        return QSettings(str(data_dir() / "settings.ini"), QSettings.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def get(settings: QSettings, key: str, default, kind=None):
    """A typed value: QSettings returns strings from INI files, so convert here, once."""
    value = settings.value(key, default)
    kind = kind or type(default)
    if value is None:
        return default
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return kind(value)
    except (TypeError, ValueError):
        return default
