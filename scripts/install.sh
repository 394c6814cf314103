#!/usr/bin/env bash
# Installs everything XFaVoT Studio needs on a Debian/Ubuntu machine: system packages (apt) and
# a virtual environment in .venv with the project and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv
  # audio: PortAudio for recording/playback, libsndfile for soundfile, speech synthesizers + sox
  libportaudio2 libsndfile1 espeak-ng flite sox libsox-fmt-all
  # Festival and three of its voices: the synthetic corpus's third speech engine
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  # Qt 6 (PySide6) runtime libraries; OpenCV (pulled in by face-alignment) needs libGL/glib
  libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0 libxcb-image0
  libxcb-xinerama0 libxcb-randr0 libxcb-xfixes0
)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "apt-get not found: install the equivalents of ${APT_PACKAGES[*]} yourself" >&2
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip "setuptools<82" wheel  # torch 2.11 requires setuptools<82
# parallel-wavegan 0.6.1's setup.py imports pip, so it must build without isolation.
$PIP install -q --no-build-isolation "parallel-wavegan==0.6.1"
$PIP install -q -e ".[test,eval]"
# Resemblyzer (speaker similarity in `xfavot eval`) lists webrtcvad, an sdist that needs a C
# compiler; the `eval` extra brings the prebuilt webrtcvad-wheels instead, so skip its deps.
$PIP install -q --no-deps "resemblyzer==0.1.4"
# compile librosa's numba kernels (YIN, pitch shift) once here (~25 s) rather than on the app's first start
.venv/bin/python -c "import librosa.core.pitch, librosa.effects"
echo "XFaVoT Studio is installed in .venv"
