"""Text and character encodings, fitted on train only.

Words follow Keras' TextVectorization as Chollet uses it (Deep Learning with Python, ch. 11):
  standardize  lowercase, then delete every `string.punctuation` character ("don't" -> "dont")
  split        on whitespace
  vocabulary   ids 0 = padding "", 1 = out-of-vocabulary "[UNK]", then the `max_tokens` most frequent
               train tokens, count descending, ties by the token string ascending (deterministic)
  bigrams      `ngrams=2`: a document's units are its tokens and its adjacent pairs "a b"; the bigram
               vocabulary ranks unigrams and bigrams together (same reserved ids, same order rule)
  TF-IDF       count * log(1 + n_docs / (1 + df)), df = train documents holding the unit; the OOV column
               gets the mean idf of the learned units (Keras cannot count OOV documents in one pass
               and uses this mean), the padding column 0.
Note: `max_tokens` counts learned tokens only (the 2 reserved ids come on top), as params.yaml says;
Keras' `max_tokens` includes them.

A corpus is handled as one flat token array (polars strings + numpy doc/position indices), never as a
Python list per document: 25k reviews are ~6M tokens.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

PAD, OOV = "", "[UNK]"
PAD_ID, OOV_ID = 0, 1
CHUNK_DOCS = 2048  # documents per block when building count matrices: bounds the transient index arrays
# Rust-regex character class of string.punctuation ("<" and ">" must stay unescaped there)
_PUNCTUATION = "[" + "".join(c if c in "<>" else "\\" + c for c in string.punctuation) + "]"


@dataclass(frozen=True)
class Tokens:
    """A tokenized corpus: token k is `flat[k]`, at position `pos[k]` of document `doc[k]`."""

    flat: pl.Series  # (n_tokens,) String
    doc: np.ndarray  # (n_tokens,) int32, non-decreasing
    pos: np.ndarray  # (n_tokens,) int32
    n_docs: int


def standardize(texts: pl.Series) -> pl.Series:
    return texts.fill_null("").str.to_lowercase().str.replace_all(_PUNCTUATION, "")


def tokenize(texts) -> Tokens:
    texts = pl.Series("text", texts, dtype=pl.String)
    lists = standardize(texts).str.extract_all(r"\S+")
    lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = lists.explode().drop_nulls()
    del lists
    doc = np.repeat(np.arange(len(texts), dtype=np.int32), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    pos = (np.arange(len(doc), dtype=np.int64) - np.repeat(starts, lengths)).astype(np.int32)
    return Tokens(flat=flat, doc=doc, pos=pos, n_docs=len(texts))


@dataclass(frozen=True)
class Vocabulary:
    """Both vocabularies of one train corpus, and the lookups that encode any split with them."""

    unigram: list[str]  # id -> token
    bigram: list[str]  # id -> token or "a b"
    types: pl.Series  # every train token type, ranked by (count desc, token): rank = type id
    type_to_bigram_id: np.ndarray  # (n_types,) bigram-vocabulary id of each type as a unigram (OOV_ID if absent)
    pair_keys: np.ndarray  # (n_pairs,) sorted keys a * n_types + b of the vocabulary's bigrams
    pair_ids: np.ndarray  # (n_pairs,) their bigram-vocabulary ids

    @property
    def n_types(self) -> int:
        return len(self.types)


def _top(counts: np.ndarray, labels, k: int) -> np.ndarray:
    """Indices of the k largest counts, ties broken by label ascending; `labels(idx)` gives strings."""
    if len(counts) > k:
        threshold = np.partition(counts, len(counts) - k)[len(counts) - k]
        candidates = np.flatnonzero(counts >= threshold)
    else:
        candidates = np.arange(len(counts))
    names = labels(candidates)
    order = sorted(range(len(candidates)), key=lambda i: (-counts[candidates[i]], names[i]))[:k]
    return candidates[np.asarray(order, dtype=np.int64)]


def _type_ids(tokens: Tokens, types: pl.Series) -> np.ndarray:
    """(n_tokens,) int64 type id of each token, -1 for a token unseen in train."""
    ids = tokens.flat.replace_strict(types, np.arange(len(types)), default=-1, return_dtype=pl.Int64)
    return ids.to_numpy()


def _pairs(doc: np.ndarray, type_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent token pairs inside each document: (doc, first type, second type), each (n_pairs,)."""
    same = doc[1:] == doc[:-1]
    return doc[1:][same], type_ids[:-1][same], type_ids[1:][same]


