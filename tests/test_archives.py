"""Bounded archive extraction: a decompression bomb stops at the byte cap or the per-member ratio cap,
with one clear error and nothing left under the final names; params.yaml can raise the caps."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from rawdata import write_sums

from seqbench import archives, datasets, download
from seqbench.errors import DataError
from seqbench.params import ParamsError, load_params, parse_params
from seqbench.paths import Layout

JENA_ZIP = "jena_climate_2009_2016.csv.zip"
JENA_CSV = "jena_climate_2009_2016.csv"


def stage(project: Path, dataset: str, **data) -> dict:
    """Run the download stage in `project` with params.yaml's `data` section updated by `data`."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(data)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return download.run(load_params(project / "params.yaml"), Layout(project), dataset)


BOMB_BYTES = 6 << 20  # 6 MiB of zeros: deflates about 1000 times, to a few KiB


def _bomb_tar(folder: Path) -> Path:
    """aclImdb_v1.tar.gz whose one review is 6 MiB of zeros, vouched for by the folder's SHA256SUMS."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        readme = tarfile.TarInfo("aclImdb/README")
        readme.size = 3
        tar.addfile(readme, io.BytesIO(b"abc"))
        bomb = tarfile.TarInfo("aclImdb/train/pos/0_9.txt")
        bomb.size = BOMB_BYTES
        tar.addfile(bomb, io.BytesIO(bytes(BOMB_BYTES)))
    write_sums(folder, [path.name])
    return path


def _bomb_zip(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / JENA_ZIP
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(JENA_CSV, bytes(BOMB_BYTES))
    write_sums(folder, [path.name])
    return path


@pytest.mark.parametrize(("dataset", "make"), [("imdb", _bomb_tar), ("jena", _bomb_zip)])
def test_bomb_past_the_byte_cap_is_refused_and_nothing_kept(project, tmp_path, monkeypatch, dataset, make):
    archive = make(tmp_path / "mirror")
    assert archive.stat().st_size < 64 << 10  # the bomb really is one
    monkeypatch.setenv(download.MIRROR_ENV, str(archive.parent))
    with pytest.raises(DataError) as error:
        stage(project, dataset, extract_limits={dataset: {"max_bytes": 2_000_000, "max_ratio": 5000}})
    message = str(error.value)
    assert message.startswith(f"{archive.name}: extracting ") and "cap of 2,000,000 bytes" in message
    assert f"data.extract_limits.{dataset}.max_bytes" in message and "Nothing was kept" in message
    raw = project / "data/raw" / dataset
    assert list(raw.iterdir()) == []  # no archive, no .sha256, no extracted or temporary files, no status.json


@pytest.mark.parametrize(("dataset", "make"), [("imdb", _bomb_tar), ("jena", _bomb_zip)])
def test_bomb_past_the_ratio_cap_is_refused_unless_params_raise_it(project, tmp_path, monkeypatch, dataset, make):
    archive = make(tmp_path / "mirror")
    monkeypatch.setenv(download.MIRROR_ENV, str(archive.parent))
    limit = datasets.get(dataset).raw_files()[0].limits.max_ratio  # the dataset's own bound
    with pytest.raises(DataError, match=rf"expands more than {limit:g} times") as error:
        stage(project, dataset)
    assert f"data.extract_limits.{dataset}.max_ratio" in str(error.value)
    assert list((project / "data/raw" / dataset).iterdir()) == []
    status = stage(project, dataset, extract_limits={dataset: {"max_ratio": 5000}})  # vouched and allowed
    assert status["available"] and status["files"][archive.name]["extracted"]
    assert sum(p.stat().st_size for p in (project / "data/raw" / dataset).rglob("*") if p.suffix in (".txt", ".csv")) \
        == BOMB_BYTES


def test_small_members_are_not_judged_by_ratio(tmp_path):
    """Below 1 MiB a member's share of the 10 KiB compressed records says nothing: only the byte cap holds."""
    archive = tmp_path / "small.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", bytes(archives.RATIO_FLOOR - 1))
    names = archives.extract(archive, tmp_path / "out", limits=archives.ExtractLimits(max_bytes=1 << 20, max_ratio=2))
    assert names == ["zeros.bin"] and (tmp_path / "out/zeros.bin").stat().st_size == archives.RATIO_FLOOR - 1


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({"jenna": {"max_bytes": 10}}, "unknown dataset 'jenna'"),
        ({"etth1": {"max_bytes": 10}}, "dataset 'etth1' has no archive to extract"),
        ({"imdb": {"max_ratio": 1}}, "data.extract_limits.imdb.max_ratio"),
        ({"imdb": {"max_files": 10}}, "data.extract_limits.imdb.max_files"),
    ],
)
def test_extract_limits_in_params_are_validated(params_dict, limits, expected):
    params_dict["data"]["extract_limits"] = limits
    with pytest.raises(ParamsError, match=expected):
        parse_params(params_dict)
