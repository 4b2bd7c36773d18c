"""Serving: `scratchlm serve` a checkpoint, talk to it with the Ollama and OpenAI clients, shut it down.

    python examples/ch07_serve.py                                  # a random tiny GPT (what CI runs)
    python examples/ch07_serve.py --checkpoint runs/instruct/lora-merged

The script starts ``scratchlm serve CHECKPOINT --port PORT`` as a child process on a free
loopback port, waits for ``GET /api/tags``, then asks it through the three ways clients talk
to Ollama-compatible servers: plain HTTP (httpx), the ``ollama`` client (chat and streamed
generation) and the ``openai`` client (``/v1`` completions and streamed chat). Finally it sends
Ctrl-C (SIGINT): open requests end with their final chunk and the server exits with status 0.
Needs ``llm-eval[serve,judge]``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import ollama
import torch
from openai import OpenAI

from llm_model import build_model, save_pretrained


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, server: subprocess.Popen[str], timeout: float = 120.0) -> None:
    """Poll ``url`` until it answers, failing early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: scratchlm serve exited with status {server.returncode}")
        try:
            httpx.get(url, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"error: no answer from {url} within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory [default: a random tiny GPT]")
    parser.add_argument("--name", default="tiny-gpt", help="the model name clients use")
    args = parser.parse_args()

    checkpoint = args.checkpoint
    if checkpoint is None:
        torch.manual_seed(0)
        scratch = tempfile.TemporaryDirectory(prefix="serve-")  # removed at exit
        checkpoint = Path(scratch.name) / "tiny-gpt"
        save_pretrained(build_model("gpt2", preset="tiny"), checkpoint, tokenizer="gpt2")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # `python -m llm_core.cli` is the `scratchlm` command, run with this interpreter.
    command = [sys.executable, "-m", "llm_core.cli", "serve", str(checkpoint), "--port", str(port)]
    command += ["--name", args.name]
    print("$ scratchlm", " ".join(command[3:]))
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(f"{base}/api/tags", server)
        print("models:", [m["name"] for m in httpx.get(f"{base}/api/tags").json()["models"]])

        # Plain HTTP, Ollama's /api/generate without streaming.
        body = {"model": args.name, "prompt": "Every effort moves you", "stream": False}
        body["options"] = {"temperature": 0, "num_predict": 10}
        reply = httpx.post(f"{base}/api/generate", json=body, timeout=60).json()
        print(f"httpx /api/generate: {reply['response']!r} ({reply['done_reason']})")

        # The ollama client: chat (the Alpaca template), then streamed generation.
        client = ollama.Client(host=base)
        chat = client.chat(
            model=args.name,
            messages=[{"role": "user", "content": "Name a color."}],
            options={"num_predict": 10},
        )
        print(f"ollama chat: {chat.message.content!r}")
        pieces = [
            part.response
            for part in client.generate(
                model=args.name, prompt="Every effort moves you", stream=True, options={"num_predict": 10}
            )
        ]
        print(f"ollama streamed {len(pieces)} pieces: {''.join(pieces)!r}")

        # The openai client against /v1: a completion, then a streamed chat completion.
        openai = OpenAI(base_url=f"{base}/v1", api_key="unused")
        completion = openai.completions.create(
            model=args.name, prompt="Every effort moves you", max_tokens=10
        )
        print(f"openai completion: {completion.choices[0].text!r} ({completion.choices[0].finish_reason})")
        stream = openai.chat.completions.create(
            model=args.name,
            messages=[{"role": "user", "content": "Name a color."}],
            max_tokens=10,
            stream=True,
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        print(f"openai streamed chat: {text!r}")

        # Errors look like the real servers': an unknown model is a 404.
        missing = httpx.post(f"{base}/api/generate", json={"model": "nope", "prompt": "hi"}, timeout=60)
        print(f"unknown model: {missing.status_code} {missing.json()['error']}")
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: end open requests cleanly, then exit 0
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    # A clean shutdown exits 0; anything else is a failure.
    print(f"server exited with status {server.returncode}; last log line: {output.strip().splitlines()[-1]}")
    if server.returncode != 0:
        raise SystemExit(output[-2000:])


if __name__ == "__main__":
    main()
