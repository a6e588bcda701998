"""download stage: mirrors, URLs with retries, verification, atomic writes, safe extraction, status."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from rawdata import make_mirror, write_ett_csv, write_shakespeare, write_sums

from seqbench import archives, download
from seqbench.datasets import RawFile, jena
from seqbench.errors import DataError, DatasetUnavailable
from seqbench.params import load_params
from seqbench.paths import Layout

ETT = "ETTh1.csv"
SHAKESPEARE = "tinyshakespeare.txt"
LIMITS = archives.ExtractLimits(max_bytes=1 << 20, max_ratio=100)  # far above what these tests extract


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage(project: Path, dataset: str, **data) -> dict:
    """Run the download stage in `project` with params.yaml's `data` section updated by `data`."""
    if data:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["data"].update(data)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return download.run(load_params(project / "params.yaml"), Layout(project), dataset)


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a failed fetch must not leave behind."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


def closed_port_url(name: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)


@pytest.fixture()
def mirror(tmp_path) -> Path:
    return make_mirror(tmp_path / "mirror", datasets=("etth1", "shakespeare", "imdb"))


# --- mirrors and verification ------------------------------------------------------------------------
def test_mirror_copy_is_verified_and_recorded(project, mirror, monkeypatch):
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    status = stage(project, "etth1")
    raw = project / "data/raw/etth1"
    data = (mirror / ETT).read_bytes()
    assert (raw / ETT).read_bytes() == data
    assert (raw / f"{ETT}.sha256").read_text() == f"{sha256(data)}  {ETT}\n"
    on_disk = json.loads((raw / "status.json").read_text())
    assert on_disk == status == {
        "dataset": "etth1", "available": True, "reason": None,
        "files": {ETT: {"sha256": sha256(data), "source": str(mirror / ETT)}},
    }
    assert leftovers(raw) == []


def test_mirror_sha256sums_mismatch_names_everything_and_leaves_nothing(project, mirror, monkeypatch):
    wrong = "0" * 64
    (mirror / "SHA256SUMS").write_text(f"{wrong}  {ETT}\n")
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    with pytest.raises(DataError) as error:
        stage(project, "etth1")
    message = str(error.value)
    assert ETT in message and wrong in message and sha256((mirror / ETT).read_bytes()) in message
    assert str(mirror / ETT) in message and "SHA256SUMS" in message
    raw = project / "data/raw/etth1"
    assert not (raw / ETT).exists() and not (raw / f"{ETT}.sha256").exists()
    assert leftovers(raw) == []


def test_folder_without_sums_is_checked_against_the_canonical_checksum(project, tmp_path, monkeypatch):
    folder = tmp_path / "plain"
    write_ett_csv(folder / ETT)  # not the published ETTh1.csv
    monkeypatch.setenv(download.MIRROR_ENV, str(folder))
    with pytest.raises(DataError, match="canonical") as error:
        stage(project, "etth1")
    assert "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066" in str(error.value)
    assert not (project / "data/raw/etth1" / ETT).exists()


