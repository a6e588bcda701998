"""Tokenization, vocabularies, bag-of-words and TF-IDF (Keras TextVectorization semantics), char vocab."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqbench import text as tx

# The hand-computed example: 3 train documents, max_tokens = 4.
#   tokens   d0: the cat sat the cat   d1: the cat ran   d2: the dog ran
#   unigram counts: the 4, cat 3, ran 2, dog 1, sat 1            -> vocab "", [UNK], the, cat, ran, dog
#   with bigrams: the 4, cat 3, "the cat" 3, ran 2, (count 1: ...) -> "", [UNK], the, cat, "the cat", ran
DOCS = ["The cat sat, the cat!", "the CAT ran.", "The dog... ran"]


@pytest.fixture(scope="module")
def fitted():
    tokens = tx.tokenize(DOCS)
    return tokens, tx.fit_vocabulary(tokens, max_tokens=4)


def test_standardize_lowercases_and_deletes_punctuation():
    tokens = tx.tokenize(["It's a WELL-made film... 10/10!", "", "  spaced\tout\nlines  ", "Ünïcode Ärger"])
    assert tokens.flat.to_list() == ["its", "a", "wellmade", "film", "1010", "spaced", "out", "lines",
                                     "ünïcode", "ärger"]
    assert tokens.doc.tolist() == [0, 0, 0, 0, 0, 2, 2, 2, 3, 3]
    assert tokens.pos.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1]
    assert tokens.n_docs == 4


def test_vocabulary_order_and_reserved_ids(fitted):
    _, vocab = fitted
    assert vocab.unigram == ["", "[UNK]", "the", "cat", "ran", "dog"]  # dog before sat: tie broken by string
    assert vocab.bigram == ["", "[UNK]", "the", "cat", "the cat", "ran"]


def test_ties_are_broken_by_token_string_not_input_order():
    a = tx.fit_vocabulary(tx.tokenize(["zeta alpha mid"]), max_tokens=2)
    b = tx.fit_vocabulary(tx.tokenize(["mid zeta alpha"]), max_tokens=2)
    assert a.unigram == b.unigram == ["", "[UNK]", "alpha", "mid"]


def test_sequences_are_post_padded_truncated_and_oov_is_1(fitted):
    tokens, vocab = fitted
    assert tx.encode_sequences(tokens, vocab, 4).tolist() == [[2, 3, 1, 2], [2, 3, 4, 0], [2, 5, 4, 0]]
    unseen = tx.encode_sequences(tx.tokenize(["zebra the", ""]), vocab, 3)
    assert unseen.dtype == np.int32
    assert unseen.tolist() == [[1, 2, 0], [0, 0, 0]]


def test_unigram_multi_hot(fitted):
    tokens, vocab = fitted
    matrix = tx.unigram_multi_hot(tokens, vocab)
    assert matrix.dtype == np.float32 and matrix.shape == (3, 6)
    assert matrix.toarray().tolist() == [[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 1, 0, 1, 1]]


def test_bigram_counts_and_multi_hot_by_hand(fitted):
    tokens, vocab = fitted
    counts = tx.bigram_counts(tokens, vocab).toarray()
    # columns: pad, OOV, the, cat, "the cat", ran
    assert counts.tolist() == [
        [0, 3, 2, 2, 2, 0],  # OOV: sat, "cat sat", "sat the"
        [0, 1, 1, 1, 1, 1],  # OOV: "cat ran"
        [0, 3, 1, 0, 0, 1],  # OOV: dog, "the dog", "dog ran"
    ]
    assert tx.multi_hot(tx.bigram_counts(tokens, vocab)).toarray().tolist() == [
        [0, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 1]]


def test_tf_idf_by_hand(fitted):
    tokens, vocab = fitted
    counts = tx.bigram_counts(tokens, vocab)
    idf = tx.idf_weights(counts)
    the, other = math.log(1 + 3 / (1 + 3)), math.log(1 + 3 / (1 + 2))  # df: the 3, cat / "the cat" / ran 2
    oov = (the + 3 * other) / 4  # the mean idf of the learned units
    np.testing.assert_allclose(idf, [0.0, oov, the, other, other, other])
    weighted = tx.tf_idf(counts, idf)
    assert weighted.dtype == np.float32
    np.testing.assert_allclose(weighted.toarray()[0], [0, 3 * oov, 2 * the, 2 * other, 2 * other, 0], rtol=1e-6)
    np.testing.assert_allclose(weighted.toarray()[2], [0, 3 * oov, the, 0, 0, other], rtol=1e-6)


def test_bigrams_do_not_cross_documents_and_unseen_tokens_are_oov(fitted):
    _, vocab = fitted
    # "cat" ends doc 0 and "the" starts doc 1: no "cat the" pair; "the cat" inside doc 1 is counted
    counts = tx.bigram_counts(tx.tokenize(["cat", "the cat", "unseen words"]), vocab).toarray()
    assert counts.tolist() == [[0, 0, 0, 1, 0, 0], [0, 0, 1, 1, 1, 0], [0, 3, 0, 0, 0, 0]]


def test_char_vocabulary_order_encode_decode():
    vocab = tx.char_vocabulary("abracadabra!")
    assert vocab == ["", "a", "b", "r", "!", "c", "d"]  # count desc, ties by code point ("!" < "c" < "d")
    ids = tx.encode_chars("cab?z", vocab)
    assert ids.dtype == np.int64 and ids.tolist() == [5, 1, 2, 0, 0]
    assert tx.decode_chars(ids, vocab) == "cab"
    assert tx.decode_chars(tx.encode_chars("abracadabra!", vocab), vocab) == "abracadabra!"
