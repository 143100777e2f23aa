"""CoNLL-U treebanks of any UD language: trees, multiword tokens, and the pipeline on German and Turkish."""

from __future__ import annotations

from pathlib import Path

import pytest

from impossible_lms.corpus import open_corpus, read_conllu, write_conllu
from impossible_lms.data import load_dataset_tokenizer, load_manifest, load_split
from impossible_lms.errors import ILMError
from impossible_lms.perturb import perturb_corpus
from impossible_lms.tagging.base import decode_chunk, encode_chunk
from perturbations import MARKER_REVERSE, Sentence, Word

# German with multiword tokens (zum = zu + dem, im = in + dem), and no "# text" on the second sentence.
GERMAN = """\
# sent_id = de-1
# text = Die Kinder gehen zum Bahnhof.
1\tDie\tder\tDET\t_\tCase=Nom|Definite=Def|Number=Plur|PronType=Art\t2\tdet\t_\t_
2\tKinder\tKind\tNOUN\t_\tCase=Nom|Number=Plur\t3\tnsubj\t_\t_
3\tgehen\tgehen\tVERB\t_\tMood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin\t0\troot\t_\t_
4-5\tzum\t_\t_\t_\t_\t_\t_\t_\t_
4\tzu\tzu\tADP\t_\t_\t6\tcase\t_\t_
5\tdem\tder\tDET\t_\tCase=Dat|Definite=Def|Number=Sing|PronType=Art\t6\tdet\t_\t_
6\tBahnhof\tBahnhof\tNOUN\t_\tCase=Dat|Number=Sing\t3\tobl\t_\tSpaceAfter=No
7\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# sent_id = de-2
1\tDiese\tdieser\tDET\t_\tCase=Nom|Number=Plur|PronType=Dem\t4\tdet\t_\t_
2\tdrei\tdrei\tNUM\t_\tNumType=Card\t4\tnummod\t_\t_
3\tgroßen\tgroß\tADJ\t_\tDegree=Pos\t4\tamod\t_\t_
4\tHunde\tHund\tNOUN\t_\tNumber=Plur\t5\tnsubj\t_\t_
5\tschlafen\tschlafen\tVERB\t_\tMood=Ind|Number=Plur|Person=3|Tense=Pres|VerbForm=Fin\t0\troot\t_\t_
6-7\tim\t_\t_\t_\t_\t_\t_\t_\tSpaceAfter=No
6\tin\tin\tADP\t_\t_\t8\tcase\t_\t_
7\tdem\tder\tDET\t_\tPronType=Art\t8\tdet\t_\t_
8\tKörbchen\tKörbchen\tNOUN\t_\tNumber=Sing\t5\tobl\t_\tSpaceAfter=No
9\t.\t.\tPUNCT\t_\t_\t5\tpunct\t_\t_

"""