def test_no_known_checksum_records_the_computed_one_with_a_note(project, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "plain"
    make_mirror(folder, datasets=("cta",))
    (folder / "SHA256SUMS").unlink()
    monkeypatch.setenv(download.MIRROR_ENV, str(folder))
    status = stage(project, "cta")
    name = "CTA_-_Ridership_-_Daily_Boarding_Totals.csv"
    assert status["files"][name]["sha256"] == sha256((folder / name).read_bytes())
    assert "no published sha256" in capsys.readouterr().err


def test_mirror_order_env_first_then_params_relative_to_root(project, tmp_path, monkeypatch):
    first, second, empty = tmp_path / "first", tmp_path / "second", tmp_path / "empty"
    empty.mkdir()
    for folder, seed in ((first, 1), (second, 2)):
        write_shakespeare(folder / SHAKESPEARE, chars=500, seed=seed)
        write_sums(folder, [SHAKESPEARE])
    monkeypatch.setenv(download.MIRROR_ENV, os.pathsep.join([str(empty), str(first)]))
    second_relative = os.path.relpath(second, project)
    status = stage(project, "shakespeare", mirrors=[second_relative])
    assert status["files"][SHAKESPEARE]["source"] == str(first / SHAKESPEARE)
    monkeypatch.delenv(download.MIRROR_ENV)
    (project / "data/raw/shakespeare/status.json").unlink()  # forget the first copy
    status = stage(project, "shakespeare")
    assert status["files"][SHAKESPEARE]["source"] == str(project / second_relative / SHAKESPEARE)
    assert (project / "data/raw/shakespeare" / SHAKESPEARE).read_bytes() == (second / SHAKESPEARE).read_bytes()


def test_idempotent_a_verified_file_is_not_fetched_again(project, tmp_path, monkeypatch):
    mirror = make_mirror(tmp_path / "m", datasets=("imdb",))
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    first = stage(project, "imdb")
    raw = project / "data/raw/imdb"
    marker = raw / "aclImdb" / "README"
    mtime = marker.stat().st_mtime_ns
    monkeypatch.setenv(download.MIRROR_ENV, str(tmp_path / "gone"))  # a second run needs no mirror
    assert stage(project, "imdb") == first
    assert marker.stat().st_mtime_ns == mtime
    # a raw file that no longer matches its .sha256 is fetched again
    (raw / "aclImdb_v1.tar.gz").write_bytes(b"tampered")
    marker.unlink()
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    assert stage(project, "imdb") == first
    assert (raw / "aclImdb_v1.tar.gz").read_bytes() == (mirror / "aclImdb_v1.tar.gz").read_bytes()
    assert marker.is_file()


def test_synthetic_has_no_raw_files(project):
    status = stage(project, "synthetic")
    assert status == {"dataset": "synthetic", "available": True, "reason": None, "files": {}}
    assert json.loads((project / "data/raw/synthetic/status.json").read_text()) == status


# --- archives ----------------------------------------------------------------------------------------
def test_imdb_archive_is_extracted_without_unsup(project, mirror, monkeypatch):
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    status = stage(project, "imdb")
    root = project / "data/raw/imdb/aclImdb"
    assert status["files"]["aclImdb_v1.tar.gz"]["extracted"] == ["aclImdb"]
    assert len(list((root / "train/pos").glob("*.txt"))) == 20
    assert (root / "imdb.vocab").is_file() and (root / "train/urls_unsup.txt").is_file()
    assert not (root / "train/unsup").exists()
    assert leftovers(project / "data/raw/imdb") == []


def test_truncated_archive_fails_cleanly(project, mirror, monkeypatch):
    archive = mirror / "aclImdb_v1.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    write_sums(mirror, ["aclImdb_v1.tar.gz"])  # the mirror vouches for the damaged copy
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    with pytest.raises(DataError, match="truncated or corrupt") as error:
        stage(project, "imdb")
    assert "aclImdb_v1.tar.gz" in str(error.value) and "re-run" in str(error.value)
    raw = project / "data/raw/imdb"
    assert sorted(p.name for p in raw.iterdir()) == []  # no archive, no half-extracted tree


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            data = b"x" * member.size if member.isfile() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def _member(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 3 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (_member("aclImdb/../../evil.txt"), "outside the extraction folder"),
        (_member("/etc/evil.txt"), "absolute path"),
        (_member("aclImdb/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (_member("aclImdb/hard", tarfile.LNKTYPE, "aclImdb/README"), "hard link"),
        (_member("aclImdb/fifo", tarfile.FIFOTYPE), "device, fifo"),
        (_member("aclImdb/dev", tarfile.CHRTYPE), "device, fifo"),
    ],
)
def test_unsafe_tar_entries_are_refused(tmp_path, member, expected):
    archive = _tar(tmp_path / "bad.tar.gz", [_member("aclImdb/README"), member])
    dest = tmp_path / "raw"
    with pytest.raises(DataError, match=expected) as error:
        archives.extract(archive, dest, limits=LIMITS)
    assert member.name in str(error.value) and "bad.tar.gz" in str(error.value)
    assert list(dest.iterdir()) == []  # not even the safe README was placed
    assert not (tmp_path / "evil.txt").exists()


def test_unsafe_zip_entries_are_refused(tmp_path):
    escaping = tmp_path / "escape.zip"
    with zipfile.ZipFile(escaping, "w") as zf:
        zf.writestr("ok.csv", "a\n")
        zf.writestr("../outside.csv", "b\n")
    with pytest.raises(DataError, match="outside the extraction folder"):
        archives.extract(escaping, tmp_path / "a", limits=LIMITS)
    linked = tmp_path / "link.zip"
    with zipfile.ZipFile(linked, "w") as zf:
        info = zipfile.ZipInfo("link.csv")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        archives.extract(linked, tmp_path / "b", limits=LIMITS)
    assert list((tmp_path / "a").iterdir()) == [] and list((tmp_path / "b").iterdir()) == []
    assert not (tmp_path / "outside.csv").exists()


def test_unsafe_entry_through_the_stage_leaves_nothing(project, tmp_path, monkeypatch):
    folder = tmp_path / "evil"
    folder.mkdir()
    _tar(folder / "aclImdb_v1.tar.gz", [_member("aclImdb/README"), _member("../../escaped.txt")])
    write_sums(folder, ["aclImdb_v1.tar.gz"])
    monkeypatch.setenv(download.MIRROR_ENV, str(folder))
    with pytest.raises(DataError, match="'../../escaped.txt'"):
        stage(project, "imdb")
    assert list((project / "data/raw/imdb").iterdir()) == []
    assert not (project / "data/escaped.txt").exists()


def test_jena_from_a_generated_mirror_and_canonical_checks_otherwise(project, tmp_path, monkeypatch):
    folder = tmp_path / "jena"
    jena.write_jena_like(folder, rows=2000, seed=0)
    monkeypatch.setenv(download.MIRROR_ENV, str(folder))
    status = stage(project, "jena")
    assert status["files"][jena.ZIP_NAME]["extracted"] == [jena.CSV_NAME]
    assert (project / "data/raw/jena" / jena.CSV_NAME).is_file()
    # without the SHA256SUMS that vouches for it, the generated zip is held to the real file's size
    (folder / "SHA256SUMS").unlink()
    (project / "data/raw/jena/status.json").unlink()
    with pytest.raises(DataError, match="13,568,290 bytes"):
        stage(project, "jena")
    # and the real file's extracted CSV is pinned by size and md5
    with pytest.raises(DataError, match=jena.CSV_MD5):
        jena.verify_extracted(project / "data/raw/jena")


# --- URLs --------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        server.hits.append(self.path)
        if len(server.hits) <= server.fail_first:
            self.send_error(503, "try again")
            return
        body = server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if len(server.hits) <= server.fail_first + server.truncate_next:
            self.wfile.write(body[: len(body) // 2])  # then the connection closes early
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hits, server.fail_first, server.truncate_next, server.files = [], 0, 0, {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_url_download_retries_after_a_failure_and_verifies(tmp_path, http_server):
    body = write_shakespeare(tmp_path / "src.txt", chars=3000).read_bytes()
    http_server.files["corpus.txt"], http_server.fail_first = body, 1
    url = f"http://127.0.0.1:{http_server.server_port}/corpus.txt"
    raw = RawFile(name="corpus.txt", url=url, sha256=sha256(body), size=len(body))
    status = download.download_dataset("test", [raw], tmp_path / "raw", [], retries=3, timeout_s=5)
    assert http_server.hits == ["/corpus.txt", "/corpus.txt"]
    assert (tmp_path / "raw/corpus.txt").read_bytes() == body
    assert status["files"]["corpus.txt"] == {"sha256": sha256(body), "source": url}
    # idempotent: a second run does not touch the network
    download.download_dataset("test", [raw], tmp_path / "raw", [], retries=3, timeout_s=5)
    assert len(http_server.hits) == 2


def test_url_download_retries_after_a_connection_closed_early(tmp_path, http_server):
    body = b"0123456789" * 50_000
    http_server.files["data.bin"], http_server.truncate_next = body, 1
    url = f"http://127.0.0.1:{http_server.server_port}/data.bin"
    download.download_dataset("test", [RawFile("data.bin", url, sha256=sha256(body))], tmp_path / "raw", [],
                              retries=2, timeout_s=5)
    assert len(http_server.hits) == 2 and (tmp_path / "raw/data.bin").read_bytes() == body


def test_unknown_dataset_is_a_clear_error(project):
    with pytest.raises(DataError, match="unknown dataset 'jenna'"):
        stage(project, "jenna")


def test_url_download_checksum_mismatch(tmp_path, http_server):
    http_server.files["corpus.txt"] = b"not what was published"
    url = f"http://127.0.0.1:{http_server.server_port}/corpus.txt"
    raw = RawFile(name="corpus.txt", url=url, sha256="a" * 64)
    with pytest.raises(DataError, match="sha256 mismatch") as error:
        download.download_dataset("test", [raw], tmp_path / "raw", [], retries=2, timeout_s=5)
    assert url in str(error.value) and "a" * 64 in str(error.value)
    assert not (tmp_path / "raw/corpus.txt").exists() and leftovers(tmp_path / "raw") == []


def test_http_404_is_not_retried(tmp_path, http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/missing.csv"
    with pytest.raises(DatasetUnavailable, match="HTTP 404"):
        download.download_dataset("test", [RawFile("missing.csv", url)], tmp_path / "raw", [], retries=3)
    assert len(http_server.hits) == 1


def test_no_mirror_and_no_network_is_one_clear_error(tmp_path):
    url = closed_port_url("data.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailable) as error:
        download.download_dataset("test", [RawFile("data.csv", url)], tmp_path / "raw", [empty], retries=2)
    message = str(error.value)
    assert "data.csv" in message and url in message and str(empty) in message
    assert "SEQBENCH_MIRROR=<folder>" in message and "data.mirrors" in message
    assert not (tmp_path / "raw/data.csv").exists()


# --- via the CLI (python -m seqbench download) -------------------------------------------------------
_CLI = """
import runpy, sys
from seqbench import datasets
from seqbench.datasets import RawFile, jena
# the real URL would need the internet: point it at a closed local port instead
url = sys.argv[1]
datasets.get("jena").raw_files = lambda: [RawFile(name=jena.ZIP_NAME, url=url, archive=True,
                                                  limits=jena.EXTRACT_LIMITS)]
sys.argv = ["seqbench", "download", "--dataset", "jena"]
runpy.run_module("seqbench", run_name="__main__")
"""


@pytest.mark.parametrize("on_missing", ["skip", "fail"])
def test_cli_unavailable_dataset(project, on_missing):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(on_missing=on_missing, retries=1, timeout_s=5, mirrors=[])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != download.MIRROR_ENV}
    url = closed_port_url("jena_climate_2009_2016.csv.zip")
    result = subprocess.run([sys.executable, "-c", _CLI, url], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    status_path = project / "data/raw/jena/status.json"
    if on_missing == "skip":
        assert result.returncode == 0, result.stderr
        status = json.loads(status_path.read_text())
        assert status["available"] is False and status["files"] == {}
        assert "jena_climate_2009_2016.csv.zip" in status["reason"] and url in status["reason"]
        assert "SEQBENCH_MIRROR" in status["reason"] and "warning" in result.stderr
    else:
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: jena_climate_2009_2016.csv.zip is in no mirror folder")
        assert "SEQBENCH_MIRROR=<folder>" in result.stderr
        assert not status_path.exists()
