"""Tiny Shakespeare (Karpathy's char-rnn corpus): next-character prediction."""

from __future__ import annotations

from seqbench.datasets import RawFile

TEXT_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TEXT_CHARS = 1_115_394


def raw_files(name: str) -> list[RawFile]:
    return [
        RawFile(
            name="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256=TEXT_SHA256,
            size=TEXT_CHARS,
        )
    ]
