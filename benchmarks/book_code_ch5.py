"""The book's chapter-5 pretraining code, written plainly: the peer of ``book_ch5.py``.

What section 5.2 of "Build a Large Language Model (From Scratch)" runs, as its listings
do it: the chapter-4 model (``textbook.GPTModel``), ``GPTDatasetV1`` windows (stride 256)
in a torch ``DataLoader`` (batch 2, shuffled, last partial batch dropped), a 90/10 split
by characters, ``torch.optim.AdamW(lr=4e-4, weight_decay=0.1)``, ``train_model_simple``
(evaluate every 5 updates on 5 batches of each loader) and, after every epoch, the book's
50-token greedy sample without a KV cache. Only the tokenizer comes from scratchlm: the
same GPT-2 encoding built offline (tiktoken would download it).

It prints the book's lines ("Ep 1 (Step 000000): Train loss 9.781, Val loss 9.933") and
writes the losses and wall times (total, and without the per-epoch samples, which
``scratchlm pretrain`` does not draw in ``examples/configs/book-ch5.toml``) as JSON:

    python benchmarks/book_code_ch5.py --data ../shared/data/the-verdict.txt --out /tmp/book-code.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textbook import GPTModel

from llm_data import get_tokenizer

GPT_CONFIG_124M = {
    "vocab_size": 50257,
    "context_length": 256,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


class GPTDatasetV1(Dataset):
    """Input/target windows of ``max_length`` tokens, ``stride`` apart (chapter 2)."""

    def __init__(self, txt: str, tokenizer: Any, max_length: int, stride: int) -> None:
        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        self.input_ids = [
            torch.tensor(token_ids[i : i + max_length]) for i in range(0, len(token_ids) - max_length, stride)
        ]
        self.target_ids = [
            torch.tensor(token_ids[i + 1 : i + max_length + 1])
            for i in range(0, len(token_ids) - max_length, stride)
        ]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(txt: str, tokenizer: Any, *, shuffle: bool, drop_last: bool) -> DataLoader:
    dataset = GPTDatasetV1(txt, tokenizer, max_length=256, stride=256)
    return DataLoader(dataset, batch_size=2, shuffle=shuffle, drop_last=drop_last, num_workers=0)


def calc_loss_batch(inputs: torch.Tensor, targets: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    logits = model(inputs)  # (b, t, vocab)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def calc_loss_loader(loader: DataLoader, model: torch.nn.Module, num_batches: int) -> float:
    num_batches = min(num_batches, len(loader))
    total = 0.0
    for i, (inputs, targets) in enumerate(loader):
        if i >= num_batches:
            break
        total += calc_loss_batch(inputs, targets, model).item()
    return total / num_batches


def generate_and_print_sample(model: GPTModel, tokenizer: Any, start_context: str) -> str:
    """The book's per-epoch sample: 50 greedy tokens, the whole context recomputed each time."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    idx = torch.tensor(tokenizer.encode(start_context)).unsqueeze(0)  # (1, t)
    with torch.no_grad():
        for _ in range(50):
            logits = model(idx[:, -context_size:])[:, -1, :]  # (1, vocab)
            idx = torch.cat((idx, torch.argmax(logits, dim=-1, keepdim=True)), dim=1)
    text = tokenizer.decode(idx.squeeze(0).tolist()).replace("\n", " ")
    print(text, flush=True)
    model.train()
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="the-verdict.txt")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, help="write the losses and timings here (JSON)")
    options = parser.parse_args()
    started = time.perf_counter()
    tokenizer = get_tokenizer("gpt2")
    text_data = options.data.read_text(encoding="utf-8")
    split_idx = int(0.90 * len(text_data))
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text_data[:split_idx], tokenizer, shuffle=True, drop_last=True)
    val_loader = create_dataloader_v1(text_data[split_idx:], tokenizer, shuffle=False, drop_last=False)

    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    evals: list[dict[str, float]] = []
    sample_seconds = 0.0
    global_step = -1
    samples = []
    for epoch in range(options.epochs):
        model.train()
        for inputs, targets in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(inputs, targets, model)
            loss.backward()
            optimizer.step()
            global_step += 1
            if global_step % 5 == 0:
                model.eval()
                with torch.no_grad():
                    train_loss = calc_loss_loader(train_loader, model, 5)
                    val_loss = calc_loss_loader(val_loader, model, 5)
                model.train()
                elapsed = time.perf_counter() - started
                row = {"step": global_step, "train": train_loss, "val": val_loss, "elapsed_s": elapsed}
                evals.append(row)
                print(
                    f"Ep {epoch + 1} (Step {global_step:06d}): "
                    f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}",
                    flush=True,
                )
        sample_started = time.perf_counter()
        samples.append(generate_and_print_sample(model, tokenizer, "Every effort moves you"))
        sample_seconds += time.perf_counter() - sample_started
    wall = time.perf_counter() - started
    result = {
        "wall_seconds": wall,
        "sample_seconds": sample_seconds,
        "wall_seconds_without_samples": wall - sample_seconds,
        "steps": global_step + 1,
        "min_val": min(r["val"] for r in evals),
        "evals": evals,
        "last_sample": samples[-1],
    }
    print(f"{wall:.0f} s ({sample_seconds:.0f} s of them in the per-epoch samples)")
    if options.out:
        options.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
