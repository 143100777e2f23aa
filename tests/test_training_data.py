"""Packing: exact blocks, EOS after every sentence, shuffle by seed, last partial block dropped, blocks
reshuffled every epoch as the reference's sampler does, cache reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from impossible_lms.errors import ILMError
from impossible_lms.training.data import packed_blocks, read_dataset_info, token_cache
from impossible_lms.training.toy import make_toy_dataset

VOCAB = 50
EOS = VOCAB - 1
# Sentences whose ids tell them apart: sentence i is [10·i+1, ..., 10·i+len].
SENTENCES = [[10 * (i % 4) + j + 1 for j in range(1 + i % 5)] for i in range(13)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("d") / "toy", vocab_size=VOCAB, train=SENTENCES)


def expected_stream(seed: int) -> list[int]:
    order = np.random.default_rng(seed).permutation(len(SENTENCES))
    out: list[int] = []
    for i in order:
        out += SENTENCES[i] + [EOS]
    return out


def sampler_order(n: int, seed: int, epoch: int) -> list[int]:
    """The Hugging Face Trainer's block order at ``epoch`` (accelerate's SeedableRandomSampler)."""
    import torch
    from torch.utils.data import RandomSampler

    return list(RandomSampler(range(n), generator=torch.Generator().manual_seed(seed + epoch)))


@pytest.mark.parametrize("seed,context", [(0, 4), (14, 7), (41, 3)])
def test_blocks_are_the_seed_shuffled_stream_cut_into_context_blocks(data, seed, context):
    info = read_dataset_info(data)
    packed = packed_blocks(info, seed, context, VOCAB)
    stream = expected_stream(seed)
    n = len(stream) // context  # the last partial block is dropped
    assert packed.n_blocks == n
    chunks = [stream[b * context:(b + 1) * context] for b in range(n)]
    assert sorted(packed.block_ids(np.arange(n)).tolist()) == list(range(n))
    got = packed.blocks(np.arange(n))  # epoch 0 is shuffled too, as the reference's sampler does
    assert got.tolist() == [chunks[b] for b in sampler_order(n, seed, 0)]


def test_cache_holds_every_sentence_then_eos_in_dataset_order(data):
    cache = token_cache(read_dataset_info(data))
    flat = [t for s in SENTENCES for t in s + [EOS]]
    assert cache.tokens.tolist() == flat
    assert cache.offsets.tolist() == list(np.cumsum([0] + [len(s) + 1 for s in SENTENCES]))
    assert cache.max_id == EOS


def test_seeds_shuffle_differently_and_reproducibly(data):
    info = read_dataset_info(data)
    a = packed_blocks(info, 0, 5, VOCAB).blocks(np.arange(4))
    b = packed_blocks(info, 0, 5, VOCAB).blocks(np.arange(4))
    c = packed_blocks(info, 1, 5, VOCAB).blocks(np.arange(4))
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_every_epoch_revisits_every_block_once_in_its_own_seeded_order(data):
    packed = packed_blocks(read_dataset_info(data), 3, 4, VOCAB)
    n = packed.n_blocks
    epochs = [packed.block_ids(np.arange(e * n, (e + 1) * n)).tolist() for e in range(3)]
    assert epochs == [sampler_order(n, 3, e) for e in range(3)]
    assert len({tuple(e) for e in epochs}) == 3 and all(sorted(e) == list(range(n)) for e in epochs)


def test_data_order_is_a_pure_function_of_the_sample_number(data):
    """What resume relies on: any sample, asked for alone, in any order, by a fresh object, reads the same block."""
    info = read_dataset_info(data)
    samples = np.arange(3 * packed_blocks(info, 7, 4, VOCAB).n_blocks)
    whole = packed_blocks(info, 7, 4, VOCAB).blocks(samples)
    fresh = packed_blocks(info, 7, 4, VOCAB)
    one_by_one = [fresh.blocks(np.array([s]))[0].tolist() for s in samples[::-1]][::-1]
    assert one_by_one == whole.tolist()


def test_cache_is_built_once_and_rebuilt_when_the_manifest_changes(tmp_path):
    d = make_toy_dataset(tmp_path / "toy", vocab_size=VOCAB, train=SENTENCES)
    info = read_dataset_info(d)
    token_cache(info)
    bin_path = d / ".cache" / "train.tokens.bin"
    first = bin_path.stat().st_mtime_ns
    token_cache(read_dataset_info(d))  # another seed, same dataset
    assert bin_path.stat().st_mtime_ns == first
    assert not [p for p in (d / ".cache").iterdir() if p.name.endswith(".tmp")]
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["created"] = "again"
    (d / "manifest.json").write_text(json.dumps(manifest))
    token_cache(read_dataset_info(d))
    assert json.loads((d / ".cache" / "train.meta.json").read_text())["fingerprint"] == read_dataset_info(d).cache_key


def test_vocabulary_mismatch_is_a_user_error(data):
    with pytest.raises(ILMError, match="vocabulary mismatch.*50.*the model has 60"):
        packed_blocks(read_dataset_info(data), 0, 4, 60)


def test_token_ids_beyond_the_manifest_vocabulary_are_caught(tmp_path):
    d = make_toy_dataset(tmp_path / "bad", vocab_size=VOCAB, train=[[1, 2, 70]])
    with pytest.raises(ILMError, match="token id 70 in the train split is outside the manifest's vocabulary of 50"):
        packed_blocks(read_dataset_info(d), 0, 2, VOCAB)


def test_folder_without_manifest_is_a_user_error(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ILMError, match="no manifest.json"):
        read_dataset_info(tmp_path / "x")
    with pytest.raises(ILMError, match="dataset folder not found"):
        read_dataset_info(tmp_path / "missing")


def test_too_little_data_for_one_block(tmp_path):
    d = make_toy_dataset(tmp_path / "small", vocab_size=VOCAB, train=[[1, 2]])
    with pytest.raises(ILMError, match="fewer than one block of 8"):
        packed_blocks(read_dataset_info(d), 0, 8, VOCAB)


def _arrow(d):
    return next((d / "train").glob("*.arrow"))


def _replace_train(d, sentences):
    """The train split rewritten under an unchanged manifest (as a copy from another dataset would)."""
    other = make_toy_dataset(d.parent / "other", vocab_size=VOCAB, train=sentences)
    for f in (other / "train").iterdir():
        (d / "train" / f.name).write_bytes(f.read_bytes())


TAMPERS = {
    "deleted": lambda d: [f.unlink() for f in (d / "train").iterdir()],
    "truncated": lambda d: _arrow(d).write_bytes(_arrow(d).read_bytes()[:100]),
    "zeroed": lambda d: _arrow(d).write_bytes(bytes(_arrow(d).stat().st_size)),
    "garbage": lambda d: _arrow(d).write_bytes(b"not arrow at all" * 64),
    "a huge token id": lambda d: _replace_train(d, [[1, 2, 10**6]]),
    "garbled state.json": lambda d: (d / "train" / "state.json").write_text("{garbled"),
    "garbled dataset_info.json": lambda d: (d / "train" / "dataset_info.json").write_text("[1,"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_cache_notices_its_split_files_changed(tmp_path, tamper):
    """The token cache is keyed on the train split's files, not only the manifest: a damaged split
    is read again and refused in one line, never trained on from the old cache."""
    d = make_toy_dataset(tmp_path / "toy", vocab_size=VOCAB, train=SENTENCES)
    token_cache(read_dataset_info(d))  # built from the good data
    TAMPERS[tamper](d)
    with pytest.raises(ILMError, match=r"cannot read the dataset|outside the manifest's vocabulary|no train split"):
        token_cache(read_dataset_info(d))


def test_a_changed_split_of_good_data_is_rebuilt_not_reused(tmp_path):
    d = make_toy_dataset(tmp_path / "toy", vocab_size=VOCAB, train=SENTENCES)
    assert token_cache(read_dataset_info(d)).offsets[-1] == sum(len(s) + 1 for s in SENTENCES)
    _replace_train(d, [[1, 2, 3]])
    cache = token_cache(read_dataset_info(d))
    assert cache.tokens.tolist() == [1, 2, 3, EOS]
