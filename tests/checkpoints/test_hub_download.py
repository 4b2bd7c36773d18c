"""import-hf REPO_ID with the real huggingface_hub client, against a local server speaking the hub's file API.

The server (``HF_ENDPOINT``) answers the three kinds of request ``snapshot_download``
makes: the repository's revision (``/api/models/REPO/revision/REV``), its file tree
(``/api/models/REPO/tree/REV``) and each file (``/REPO/resolve/REV/FILE``, HEAD and
GET). It serves a synthetic sharded Llama repository, and the same repository with
one shard missing (the index still names it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("huggingface_hub")
transformers = pytest.importorskip("transformers")

SHA = "0123456789abcdef0123456789abcdef01234567"


def make_handler(repos: dict[str, Path]) -> type[BaseHTTPRequestHandler]:
    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _json(self, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _files(self, repo: str) -> list[Path]:
            return sorted(p for p in repos[repo].iterdir() if p.is_file())

        def _route(self, head: bool) -> None:
            path = self.path.split("?")[0]
            for repo in repos:
                if path.startswith(f"/api/models/{repo}/revision/"):
                    siblings = [{"rfilename": p.name} for p in self._files(repo)]
                    return self._json({"id": repo, "modelId": repo, "sha": SHA, "siblings": siblings})
                if path.startswith(f"/api/models/{repo}/tree/"):
                    return self._json(
                        [
                            {"type": "file", "path": p.name, "size": p.stat().st_size, "oid": _oid(p)}
                            for p in self._files(repo)
                        ]
                    )
                prefix = f"/{repo}/resolve/"
                if path.startswith(prefix):
                    name = path[len(prefix) :].split("/", 1)[1]
                    file = repos[repo] / name
                    if not file.is_file():
                        break
                    data = file.read_bytes()
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", SHA)
                    self.send_header("ETag", f'"{_oid(file)}"')
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(data)
                    return None
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    return Hub


def _oid(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Path]]]:
    import torch

    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
    whole, broken = root / "tiny-llama", root / "tiny-llama-broken"
    model.save_pretrained(whole, max_shard_size="20KB")
    model.save_pretrained(broken, max_shard_size="20KB")
    sorted(broken.glob("model-*-of-*.safetensors"))[0].unlink()
    repos = {"scratchlm/tiny-llama": whole, "scratchlm/tiny-llama-broken": broken}
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(repos))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", repos
    finally:
        server.shutdown()


def import_hf(endpoint: str, repo: str, out: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(cache),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "SCRATCHLM_PLUGINS": "",
    }
    env.pop("HF_HUB_OFFLINE", None)
    argv = ["import-hf", repo, "--out", str(out)]
    code = f"import sys; from llm_core.cli import main; sys.exit(main({argv!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_a_sharded_repo_downloads_and_imports(hub: tuple[str, dict[str, Path]], tmp_path: Path) -> None:
    import torch

    from llm_model import import_hf as import_dir
    from llm_model import load_pretrained

    endpoint, repos = hub
    done = import_hf(endpoint, "scratchlm/tiny-llama", tmp_path / "out", tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    ours = load_pretrained(tmp_path / "out")
    reference = import_dir(repos["scratchlm/tiny-llama"])
    assert ours.tok_emb.weight.dtype == torch.bfloat16
    theirs = reference.state_dict()
    assert all(torch.equal(tensor, theirs[name]) for name, tensor in ours.state_dict().items())
    downloaded = {p.name for p in (tmp_path / "cache").rglob("model-*.safetensors")}
    assert len(downloaded) >= 2  # every shard came over HTTP


def test_a_repo_missing_a_shard_is_one_line_and_nothing_written(
    hub: tuple[str, dict[str, Path]], tmp_path: Path
) -> None:
    endpoint, _ = hub
    done = import_hf(endpoint, "scratchlm/tiny-llama-broken", tmp_path / "out", tmp_path / "cache")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "names 1 shard(s) that are not in" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
