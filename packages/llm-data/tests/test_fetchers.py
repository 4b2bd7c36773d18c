"""fetch(): tested against a local http.server only (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from llm_core.errors import ConfigError, DataError
from llm_data import Source, fetch
from llm_data.fetchers import cache_dir

PAYLOAD = b"hello scratchlm\n" * 100


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAYLOAD
        if self.path == "/archive.zip":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("inner.txt", PAYLOAD)
            body = buffer.getvalue()
        if self.path == "/missing":
            self.send_error(404)
            return
        self.send_response(200)
        length = len(body) + (500 if self.path == "/short" else 0)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)  # /short: closes before the announced length

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_good_download_is_cached(server, tmp_path) -> None:
    path = fetch(Source("data.txt", f"{server}/data.txt", SHA), directory=tmp_path)
    assert path == tmp_path / "data.txt" and path.read_bytes() == PAYLOAD
    # cached: no network needed the second time
    assert fetch(Source("data.txt", "http://127.0.0.1:9/unreachable", SHA), directory=tmp_path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_zip_member(server, tmp_path) -> None:
    path = fetch(Source("inner.txt", f"{server}/archive.zip", SHA, member="inner.txt"), directory=tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_no_file(server, tmp_path) -> None:
    with pytest.raises(DataError, match=f"sha256 {SHA} does not match the expected 0000"):
        fetch(Source("data.txt", f"{server}/data.txt", "0" * 64), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download(server, tmp_path) -> None:
    with pytest.raises(DataError, match="download interrupted"):
        fetch(Source("data.txt", f"{server}/short", SHA), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_http_error(server, tmp_path) -> None:
    with pytest.raises(DataError, match=r"download failed.*404"):
        fetch(Source("data.txt", f"{server}/missing", SHA), directory=tmp_path)


def test_cache_dir_from_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SCRATCHLM_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("SCRATCHLM_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "scratchlm")


@pytest.mark.parametrize("filename", ["../escape.txt", "/etc/escape.txt", "sub/file.txt", "..", ""])
def test_a_source_filename_cannot_leave_the_cache_directory(filename) -> None:
    with pytest.raises(ConfigError, match="expected a plain file name"):
        Source(filename, "http://127.0.0.1:9/x", SHA)


def test_a_mirror_folder_replaces_the_network(monkeypatch, tmp_path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "inner.txt").write_bytes(PAYLOAD)  # a zip source's member, already extracted
    monkeypatch.setenv("SCRATCHLM_DATA_MIRROR", str(mirror))
    source = Source("inner.txt", "http://127.0.0.1:9/unreachable.zip", SHA, member="inner.txt")
    path = fetch(source, directory=tmp_path / "out")
    assert path.read_bytes() == PAYLOAD


def test_a_mirror_copy_with_the_wrong_sha256_names_the_copy(monkeypatch, tmp_path) -> None:
    (tmp_path / "f.txt").write_bytes(b"not it")
    monkeypatch.setenv("SCRATCHLM_DATA_MIRROR", str(tmp_path))
    with pytest.raises(DataError, match=r"f\.txt: sha256 .* does not match"):
        fetch(Source("f.txt", "http://127.0.0.1:9/f.txt", SHA), directory=tmp_path / "out")
    assert not (tmp_path / "out" / "f.txt").exists()


def test_a_mirror_without_the_file_is_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SCRATCHLM_DATA_MIRROR", str(tmp_path))
    with pytest.raises(DataError, match="SCRATCHLM_DATA_MIRROR must name a folder holding the files"):
        fetch(Source("f.txt", "http://127.0.0.1:9/f.txt", SHA), directory=tmp_path / "out")


def test_download_command_fetches_the_books_files_from_a_mirror(monkeypatch, tmp_path) -> None:
    from llm_core.cli import main
    from llm_data.fetchers import SOURCES

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    payloads = {}
    for name, source in SOURCES.items():
        payloads[name] = f"a stand-in for {source.filename}\n".encode()
        (mirror / source.filename).write_bytes(payloads[name])
        monkeypatch.setitem(
            SOURCES, name, Source(source.filename, source.url, hashlib.sha256(payloads[name]).hexdigest())
        )
    monkeypatch.setenv("SCRATCHLM_DATA_MIRROR", str(mirror))
    assert main(["download", "--out", str(tmp_path / "data")]) == 0
    for name, source in SOURCES.items():
        assert (tmp_path / "data" / source.filename).read_bytes() == payloads[name]
    assert main(["download", "nope", "--out", str(tmp_path / "data")]) == 2
