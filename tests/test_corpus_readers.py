"""Corpus readers on tiny files written in tmp_path (never ../shared)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from impossible_lms.corpus import open_corpus, read_conllu, read_stanza_json, write_conllu, write_stanza_json
from impossible_lms.corpus.readers import ratio_split
from impossible_lms.errors import ILMError
from perturbations.base import Sentence, Word


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def layout(files) -> list[tuple[str, str, list[str]]]:
    return [(f.split, f.genre, list(f.lines())) for f in files]


@pytest.fixture
def babylm2023(tmp_path: Path) -> Path:
    root = tmp_path / "babylm"
    write(root / "babylm_10M" / "aochildes.train", "hello there .\n\n  what's that ?  \n")
    write(root / "babylm_10M" / "switchboard.train", "Uh-huh.\nI think so.\n")
    write(root / "babylm_dev" / "aochildes.dev", "dev line .\n")
    write(root / "babylm_test" / "aochildes.test", "test line .\n")
    write(root / "README.md", "not a corpus file\n")
    return root


def test_babylm_2023_layout(babylm2023: Path) -> None:
    corpus = open_corpus(babylm2023)
    assert corpus.name == "babylm-10M"
    assert layout(corpus.files()) == [
        ("train", "aochildes", ["hello there .", "what's that ?"]),  # stripped, blank lines dropped
        ("train", "switchboard", ["Uh-huh.", "I think so."]),
        ("dev", "aochildes", ["dev line ."]),
        ("test", "aochildes", ["test line ."]),
    ]
    assert [f.name for f in corpus.files("dev")] == ["aochildes.dev"]
    assert corpus.splits() == ["train", "dev", "test"]
    assert all(f.pretagged() is None for f in corpus.files())


def test_babylm_2024_layout_strips_speakers(tmp_path: Path) -> None:
    root = tmp_path / "bl24"
    write(root / "train_10M" / "childes.train", "*CHI: no .\nmore juice .\n")
    write(root / "train_10M" / "switchboard.train", "A:\tI'm sure they are.\nB:\tThat's right,\n")
    write(root / "dev" / "switchboard.dev", "A:\tOkay.\n")
    write(root / "test" / "childes.test", "bye .\n")
    corpus = open_corpus(root)
    assert layout(corpus.files()) == [
        ("train", "childes", ["*CHI: no .", "more juice ."]),
        ("train", "switchboard", ["I'm sure they are.", "That's right,"]),
        ("dev", "switchboard", ["Okay."]),
        ("test", "childes", ["bye ."]),
    ]


def test_train_size_choice(babylm2023: Path) -> None:
    write(babylm2023 / "babylm_100M" / "aochildes.train", "a bigger corpus .\n")
    with pytest.raises(ILMError, match=r"several training sets \(100M, 10M\).*train=<size>"):
        open_corpus(babylm2023)
    big = open_corpus(babylm2023, options={"train": "100M"})
    assert [list(f.lines()) for f in big.files("train")] == [["a bigger corpus ."]]
    with pytest.raises(ILMError, match="no 1B training set; choose from 100M, 10M"):
        open_corpus(babylm2023, options={"train": "1B"})
    with pytest.raises(ILMError, match="unknown option 'size' for a babylm corpus"):
        open_corpus(babylm2023, options={"size": "10M"})


def test_single_split_folder(babylm2023: Path) -> None:
    corpus = open_corpus(babylm2023 / "babylm_dev")
    assert layout(corpus.files()) == [("dev", "aochildes", ["dev line ."])]


def test_txt_file_is_split_90_5_5_by_line_index(tmp_path: Path) -> None:
    path = write(tmp_path / "stories.txt", "".join(f"line {i}\n" for i in range(40)))
    corpus = open_corpus(path)
    by_split = {f.split: list(f.lines()) for f in corpus.files()}
    assert by_split["dev"] == ["line 18", "line 38"]
    assert by_split["test"] == ["line 19", "line 39"]
    assert len(by_split["train"]) == 36 and by_split["train"][:3] == ["line 0", "line 1", "line 2"]
    assert {f.genre for f in corpus.files()} == {"stories"}
    assert [ratio_split(i) for i in range(20)].count("train") == 18


def test_suffix_file_is_one_split(tmp_path: Path) -> None:
    corpus = open_corpus(write(tmp_path / "cbt.dev", "One.\nTwo.\n"))
    assert layout(corpus.files()) == [("dev", "cbt", ["One.", "Two."])]


def test_bad_bytes_fail_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.train", b"good line\nbad \xff\xfe line\nlast\n")
    f = next(open_corpus(path).files())
    with pytest.raises(ILMError, match=r"x\.train:2: not valid UTF-8"):
        list(f.lines())


def test_bad_bytes_skip_counts_and_warns(tmp_path: Path) -> None:
    path = write(tmp_path / "x.train", b"good line\nbad \xff line\nlast\n")
    f = next(open_corpus(path, errors="skip").files())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(f.lines()) == ["good line", "last"]
    assert f.stats.skipped == 1 and f.stats.lines == 2
    assert any("skipped 1 line" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope", "corpus not found"),
        (lambda p: write(p / "empty.txt", ""), "the corpus is empty"),
        (lambda p: (p / "emptydir").mkdir() or p / "emptydir", "not a corpus ilm can read"),
    ],
)
def test_missing_and_empty(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ILMError, match=message):
        open_corpus(make(tmp_path))


def test_bad_errors_mode(tmp_path: Path) -> None:
    with pytest.raises(ILMError, match="errors must be 'fail' or 'skip'"):
        open_corpus(write(tmp_path / "a.txt", "x\n"), errors="ignore")


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    path = write(tmp_path / "a.train", "one\n")
    first = open_corpus(path)
    assert open_corpus(path).fingerprint == first.fingerprint
    assert next(open_corpus(path).files()).fingerprint == next(first.files()).fingerprint
    write(path, "two\n")
    assert open_corpus(path).fingerprint != first.fingerprint
    assert open_corpus(path, errors="skip").fingerprint != open_corpus(path).fingerprint


# -- pre-tagged formats ------------------------------------------------------------------------

SENTENCES = [
    Sentence(
        "He doesn't know.",
        (
            Word("He", "PRON", "Case=Nom|Gender=Masc|Number=Sing|Person=3|PronType=Prs", "he"),
            Word("does", "AUX", "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin", "do"),
            Word("n't", "PART", "Polarity=Neg", "not"),
            Word("know", "VERB", "VerbForm=Inf", "know"),
            Word(".", "PUNCT", "_", "."),
        ),
        "g",
    ),
    Sentence("Dogs bark", (Word("Dogs", "NOUN", "Number=Plur", "dog"), Word("bark", "VERB", "Mood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin", "bark")), "g"),
]


def test_conllu_round_trip(tmp_path: Path) -> None:
    write_conllu(SENTENCES, tmp_path / "g.conllu")
    assert read_conllu(tmp_path / "g.conllu", genre="g") == SENTENCES


def test_conllu_multiword_tokens_use_words(tmp_path: Path) -> None:
    text = (
        "# sent_id = 1\n# text = I don't.\n"
        "1\tI\tI\tPRON\tPRP\tCase=Nom|Number=Sing|Person=1|PronType=Prs\t3\tnsubj\t_\t_\n"
        "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "2\tdo\tdo\tAUX\tVBP\tMood=Ind|Number=Sing|Person=1|Tense=Pres|VerbForm=Fin\t0\troot\t_\t_\n"
        "3\tn't\tnot\tPART\tRB\tPolarity=Neg\t2\tadvmod\t_\tSpaceAfter=No\n"
        "4\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n\n"
        "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\tSpaceAfter=No\n2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_\n"
    )
    sentences = read_conllu(write(tmp_path / "en-test.conllu", text))
    assert [s.text for s in sentences] == ["I don't.", "Hi!"]  # second text rebuilt from SpaceAfter
    assert [w.text for w in sentences[0].words] == ["I", "do", "n't", "."]
    corpus = open_corpus(tmp_path / "en-test.conllu")
    (f,) = corpus.files()
    assert (f.split, f.genre) == ("test", "en")
    assert list(f.lines()) == ["I don't.", "Hi!"]
    assert f.pretagged()[0].words[1].feats.startswith("Mood=Ind|Number=Sing|Person=1")


def test_conllu_bad_line(tmp_path: Path) -> None:
    with pytest.raises(ILMError, match=r"bad\.conllu:1: .*10 tab-separated columns, found 2"):
        read_conllu(write(tmp_path / "bad.conllu", "1\tword\n"))


def test_stanza_json_round_trip(tmp_path: Path) -> None:
    write_stanza_json(SENTENCES, tmp_path / "g.json")
    assert read_stanza_json(tmp_path / "g.json", genre="g") == SENTENCES


def test_stanza_json_reference_layout(tmp_path: Path) -> None:
    # As the reference's tag.py writes it without --dependency_parse: feats null,
    # several sentences per batch of joined lines.
    data = (
        '[{"sent_annotations": [{"sent_text": "Hi.", "word_annotations": ['
        '{"id": 1, "text": "Hi", "lemma": "hi", "upos": "INTJ", "xpos": "UH", "feats": null, '
        '"start_char": 0, "end_char": 2, "head": null, "deprel": null},'
        '{"id": 2, "text": ".", "lemma": ".", "upos": "PUNCT", "xpos": ".", "feats": null}]},'
        '{"sent_text": "Go.", "word_annotations": [{"id": 1, "text": "Go", "lemma": "go", "upos": "VERB", '
        '"xpos": "VB", "feats": "Mood=Imp|VerbForm=Fin"}, {"id": 2, "text": ".", "lemma": ".", "upos": "PUNCT"}]}]}]'
    )
    got = read_stanza_json(write(tmp_path / "x.json", data), genre="cbt")
    assert got == [
        Sentence("Hi.", (Word("Hi", "INTJ", "_", "hi"), Word(".", "PUNCT", "_", ".")), "cbt"),
        Sentence("Go.", (Word("Go", "VERB", "Mood=Imp|VerbForm=Fin", "go"), Word(".", "PUNCT", "_", ".")), "cbt"),
    ]


def test_babylm_sidecar_json_gives_gold(babylm2023: Path) -> None:
    write_stanza_json(SENTENCES, babylm2023 / "babylm_dev" / "aochildes_parsed.json")
    corpus = open_corpus(babylm2023)
    dev = next(corpus.files("dev"))
    assert [s.text for s in dev.pretagged()] == ["He doesn't know.", "Dogs bark"]
    assert next(corpus.files("train")).pretagged() is None


# -- datasets ------------------------------------------------------------------------------------


def test_datasets_folder_with_genre_column(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a b", "c d", "", "e f"], "genre": ["x", "y", "x", "x"]}),
            "validation": datasets.Dataset.from_dict({"text": ["v"], "genre": ["x"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    corpus = open_corpus(tmp_path / "ds")
    assert layout(corpus.files()) == [
        ("train", "x", ["a b", "e f"]),
        ("train", "y", ["c d"]),
        ("dev", "x", ["v"]),
    ]
    with pytest.raises(ILMError, match="no column 'body'"):
        open_corpus(tmp_path / "ds", options={"text_column": "body"})


def test_hf_refuses_to_download() -> None:
    datasets = pytest.importorskip("datasets")
    if datasets.config.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is set: the reader would read the local cache")
    with pytest.raises(ILMError, match="ilm never downloads.*HF_HUB_OFFLINE=1"):
        open_corpus("hf:org/name")


def test_conllu_folder_is_a_treebank(tmp_path: Path) -> None:
    for split in ("train", "dev", "test"):
        write_conllu(SENTENCES[:1], tmp_path / "ud" / f"en_x-ud-{split}.conllu")
    corpus = open_corpus(tmp_path / "ud")
    assert [(f.split, f.genre) for f in corpus.files()] == [("train", "en_x-ud"), ("dev", "en_x-ud"), ("test", "en_x-ud")]
    assert all(f.pretagged() == [Sentence(SENTENCES[0].text, SENTENCES[0].words, "en_x-ud")] for f in corpus.files())
