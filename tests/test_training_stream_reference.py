"""The training stream equals the reference's, block for block, over several epochs.

The oracle below restates, step by step, what the reference
(jkallini/mission-impossible-language-models) does to make the blocks a model
sees, on a corpus this test writes:

1. data/perturb.py, per train file: every sentence perturbed, sequences with at
   most one non-marker token dropped, affected sentences kept when the filter
   passes, and the file written as ``unaffected lines + affected lines``.
2. training/babylm_dataset.py: the sorted files' lines concatenated, then
   ``default_rng(seed).shuffle(lines)`` on the list, each line's ids then EOS,
   cut into blocks of the context length, the last partial block dropped.
3. The Hugging Face Trainer's sampler (transformers 4.46.2 + accelerate's
   SeedableRandomSampler): epoch e reads the blocks in ``RandomSampler`` order
   with a ``torch.Generator`` seeded ``seed + e``.

Step 1's per-sentence perturbation is ``Language.perturb_file`` (checked against
the reference's own functions in test_perturbations_reference.py); everything
after it is written here without the package's code (strings of ids, list
shuffles, a real ``RandomSampler``), and compared with ``ilm perturb`` +
``training.data.packed_blocks``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler

from impossible_lms.data import load_dataset_tokenizer
from impossible_lms.perturb import perturb_corpus
from impossible_lms.training.data import packed_blocks, read_dataset_info
from perturbations import get_language
from test_perturb_pipeline_fakes import FakeTagger, fake_corpus

LANGUAGES = ["token_hop", "word_hop", "no_hop", "partial_reverse", "nondeterministic_shuffle"]
CONTEXT = 16
EPOCHS = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    corpus = fake_corpus(scale=30)
    out = tmp_path_factory.mktemp("stream")
    folders = perturb_corpus(LANGUAGES, corpus, out, tokenizer="fallback", tagger=FakeTagger(), progress=False,
                             fallback_vocab=400)
    return corpus, dict(zip(LANGUAGES, folders))


def reference_train_files(lang, corpus, tok) -> list[list[str]]:
    """data/perturb.py's train files (sorted by name), each a list of 'id id id' lines."""
    files = sorted((f for f in corpus.files() if f.split == "train"), key=lambda f: f.name)
    stream = lang.new_stream()  # one perturb.py run over the split's files
    out = []
    for f in files:
        unaffected, affected = [], []
        for result in lang.perturb_file(FakeTagger().process(f), tok, stream=stream):
            if result.ids is None:
                continue
            line = " ".join(str(t) for t in result.ids)
            (affected if result.affected else unaffected).append(line)
        out.append(unaffected + affected)
    return out


def reference_blocks(lines: list[str], seed: int, eos: int, context: int) -> list[list[int]]:
    """babylm_dataset.py's _generate_examples + __chunk."""
    lines = list(lines)
    np.random.default_rng(seed=seed).shuffle(lines)
    tokens: list[int] = []
    for line in lines:
        tokens.extend(int(t) for t in line.split())
        tokens.append(eos)
    chunks = [tokens[i:i + context] for i in range(0, len(tokens), context)]
    if len(chunks[-1]) < context:
        chunks.pop()
    return chunks


def reference_epoch(n: int, seed: int, epoch: int) -> list[int]:
    """SeedableRandomSampler.__iter__ at ``epoch``: a RandomSampler on a generator seeded seed + epoch."""
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    return list(RandomSampler(range(n), generator=generator))


@pytest.mark.parametrize("name", LANGUAGES)
@pytest.mark.parametrize("seed", [0, 53])
def test_blocks_over_epochs_equal_the_reference(built, name, seed):
    corpus, folders = built
    lang, folder = get_language(name), folders[name]
    tok = load_dataset_tokenizer(folder)
    files = reference_train_files(lang, corpus, tok)
    chunks = reference_blocks([line for f in files for line in f], seed, tok.eos_id, CONTEXT)
    expected = [chunks[b] for e in range(EPOCHS) for b in reference_epoch(len(chunks), seed, e)]

    info = read_dataset_info(folder)
    packed = packed_blocks(info, seed, CONTEXT, info.vocab_size)
    assert packed.n_blocks == len(chunks) > 20
    assert packed.blocks(np.arange(EPOCHS * packed.n_blocks)).tolist() == expected


def test_the_hop_files_are_not_in_corpus_order(built):
    """The corpus mixes affected and unaffected sentences, so the order above is tested, not given."""
    corpus, folders = built
    lang = get_language("token_hop")
    tok = load_dataset_tokenizer(folders["token_hop"])
    for f in sorted((f for f in corpus.files() if f.split == "train"), key=lambda f: f.name):
        flags = [r.affected for r in lang.perturb_file(FakeTagger().process(f), tok) if r.ids is not None]
        assert any(a and not b for a, b in zip(flags, flags[1:]))  # an affected one before an unaffected one
