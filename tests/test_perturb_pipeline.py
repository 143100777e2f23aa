"""perturb_corpus on a small fake corpus: exact reuse of tokens, determinism, reruns, failures."""

from __future__ import annotations

import json

import datasets
import pytest

from impossible_lms.data import load_manifest, load_split
from impossible_lms.errors import ILMError
from impossible_lms.perturb import perturb_corpus, resolve_languages
from impossible_lms.tokenizer import MarkedTokenizer, load_tokenizer
from perturbations import get_language
from test_perturb_pipeline_fakes import FakeCorpus, FakeFile, FakeTagger, fake_corpus

SOME = ["no_shuffle", "nondeterministic_shuffle", "local_shuffle:w=3", "partial_reverse", "word_hop", "token_hop"]


@pytest.fixture(scope="module")
def corpus() -> FakeCorpus:
    return fake_corpus()


@pytest.fixture(scope="module")
def tok(corpus) -> MarkedTokenizer:
    return load_tokenizer("fallback", corpus=corpus, fallback_vocab=400)


def run(corpus, out, languages=SOME, tok=None, **kw):
    kw.setdefault("tagger", FakeTagger())
    return perturb_corpus(languages, corpus, out, tokenizer=tok, progress=False, **kw)


def contents(folder) -> dict:
    dd = datasets.load_from_disk(str(folder))
    m = load_manifest(folder).to_dict()
    m.pop("created"), m.pop("checksum")  # both depend on when it was written
    return {"manifest": m, **{s: dd[s].to_dict() for s in dd}}


def test_layout_and_exact_ids(corpus, tok, tmp_path):
    folders = run(corpus, tmp_path, tok=tok)
    assert [f.name for f in folders] == ["no_shuffle", "nondeterministic_shuffle", "local_shuffle_w=3", "partial_reverse", "word_hop", "token_hop"]
    # The control language is the corpus, tokenised once, train files in sorted order.
    tagger = FakeTagger()
    train = sorted((f for f in corpus.files() if f.split == "train"), key=lambda f: f.name)
    expected = [tok.encode(s.text) for f in train for s in tagger.process(f)]
    genres = [f.genre for f in train for _ in tagger.process(f)]
    ds = load_split(folders[0], "train")
    assert ds["input_ids"] == expected
    assert ds["genre"] == genres
    m = load_manifest(folders[3])
    assert m.language == "partial_reverse" and m.family == "reverse" and m.params == {"seed": 21}
    assert m.vocab_size == tok.vocab_size + 1 and m.marker_ids == {"🅁": tok.vocab_size}
    assert m.tokenizer["fallback"] is True and m.tagger == "fake"
    assert m.corpus == {"name": "fake", "fingerprint": corpus.fingerprint}
    assert (folders[3] / "tokenizer" / "tokenizer.json").is_file()


def test_stochastic_stream_runs_through_the_split_in_file_order(corpus, tok, tmp_path):
    (folder,) = run(corpus, tmp_path, ["nondeterministic_shuffle"], tok=tok)
    lang = get_language("nondeterministic_shuffle")
    tagger = FakeTagger()
    train = sorted((f for f in corpus.files() if f.split == "train"), key=lambda f: f.name)
    sentences = [s for f in train for s in tagger.process(f)]
    want = lang.perturb_file(sentences, tok, stream=lang.new_stream())
    assert load_split(folder, "train")["input_ids"] == [p.ids for p in want if p.ids is not None]


def test_marker_characters_in_the_corpus_are_encoded_as_each_language_would(tok, tmp_path):
    # A corpus sentence that already holds 🅁: the reverse languages' tokenizer reads it as
    # the marker token (and it is no content), the shuffles' tokenizer as plain bytes.
    text = ["the dog runs 🅁 .", "the cat sleeps ."]
    corpus = FakeCorpus("marked", [FakeFile(split, "g", f"g.{split}", text) for split in ("train", "dev", "test")])
    shuffle, reverse = run(corpus, tmp_path, ["no_shuffle", "no_reverse"], tok=tok)
    assert load_split(shuffle, "train")["input_ids"] == [tok.encode(t) for t in text]
    marked = tok.with_markers(["🅁"])
    r = marked.marker_ids["🅁"]
    first, second = load_split(reverse, "train")["input_ids"]
    assert r in marked.encode(text[0]) and r not in tok.encode(text[0])
    assert [i for i in first if i != r] == [i for i in marked.encode(text[0]) if i != r]
    assert first.count(r) == 2 and second.count(r) == 1