def _blocks(tokens: Tokens):
    """(first doc, end doc, token slice) per block of CHUNK_DOCS documents (tokens are sorted by doc)."""
    for lo in range(0, tokens.n_docs, CHUNK_DOCS):
        hi = min(lo + CHUNK_DOCS, tokens.n_docs)
        a, b = np.searchsorted(tokens.doc, [lo, hi])
        yield lo, hi, slice(int(a), int(b))


def _count_matrix(tokens: Tokens, n_cols: int, block_columns) -> sp.csr_matrix:
    """(n_docs, n_cols) float32 CSR counting the columns `block_columns(token slice) -> (rows, cols)` emits."""
    parts = []
    for lo, hi, span in _blocks(tokens):
        rows, cols = block_columns(span)
        keys, counts = np.unique((rows.astype(np.int64) - lo) * n_cols + cols, return_counts=True)
        indptr = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_cols, minlength=hi - lo), out=indptr[1:])
        parts.append(sp.csr_matrix((counts.astype(np.float32), keys % n_cols, indptr), shape=(hi - lo, n_cols)))
    if not parts:
        return sp.csr_matrix((0, n_cols), dtype=np.float32)
    return sp.vstack(parts, format="csr", dtype=np.float32)


def fit_vocabulary(train: Tokens, max_tokens: int) -> Vocabulary:
    ranked = train.flat.value_counts(name="count").sort(["count", train.flat.name], descending=[True, False])
    types = ranked[train.flat.name]
    type_counts = ranked["count"].to_numpy().astype(np.int64)
    type_names = types.to_list()
    unigram = [PAD, OOV, *type_names[:max_tokens]]

    n_types = len(types)
    _, first, second = _pairs(train.doc, _type_ids(train, types))
    pair_keys, pair_counts = np.unique(first * n_types + second, return_counts=True)
    del first, second

    def unit_names(idx: np.ndarray) -> list[str]:
        return [type_names[i] if i < n_types else
                f"{type_names[pair_keys[i - n_types] // n_types]} {type_names[pair_keys[i - n_types] % n_types]}"
                for i in idx]

    chosen = _top(np.concatenate([type_counts, pair_counts]), unit_names, max_tokens)
    bigram = [PAD, OOV, *unit_names(chosen)]
    ids = np.arange(2, 2 + len(chosen), dtype=np.int64)
    type_to_bigram_id = np.full(n_types, OOV_ID, dtype=np.int64)
    is_type = chosen < n_types
    type_to_bigram_id[chosen[is_type]] = ids[is_type]
    keys = pair_keys[chosen[~is_type] - n_types]
    order = np.argsort(keys)
    return Vocabulary(unigram, bigram, types, type_to_bigram_id, keys[order], ids[~is_type][order])


def oov_rate(tokens: Tokens, vocab: Vocabulary) -> float:
    """Fraction of the corpus' tokens outside the unigram vocabulary."""
    type_ids = _type_ids(tokens, vocab.types)
    return float(np.mean((type_ids < 0) | (type_ids >= len(vocab.unigram) - 2))) if len(type_ids) else 0.0


def encode_sequences(tokens: Tokens, vocab: Vocabulary, length: int) -> np.ndarray:
    """(n_docs, length) int32 unigram ids, post-padded with 0, truncated to the first `length` tokens."""
    type_ids = _type_ids(tokens, vocab.types)
    n_unigram = len(vocab.unigram) - 2
    ids = np.where((type_ids >= 0) & (type_ids < n_unigram), type_ids + 2, OOV_ID)
    keep = tokens.pos < length
    out = np.zeros((tokens.n_docs, length), dtype=np.int32)
    out[tokens.doc[keep], tokens.pos[keep]] = ids[keep]
    return out


