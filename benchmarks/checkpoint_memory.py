"""Peak RSS of importing and of generating from a real-shaped checkpoint, against transformers.

A synthetic Llama-shape checkpoint of about 1B parameters is written as Hugging Face
publishes one: bf16, sharded safetensors with ``model.safetensors.index.json`` (random
N(0, 0.02) weights; the values do not matter for memory). Each measurement runs in its
own process and reports its ``VmHWM`` (peak resident set, mapped file pages included):

- ``scratchlm import-hf``: meta-device model, memory-mapped shards, streamed write;
- ``scratchlm generate`` (8 greedy tokens) from the imported checkpoint, its bf16 kept;
- ``transformers`` ``AutoModelForCausalLM.from_pretrained(low_cpu_mem_usage=True,
  dtype=bfloat16)``, then the same 8 greedy tokens.

Ratios are to the size of the weight files (target from issue 21: <= 1.25x).
Usage: ``python benchmarks/checkpoint_memory.py [--layers 20] [--keep DIR]``; results go to
``results/<date>-checkpoint-memory.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Llama-shape: TinyLlama-like widths, ~1.0B parameters with 20 layers.
SHAPE = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
}
SHARD_BYTES = 600_000_000

PEAK = """
import sys
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""


def write_checkpoint(directory: Path, layers: int) -> int:
    """A bf16 sharded Llama checkpoint in the Hugging Face layout; returns the weight bytes."""
    import torch

    from llm_model.safetensors_io import write_safetensors

    h, f, kv = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["num_key_value_heads"]
    head_dim = h // SHAPE["num_attention_heads"]
    shapes = {"model.embed_tokens.weight": (SHAPE["vocab_size"], h), "model.norm.weight": (h,)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.k_proj.weight": (kv * head_dim, h),
            p + "self_attn.v_proj.weight": (kv * head_dim, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (f, h),
            p + "mlp.up_proj.weight": (f, h),
            p + "mlp.down_proj.weight": (h, f),
        }
    shapes["lm_head.weight"] = (SHAPE["vocab_size"], h)
    directory.mkdir(parents=True)
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = 2 * int(torch.Size(shape).numel())
        if size and size + nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    weight_map = {}
    total = 0
    for k, names in enumerate(shards, 1):
        file = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name in names:
            shape = shapes[name]
            tensors[name] = (
                torch.ones(shape, dtype=torch.bfloat16)
                if len(shape) == 1
                else (torch.randn(shape) * 0.02).to(torch.bfloat16)
            )
            weight_map[name] = file
        write_safetensors(directory / file, tensors, {"format": "pt"})
        total += (directory / file).stat().st_size
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **SHAPE,
        "num_hidden_layers": layers,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    (directory / "config.json").write_text(json.dumps(config))
    return total


def measure(code: str) -> dict[str, float]:
    """Run ``code`` in a fresh Python; it prints a JSON object (with ``peak_mb``) last."""
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "SCRATCHLM_PLUGINS": ""}
    done = subprocess.run(
        [sys.executable, "-c", PEAK + code], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(f"measurement failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=20, help="Llama layers (20: about 1.0B parameters)")
    parser.add_argument("--keep", type=Path, help="Write the checkpoints here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="scratchlm-ckpt-mem-"))
    src, out = root / "hf", root / "imported"
    try:
        file_bytes = write_checkpoint(src, args.layers)
        file_mb = file_bytes / 2**20
        rows = {
            "scratchlm import-hf": measure(
                "from llm_core.cli import main\n"
                f"code = main(['import-hf', {str(src)!r}, {str(out)!r}])\n"
                "import json; print(json.dumps({'peak_mb': peak_mb(), 'code': code}))"
            ),
            "scratchlm generate (bf16)": measure(
                "from llm_core.cli import main\n"
                f"argv = ['generate', {str(out)!r}, 'Hello', '--max-new-tokens', '8', '--tokenizer', 'bpe']\n"
                "code = main(argv)\n"
                "import json; print(json.dumps({'peak_mb': peak_mb(), 'code': code}))"
            ),
            "transformers from_pretrained (low_cpu_mem_usage) + generate": measure(
                "import torch, transformers, json\n"
                "model = transformers.AutoModelForCausalLM.from_pretrained(\n"
                f"    {str(src)!r}, low_cpu_mem_usage=True, dtype=torch.bfloat16)\n"
                "loaded = peak_mb()\n"
                "ids = torch.tensor([[1, 15043, 3186]])\n"
                "with torch.no_grad():\n"
                "    mask = torch.ones_like(ids)\n"
                "    model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False)\n"
                "print(json.dumps({'peak_mb': peak_mb(), 'loaded_mb': loaded}))"
            ),
        }
        params = file_bytes // 2
        report = {
            "date": datetime.date.today().isoformat(),
            "parameters": params,
            "weight_files_mb": round(file_mb, 1),
            "rows": {
                name: {**row, "ratio_to_files": round(row["peak_mb"] / file_mb, 3)}
                for name, row in rows.items()
            },
        }
        stem = HERE / "results" / f"{report['date']}-checkpoint-memory"
        stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        lines = [
            f"# Checkpoint memory: {params / 1e9:.2f}B-parameter Llama shape, bf16, "
            f"{len(list(src.glob('model-*.safetensors')))} shards, {file_mb:,.0f} MB of weights",
            "",
            "| what | peak RSS (MB) | ratio to the weight files | seconds |",
            "|---|---:|---:|---:|",
        ]
        for name, row in report["rows"].items():
            lines.append(
                f"| {name} | {row['peak_mb']:,.0f} | {row['ratio_to_files']:.2f}x | {row['seconds']:.1f} |"
            )
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
