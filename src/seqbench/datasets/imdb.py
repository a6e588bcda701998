"""IMDB Large Movie Review dataset (Maas et al., ACL 2011), Chollet's protocol (ch. 11)."""

from __future__ import annotations

from seqbench.datasets import RawFile

# The Stanford archive's published checksum; a mirror may hold a rebuilt archive vouched for by its
# own SHA256SUMS (e.g. the shared offline mirror, whose archive lacks the *.feat files).
ARCHIVE_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
ARCHIVE_BYTES = 84_125_825
ARCHIVE_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"


def raw_files(name: str) -> list[RawFile]:
    return [
        RawFile(
            name="aclImdb_v1.tar.gz",
            url="http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
            sha256=ARCHIVE_SHA256,
            size=ARCHIVE_BYTES,
            md5=ARCHIVE_MD5,
            archive=True,
        )
    ]