def test_hop_test_sentences_split_by_affectedness(corpus, tok, tmp_path):
    (folder,) = run(corpus, tmp_path, ["no_hop"], tok=tok)
    aff, unaff = load_split(folder, "test_affected"), load_split(folder, "test_unaffected")
    assert len(aff) > 0 and len(unaff) > 0
    assert set(aff["affected"]) == {True} and set(unaff["affected"]) == {False}
    markers = set(load_manifest(folder).marker_ids.values())
    assert all(markers & set(ids) for ids in aff["input_ids"])
    assert not any(markers & set(ids) for ids in unaff["input_ids"])
    # Shuffles affect everything: their unaffected test split is empty.
    (shuf,) = run(corpus, tmp_path, ["even_odd_shuffle"], tok=tok)
    assert len(load_split(shuf, "test_unaffected")) == 0


def test_same_output_for_any_worker_count(corpus, tok, tmp_path):
    one = run(corpus, tmp_path / "w1", tok=tok, workers=1)
    two = run(corpus, tmp_path / "w2", tok=tok, workers=2)
    again = run(corpus, tmp_path / "w1b", tok=tok, workers=1)
    for a, b, c in zip(one, two, again):
        assert contents(a) == contents(b) == contents(c)


def test_reads_tags_and_tokenises_each_file_once(corpus, tok, tmp_path, monkeypatch):
    calls = []
    real = MarkedTokenizer.encode_batch
    monkeypatch.setattr(MarkedTokenizer, "encode_batch", lambda self, texts: calls.append(len(texts)) or real(self, texts))
    tagger = FakeTagger()
    run(corpus, tmp_path, ["all"], tok=tok, tagger=tagger)
    assert tagger.calls == len(corpus.files())
    assert len(calls) == len(corpus.files())


def test_rerun_skips_finished_languages(corpus, tok, tmp_path):
    first = run(corpus, tmp_path, ["no_shuffle", "no_reverse"], tok=tok)
    stamps = [load_manifest(f).created for f in first]
    (first[0] / "manifest.json").touch()
    mtime = (first[0] / "manifest.json").stat().st_mtime_ns
    tagger = FakeTagger()
    again = run(corpus, tmp_path, ["no_shuffle", "no_reverse"], tok=tok, tagger=tagger)
    assert again == first and tagger.calls == 0
    assert [load_manifest(f).created for f in again] == stamps
    assert (first[0] / "manifest.json").stat().st_mtime_ns == mtime
    # A new language in the same call is made; the finished one is left alone.
    run(corpus, tmp_path, ["no_shuffle", "full_reverse"], tok=tok)
    assert (first[0] / "manifest.json").stat().st_mtime_ns == mtime
    assert load_manifest(tmp_path / "full_reverse").language == "full_reverse"


def test_other_corpus_in_the_same_out_is_refused_unless_forced(corpus, tok, tmp_path):
    run(corpus, tmp_path, ["no_shuffle"], tok=tok)
    other = fake_corpus(scale=10, name="other")
    with pytest.raises(ILMError, match=r"no_shuffle exists with a different manifest \(corpus differ\); pass --force"):
        run(other, tmp_path, ["no_shuffle"], tok=tok)
    assert load_manifest(tmp_path / "no_shuffle").corpus["name"] == "fake"
    run(other, tmp_path, ["no_shuffle"], tok=tok, force=True)
    assert load_manifest(tmp_path / "no_shuffle").corpus["name"] == "other"


