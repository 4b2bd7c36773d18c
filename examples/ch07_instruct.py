"""Chapter 7 and appendix E: instruction finetuning, then the same with LoRA adapters, merged for serving.

    python examples/ch07_instruct.py --base runs/gpt2-355m --out runs/instruct      # the book: GPT-2 355M
    python examples/ch07_instruct.py --max-steps 5 --test-limit 2                  # what CI runs (tiny)

``--base`` is a checkpoint directory (``scratchlm import-hf openai-community/gpt2-medium
runs/gpt2-355m`` gives the book's model) or a preset name for a random model (default
``tiny``: it shows every step in seconds but learns nothing useful). The instruction data
(``instruction-data.json``) is read from ``--data-dir``, else ``$SCRATCHLM_TEST_DATA``, else
``../shared/data`` beside the repository; without any of them it is downloaded once and cached.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from book_data import data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="tiny", help="checkpoint directory or preset name [default: tiny]")
    parser.add_argument("--out", type=Path, help="where the runs go [default: a temporary directory]")
    parser.add_argument("--data-dir", type=Path, help="folder holding instruction-data.json (see above)")
    parser.add_argument("--epochs", type=float, default=2, help="the book's 2 epochs")
    parser.add_argument("--max-steps", type=int, help="optimizer steps per run (instead of --epochs)")
    parser.add_argument("--lr", type=float, default=5e-5, help="the book's 5e-5 (LoRA uses 10x)")
    parser.add_argument("--test-limit", type=int, default=10, help="test instructions to answer")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    from llm_data import format_input
    from llm_finetune import (
        InstructConfig,
        LoRAConfig,
        finetune_instructions,
        load_finetuned,
        load_instruction_data,
    )
    from llm_model import load_pretrained

    scratch = tempfile.TemporaryDirectory(prefix="instruct-")  # removed at exit: pass --out to keep
    out = (args.out or Path(scratch.name)).absolute()
    root = data_dir(args.data_dir)
    splits = load_instruction_data("instructions", root=root)
    print({split: len(records) for split, records in splits.items()})  # train 935, test 110, val 55
    print(format_input(splits["train"][0]) + "\n\n### Response:\n" + splits["train"][0]["output"])

    # Every setting is a field of InstructConfig (what `scratchlm finetune instruct --config` reads);
    # the ones left out keep the book's defaults.
    common = InstructConfig(
        model=args.base,
        data="instructions",
        data_dir=str(root),
        out=str(out / "sft"),
        epochs=None if args.max_steps else args.epochs,
        max_steps=args.max_steps,
        lr=args.lr,
        test_limit=args.test_limit,
        max_new_tokens=args.max_new_tokens,
        eval_every=min(50, args.max_steps or 50),
        progress=False,
    )
    # 1. Full finetuning: every weight trains (the book's section 7.6).
    sft = finetune_instructions(common)
    # 2. LoRA (appendix E): the base is frozen, rank-8 adapters on every linear layer of the blocks train.
    lora_config = replace(
        common, out=str(out / "lora"), trainable="lora", lora=LoRAConfig(rank=8, alpha=16), lr=args.lr * 10
    )
    lora = finetune_instructions(lora_config)
    share = lora.trainable_parameters / sft.trainable_parameters
    print(f"trainable parameters: all {sft.trainable_parameters:,}, LoRA {lora.trainable_parameters:,}")
    print(
        f"LoRA trains {share:.2%} of the weights; val loss {lora.initial_val_loss:.3f} -> {lora.val_loss:.3f}"
    )
    print(f"full finetuning: val loss {sft.initial_val_loss:.3f} -> {sft.val_loss:.3f}")

    # 3. The run also merged the adapters into plain weights (RUN_DIR/merged): same outputs, and a
    #    checkpoint every command loads (`serve`, `generate` and `evaluate` read plain checkpoints).
    adapted = load_finetuned(lora.final_dir).model
    merged = load_pretrained(lora.run_dir / "merged")
    probe = torch.randint(0, adapted.config.vocab_size, (1, 16))
    with torch.no_grad():
        gap = (adapted(probe) - merged(probe)).abs().max().item()
    print("max |logits LoRA - merged|:", gap)
    assert gap < 1e-4
    print("merged checkpoint:", lora.run_dir / "merged")

    # 4. The test answers, ready for the judge (next page): the book's instruction-data-with-response.json.
    if sft.responses_file is not None:
        first = json.loads(sft.responses_file.read_text(encoding="utf-8"))[0]
        print(f"instruction: {first['instruction']!r}")
        print(f"  reference: {first['output']!r}")
        print(f"  model:     {first['model_response']!r}")
        print(f"responses: {sft.responses_file}")
        print(
            f"try: scratchlm judge {sft.responses_file} --judge-model llama3   (with `ollama serve` running)"
        )
    if args.out is None:
        print("note: the run is in a temporary directory, removed on exit; pass --out DIR to keep it")


if __name__ == "__main__":
    main()