def multi_hot(counts: sp.csr_matrix) -> sp.csr_matrix:
    out = counts.copy()
    out.data = np.ones_like(out.data)
    return out


def unigram_multi_hot(tokens: Tokens, vocab: Vocabulary) -> sp.csr_matrix:
    """(n_docs, len(vocab.unigram)) float32: 1 where the document holds the token (column 1: any OOV)."""
    type_ids = _type_ids(tokens, vocab.types)
    n_unigram = len(vocab.unigram) - 2
    cols = np.where((type_ids >= 0) & (type_ids < n_unigram), type_ids + 2, OOV_ID)
    return multi_hot(_count_matrix(tokens, len(vocab.unigram), lambda span: (tokens.doc[span], cols[span])))


def bigram_counts(tokens: Tokens, vocab: Vocabulary) -> sp.csr_matrix:
    """(n_docs, len(vocab.bigram)) float32 counts of every unigram and bigram (OOV units in column 1)."""
    type_ids = _type_ids(tokens, vocab.types)

    def block_columns(span: slice) -> tuple[np.ndarray, np.ndarray]:
        doc, types = tokens.doc[span], type_ids[span]
        uni_cols = np.where(types >= 0, vocab.type_to_bigram_id[np.maximum(types, 0)], OOV_ID)
        pair_doc, first, second = _pairs(doc, types)
        keys = first * vocab.n_types + second
        pair_cols = np.full(len(keys), OOV_ID, dtype=np.int64)
        if len(vocab.pair_keys):
            at = np.minimum(np.searchsorted(vocab.pair_keys, keys), len(vocab.pair_keys) - 1)
            known = (first >= 0) & (second >= 0) & (vocab.pair_keys[at] == keys)
            pair_cols[known] = vocab.pair_ids[at[known]]
        return np.concatenate([doc, pair_doc]), np.concatenate([uni_cols, pair_cols])

    return _count_matrix(tokens, len(vocab.bigram), block_columns)


def idf_weights(train_counts: sp.csr_matrix) -> np.ndarray:
    """(V,) float64 Keras idf from the train count matrix (see the module docstring for columns 0, 1)."""
    n_docs = train_counts.shape[0]
    df = np.bincount(train_counts.indices, minlength=train_counts.shape[1])
    idf = np.log1p(n_docs / (1.0 + df))
    idf[PAD_ID] = 0.0
    idf[OOV_ID] = idf[2:].mean() if len(idf) > 2 else 0.0
    return idf


def tf_idf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    out = counts.copy()
    out.data = (out.data * idf[out.indices]).astype(np.float32)
    return out


# --- characters (Geron ch. 16: a char-level vocabulary) -------------------------------------------
def char_vocabulary(train_text: str) -> list[str]:
    """id -> char: 0 = out-of-vocabulary "", then train chars by count descending, ties by code point."""
    counts = Counter(train_text)
    return ["", *sorted(counts, key=lambda c: (-counts[c], ord(c)))]


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def encode_chars(text: str, vocab: list[str]) -> np.ndarray:
    """(len(text),) int64 ids; a char outside the vocabulary -> 0."""
    codes = np.array([ord(c) for c in vocab[1:]], dtype=np.uint32)
    order = np.argsort(codes)
    sorted_codes, sorted_ids = codes[order], order.astype(np.int64) + 1
    points = _code_points(text)
    if not len(sorted_codes):
        return np.zeros(len(points), dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_codes, points), len(sorted_codes) - 1)
    return np.where(sorted_codes[at] == points, sorted_ids[at], 0)


def decode_chars(ids, vocab: list[str]) -> str:
    return "".join(vocab[int(i)] for i in np.asarray(ids).reshape(-1))
