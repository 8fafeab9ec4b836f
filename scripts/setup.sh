#!/usr/bin/env bash
# Install sam2_ros and its test/parity dependencies into the current Python (3.10+).
#
# Order matters: torch==2.13.0 first and explicitly (any other torch spec pulls gigabytes
# of CUDA wheels on CPU machines), then our package, then Meta's sam2==1.1.0 *without*
# dependencies and without build isolation (its sdist would otherwise pull a second,
# CUDA torch into its build environment, and it would require torchvision, whose wheel
# breaks the CPU torch; its video predictor does not need it). SAM2_BUILD_CUDA=0 skips
# Meta's optional CUDA extension (hole filling), which we implement ourselves.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

pip_install torch==2.13.0
# colcon-core (test extra) needs setuptools < 80; venvs ship an old one whose distutils breaks colcon.
pip_install --upgrade "setuptools>=71,<80" wheel
pip_install -e ".[onnx,test]"
# Reference implementation for the parity tests (test-only; the runtime never imports it).
pip_install hydra-core iopath tqdm pillow
SAM2_BUILD_CUDA=0 pip_install --no-deps --no-build-isolation sam2==1.1.0
# EdgeTAM reference (Meta's code as edgetam-dimos; test-only). Its module is also named `sam2`,
# so it goes into its own folder, never on the main sys.path: tests/edgetam_reference.py runs it
# in a subprocess with that folder first and a torchvision stand-in. timm provides its RepViT
# backbone; --no-deps keeps timm from pulling torchvision. Both are pure Python; hydra-core,
# iopath, pyyaml and safetensors (timm) are installed above.
pip_install --no-deps --upgrade --target .cache/edgetam_ref edgetam-dimos==1.0.1 "timm==1.0.31"
"$PY" - <<'PY'
import importlib.util, torch
assert importlib.util.find_spec("torchvision") is None, "torchvision must not be installed (breaks CPU torch)"
print(f"sam2_ros environment ready: torch {torch.__version__}")
PY