def test_a_dataset_of_the_older_format_is_refused_then_rebuilt_with_force(corpus, tok, tmp_path):
    """Format 1 kept the hop languages' train rows in corpus order (another training stream): never reused."""
    from impossible_lms.training.data import read_dataset_info

    (folder,) = run(corpus, tmp_path, ["token_hop"], tok=tok)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": "ilm-dataset/1"}))
    with pytest.raises(ILMError, match=r"token_hop exists but its manifest cannot be reused .*format 'ilm-dataset/1' "
                                       r"is not 'ilm-dataset/2': another ilm version wrote it.*--force"):
        run(corpus, tmp_path, ["token_hop"], tok=tok)
    with pytest.raises(ILMError, match="another ilm version wrote it; rebuild the dataset"):
        read_dataset_info(folder)  # training refuses it too
    run(corpus, tmp_path, ["token_hop"], tok=tok, force=True)
    assert load_manifest(folder).format == "ilm-dataset/2"


def test_foreign_folder_is_refused(corpus, tok, tmp_path):
    (tmp_path / "no_shuffle").mkdir()
    (tmp_path / "no_shuffle" / "notes.txt").write_text("mine")
    with pytest.raises(ILMError, match="exists but is not an ilm dataset"):
        run(corpus, tmp_path, ["no_shuffle"], tok=tok)
    assert (tmp_path / "no_shuffle" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_language_failing_midway_leaves_nothing_half_written(corpus, tok, tmp_path, monkeypatch, workers):
    lang_cls = type(get_language("partial_reverse"))

    def boom(self, *a, **k):
        raise RuntimeError("perturbation crashed")

    monkeypatch.setattr(lang_cls, "_perturb", boom)
    with pytest.raises(RuntimeError, match="perturbation crashed"):
        run(corpus, tmp_path, ["no_shuffle", "partial_reverse", "even_odd_shuffle"], tok=tok, workers=workers)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "partial_reverse" not in names
    assert not [n for n in names if n.startswith(".")], names  # no temporary folders left
    if "no_shuffle" in names:  # finished before the failure: complete and reusable
        assert len(load_split(tmp_path / "no_shuffle", "train")) > 0


def test_unknown_language_suggests_names(corpus, tok, tmp_path):
    with pytest.raises(ILMError, match="unknown language 'word_hopp'; did you mean word_hop"):
        run(corpus, tmp_path, ["no_shuffle", "word_hopp"], tok=tok)
    assert list(tmp_path.iterdir()) == []


def test_empty_corpus_is_a_user_error(tok, tmp_path):
    with pytest.raises(ILMError, match="has no files"):
        run(FakeCorpus("nothing", []), tmp_path, ["no_shuffle"], tok=tok)
    with pytest.raises(ILMError, match="has no sentences"):
        run(FakeCorpus("blank", [FakeFile("train", "g", "g.train", [])]), tmp_path, ["no_shuffle"], tok=tok)
    assert list(tmp_path.iterdir()) == []


def test_bad_options(corpus, tok, tmp_path):
    with pytest.raises(ILMError, match="word_hop need tagged sentences; use --tagger nltk"):
        run(corpus, tmp_path, ["no_shuffle", "word_hop"], tok=tok, tagger="none")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ILMError, match="is a file, not a folder"):
        run(corpus, tmp_path / "file", tok=tok)
    with pytest.raises(ILMError, match="--workers must be at least 1"):
        run(corpus, tmp_path, tok=tok, workers=0)
    with pytest.raises(ILMError, match="--on-bad-bytes"):
        run(corpus, tmp_path, tok=tok, errors="ignore")


def test_fallback_tokenizer_is_trained_and_labelled(corpus, tmp_path):
    (folder,) = perturb_corpus(["no_reverse"], corpus, tmp_path, tokenizer="fallback", tagger=FakeTagger(),
                               progress=False, fallback_vocab=350)
    m = json.loads((folder / "manifest.json").read_text())
    assert m["tokenizer"]["fallback"] is True and m["tokenizer"]["name"] == "fallback"
    assert m["vocab_size"] <= 352