# Turkish; the second sentence is non-projective on purpose (word 1's head 3 spans the root 2 ... 4 <- 1).
TURKISH = """\
# text = Çocuklar bahçede oynuyor.
1\tÇocuklar\tçocuk\tNOUN\t_\tCase=Nom|Number=Plur\t3\tnsubj\t_\t_
2\tbahçede\tbahçe\tNOUN\t_\tCase=Loc|Number=Sing\t3\tobl\t_\t_
3\toynuyor\toyna\tVERB\t_\tAspect=Prog|Number=Sing|Person=3|Tense=Pres\t0\troot\t_\tSpaceAfter=No
4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

# text = şu iki büyük ev güzel
1\tşu\tşu\tDET\t_\tPronType=Dem\t3\tdet\t_\t_
2\tiki\tiki\tNUM\t_\tNumType=Card\t0\troot\t_\t_
3\tbüyük\tbüyük\tADJ\t_\t_\t2\tamod\t_\t_
4\tev\tev\tNOUN\t_\t_\t1\tdep\t_\t_
5\tgüzel\tgüzel\tADJ\t_\t_\t2\tamod\t_\t_

"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_trees_and_multiword_tokens(tmp_path: Path) -> None:
    first, second = read_conllu(write(tmp_path / "de-train.conllu", GERMAN), genre="de")
    assert first.text == "Die Kinder gehen zum Bahnhof."
    # The syntactic words carry the tags and the tree; the surface form is the MWT line's.
    assert [w.text for w in first.words] == ["Die", "Kinder", "gehen", "zu", "dem", "Bahnhof", "."]
    assert [(w.head, w.deprel) for w in first.words] == [(2, "det"), (3, "nsubj"), (0, "root"), (6, "case"),
                                                        (6, "det"), (3, "obl"), (3, "punct")]
    # No "# text": rebuilt from tokens, the MWT form and its SpaceAfter=No included.
    assert second.text == "Diese drei großen Hunde schlafen imKörbchen."
    assert second.words[6] == Word("dem", "DET", "PronType=Art", "der", 8, "det")


def test_round_trip_with_trees(tmp_path: Path) -> None:
    sentences = read_conllu(write(tmp_path / "tr.conllu", TURKISH), genre="g")
    write_conllu(sentences, tmp_path / "back.conllu")
    assert read_conllu(tmp_path / "back.conllu", genre="g") == sentences


def test_tag_cache_keeps_trees_and_untagged_sentences() -> None:
    tree = Sentence("a b", (Word("a", "X", "_", "a", 2, "det"), Word("b", "X", "_", "b", 0, "root")), "g")
    flat = Sentence("a a", (Word("a", "X", "_", "a"), Word("a", "X", "_", "a")), "g")
    bare = Sentence("c", None, "g")
    chunk = [tree, flat, bare]
    assert decode_chunk(encode_chunk(chunk), "g") == chunk
    # each distinct word once; a word without a tree keeps four fields
    assert '"vocab": [["a", "X", "_", "a", 2, "det"], ["b", "X", "_", "b", 0, "root"], ["a", "X", "_", "a"]]' \
        in encode_chunk(chunk)


@pytest.mark.parametrize("bad, message", [
    ("1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n3\tb\tb\tX\t_\t_\t1\tdep\t_\t_\n", "word id '3' where 2 was expected"),
    ("1\ta\ta\tX\t_\t_\tx\troot\t_\t_\n", "HEAD must be a word id"),
    ("1\ta\ta\tX\t_\t_\t5\troot\t_\t_\n", "HEAD 5 beyond its 1 words"),
    ("1-x\tab\t_\t_\t_\t_\t_\t_\t_\t_\n", "bad multiword token range"),
])
def test_bad_trees_name_the_file(tmp_path: Path, bad: str, message: str) -> None:
    with pytest.raises(ILMError, match=message):
        read_conllu(write(tmp_path / "bad.conllu", bad))


def treebank(root: Path) -> Path:
    for split in ("train", "dev", "test"):
        write(root / f"de_x-ud-{split}.conllu", GERMAN)
        write(root / f"tr_x-ud-{split}.conllu", TURKISH)
    return root


LANGS = ["no_shuffle", "local_shuffle:w=3", "full_reverse", "tree_reverse", "head_final", "np_order:order=x"]


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("ud")
    corpus = treebank(root / "bank")
    folders = perturb_corpus(LANGS, corpus, root / "data", tokenizer="fallback", tagger="gold", progress=False,
                             fallback_vocab=400)
    return corpus, folders


def test_shuffles_and_reverses_on_german_and_turkish(perturbed) -> None:
    corpus, folders = perturbed
    by = dict(zip(LANGS, folders))
    tok = load_dataset_tokenizer(by["no_shuffle"])
    m = load_manifest(by["no_shuffle"])
    assert (m.tokenizer["name"], m.tokenizer["fallback"]) == ("fallback", True)  # BPE trained on the corpus
    texts = [s.text for f in sorted(open_corpus(corpus).files("train"), key=lambda f: f.name) for s in f.pretagged()]
    control = load_split(by["no_shuffle"], "train")["input_ids"]
    assert [tok.decode(ids) for ids in control] == texts  # non-ASCII survives tokenising
    assert "Çocuklar bahçede oynuyor." in texts and "Die Kinder gehen zum Bahnhof." in texts
    shuffled = load_split(by["local_shuffle:w=3"], "train")["input_ids"]
    assert [sorted(a) for a in shuffled] == [sorted(b) for b in control] and shuffled != control
    rev_tok = load_dataset_tokenizer(by["full_reverse"])
    marker = rev_tok.marker_ids[MARKER_REVERSE]
    reversed_ = load_split(by["full_reverse"], "train")["input_ids"]
    assert [[i for i in ids if i != marker][::-1] for ids in reversed_] == control


def test_tree_languages_in_the_pipeline(perturbed) -> None:
    corpus, folders = perturbed
    by = dict(zip(LANGS, folders))
    tok = load_dataset_tokenizer(by["tree_reverse"])
    train = [tok.decode(ids) for ids in load_split(by["tree_reverse"], "train")["input_ids"]]
    # Syntactic words re-joined by spaces, reversed (zum -> "zu dem"); the non-projective sentence unchanged.
    assert ". Bahnhof dem zu gehen Kinder Die" in train
    assert "şu iki büyük ev güzel" in train
    np_train = [tok.decode(ids) for ids in load_split(by["np_order:order=x"], "train")["input_ids"]]
    assert "Hunde großen drei Diese schlafen in dem Körbchen ." in np_train
    for lang in ("tree_reverse", "head_final", "np_order:order=x"):
        m = load_manifest(by[lang])
        assert m.family == "tree"
        for split in ("train", "dev", "test_unaffected"):
            # Per language file (de, tr): one non-projective Turkish sentence per split.
            assert (m.counts[split]["nonprojective"], m.counts[split]["no_tree"]) == (1, 0), (lang, split)
    affected = load_split(by["np_order:order=x"], "test_affected")
    assert affected.num_rows == 1  # only "Diese drei großen Hunde ..." has a Dem/Num/Adj noun phrase
    assert load_split(by["tree_reverse"], "test_affected").num_rows == 3


def test_tree_languages_refuse_taggers_without_trees(tmp_path: Path) -> None:
    corpus = treebank(tmp_path / "bank")
    with pytest.raises(ILMError, match="need dependency trees.*--tagger gold"):
        perturb_corpus(["head_final"], corpus, tmp_path / "data", tokenizer="fallback", tagger="nltk", progress=False)
