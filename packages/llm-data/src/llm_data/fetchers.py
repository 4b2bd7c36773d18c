"""Remote files with a pinned sha256, cached under ``$SCRATCHLM_CACHE`` (default ``~/.cache/scratchlm``).

:func:`fetch` downloads once into the cache through a temporary file (atomic rename),
checks the size announced by the server and the sha256, and never leaves a bad file
in the cache. Pass a local path (``root=`` on the datasets) to skip the network, or set
``$SCRATCHLM_DATA_MIRROR`` to a folder of local copies (the files under their
``filename``, a zip's member already extracted): :func:`fetch` then reads them from
there instead of the network, and checks the same sha256.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llm_core.config_io import write_bytes_atomic
from llm_core.errors import ConfigError, DataError

__all__ = ["SOURCES", "Source", "cache_dir", "fetch", "fetch_all", "local_or_fetch", "mirror_dir"]


@dataclass(frozen=True)
class Source:
    """A remote file: where it is, its sha256, and (for a zip) the member holding the data."""

    filename: str
    url: str
    sha256: str
    member: str | None = None  # the file inside a zip archive; ``sha256`` is the member's

    def __post_init__(self) -> None:
        name = self.filename
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ConfigError(
                f"Source filename {name!r}: expected a plain file name (no directory, no '..'); "
                "the file is written inside the cache directory"
            )


SOURCES: dict[str, Source] = {
    "the-verdict": Source(
        "the-verdict.txt",
        "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt",
        "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
    ),
    "sms-spam": Source(
        "SMSSpamCollection",
        "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        member="SMSSpamCollection",
    ),
    "instructions": Source(
        "instruction-data.json",
        "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
        "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
    ),
}


def cache_dir() -> Path:
    """``$SCRATCHLM_CACHE``, or ``~/.cache/scratchlm``."""
    value = os.environ.get("SCRATCHLM_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "scratchlm"


def mirror_dir() -> Path | None:
    """``$SCRATCHLM_DATA_MIRROR``: a folder of local copies that replaces the network, or None."""
    value = os.environ.get("SCRATCHLM_DATA_MIRROR")
    return Path(value).expanduser() if value else None


def _from_mirror(mirror: Path, source: Source) -> bytes:
    path = mirror / source.filename
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the local copy of {source.filename} ({exc.strerror or exc}); "
            "$SCRATCHLM_DATA_MIRROR must name a folder holding the files, or unset it to download"
        ) from None


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            data = response.read()
    except http.client.IncompleteRead as exc:
        raise DataError(f"{url}: download interrupted after {len(exc.partial)} bytes; try again") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DataError(
            f"{url}: download failed ({exc}); check the network, or pass a local copy (root=...)"
        ) from None
    if expected is not None and expected.isdigit() and len(data) != int(expected):
        raise DataError(f"{url}: download interrupted: got {len(data)} of {expected} bytes; try again")
    return data


def fetch(source: Source, *, directory: str | os.PathLike[str] | None = None, timeout: float = 60.0) -> Path:
    """The cached local copy of ``source``, downloading and verifying it when needed."""
    directory = Path(directory) if directory is not None else cache_dir() / "data"
    target = directory / source.filename
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == source.sha256:
        return target
    mirror = mirror_dir()
    data = _from_mirror(mirror, source) if mirror is not None else _download(source.url, timeout)
    if source.member is not None and mirror is None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(source.member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise DataError(f"{source.url}: expected a zip archive holding {source.member} ({exc})") from None
    found = hashlib.sha256(data).hexdigest()
    if found != source.sha256:
        origin = str(mirror / source.filename) if mirror is not None else source.url
        raise DataError(
            f"{origin}: sha256 {found} does not match the expected {source.sha256}; the file changed "
            "or the download is corrupt; try again, or pass a verified local copy (root=...)"
        )
    write_bytes_atomic(target, data)
    return target


def local_or_fetch(name: str, root: str | os.PathLike[str] | None) -> Path:
    """``root/<filename>`` of the source ``name`` when ``root`` is given (no network), else :func:`fetch`."""
    source = SOURCES[name]
    if root is None:
        return fetch(source)
    root = Path(root)
    path = root if root.is_file() else root / source.filename
    if not path.is_file():
        raise DataError(f"{path}: not found; expected the {name} file {source.filename} in {root}")
    return path


def fetch_all(
    names: list[str] | None = None, *, directory: str | os.PathLike[str] | None = None
) -> dict[str, Path]:
    """Fetch the named sources (default: every one of :data:`SOURCES`) into ``directory``."""
    names = names or list(SOURCES)
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise DataError(f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    return {name: fetch(SOURCES[name], directory=directory) for name in names}