def test_shorthands():
    names = [lang.name for lang in resolve_languages(["reference"])]
    assert len(names) == 15 and names[0] == "no_shuffle" and names[-1] == "word_hop"
    assert [lang.name for lang in resolve_languages(["hop", "no_hop", "all"])][:3] == ["no_hop", "token_hop", "word_hop"]
    assert [lang.name for lang in resolve_languages("reverse")] == ["no_reverse", "partial_reverse", "full_reverse"]


def test_tagger_matters_only_for_languages_that_need_tags(corpus, tok, tmp_path):
    class Splitter(FakeTagger):
        name = "none"

    class Stanza(FakeTagger):
        name = "stanza"

    (shuf,) = run(corpus, tmp_path, ["no_shuffle"], tok=tok, tagger=Splitter())
    before = (shuf / "manifest.json").stat().st_mtime_ns
    run(corpus, tmp_path, ["no_shuffle", "word_hop"], tok=tok)  # same punkt sentences: no_shuffle kept
    assert (shuf / "manifest.json").stat().st_mtime_ns == before
    assert load_manifest(tmp_path / "word_hop").tagger == "fake"
    with pytest.raises(ILMError, match=r"word_hop exists with a different manifest \(tagger differ\)"):
        run(corpus, tmp_path, ["word_hop"], tok=tok, tagger=Stanza())
    with pytest.raises(ILMError, match=r"no_shuffle exists with a different manifest \(tagger differ\)"):
        run(corpus, tmp_path, ["no_shuffle"], tok=tok, tagger=Stanza())  # other sentence splitter


class ChunkedFakeTagger(FakeTagger):
    """FakeTagger's rules as a line tagger: the pipeline reads its lines three at a time."""

    def __init__(self) -> None:
        from impossible_lms.tagging.base import LineTagger

        super().__init__()
        self._line = type("Lines", (LineTagger,), {"name": "fakelines", "chunk_lines": 3,
                                                    "tag_lines": lambda _, lines, genre: self._tag(lines, genre)})()

    def line_tagger_for(self, corpus_file):
        return self._line

    def _tag(self, lines, genre):
        return FakeTagger.process(self, FakeFile("x", genre, "x", list(lines)))


@pytest.mark.parametrize("workers", [1, 2])
def test_streaming_in_small_chunks_gives_the_whole_file_rules(corpus, tok, tmp_path, monkeypatch, workers):
    """Every file in many chunks (three lines, or four sentences, at a time): each split equals the
    rules applied to whole files at once (perturb_split), the hops' unaffected-then-affected order
    per file and the stochastic streams through the split included."""
    from impossible_lms.perturb import perturb_split
    from impossible_lms.tagging import base as tagging_base
    from perturbations import Ragged

    monkeypatch.setattr(tagging_base, "CHUNK_LINES", 4)  # the sentence chunks of a whole-file tagger
    langs = ["no_shuffle", "nondeterministic_shuffle", "local_shuffle:w=3", "partial_reverse", "full_reverse",
             "no_hop", "token_hop", "word_hop"]
    reference = FakeTagger()
    files = sorted(corpus.files(), key=lambda f: (("train", "dev", "test").index(f.split), f.name))
    for tagger in (FakeTagger(), ChunkedFakeTagger()):
        folders = run(corpus, tmp_path / tagger.name, langs, tok=tok, tagger=tagger, workers=workers, cache_dir="none")
        for folder, spec in zip(folders, langs):
            lang = get_language(spec)
            t = tok.with_markers(lang.markers)
            for split in ("train", "dev", "test"):
                records = []
                for f in (f for f in files if f.split == split):
                    sentences = reference.process(f)
                    records.append((split, f.genre, sentences, Ragged.from_lists([t.encode(s.text) for s in sentences])))
                for name, want in perturb_split(lang, records, t).items():
                    got = load_split(folder, name)
                    assert got["input_ids"] == want.ids.to_lists(), (tagger.name, spec, name)
                    assert got["genre"] == want.genre and got["affected"] == want.affected.tolist()
