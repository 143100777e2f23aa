"""Edge probing: a linearly decodable label is found, shuffled labels are not, spans map exactly."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from impossible_lms.analysis.probe import (  # noqa: E402
    feature_sets, join_with_offsets, probe, probe_accuracy, read_trees, token_spans,
)
from impossible_lms.errors import ILMError  # noqa: E402


def _decodable(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["NP", "VP", "PP"])[rng.integers(0, 3, n)]
    centres = {"NP": 0, "VP": 1, "PP": 2}
    x = rng.normal(0, 0.3, (n, d))
    for i, l in enumerate(labels):
        x[i, centres[l]] += 3.0
    return x, labels


def test_decodable_labels_are_found_and_shuffled_ones_are_at_chance():
    x, labels = _decodable()
    acc = probe_accuracy(x, labels, seed=1)
    assert acc["all"][0] >= 95.0 and all(acc[l][0] >= 90.0 for l in ("NP", "VP", "PP"))
    assert len(acc["all"][1]) == 120  # the 20% test share
    shuffled = np.random.default_rng(5).permutation(labels)
    chance = probe_accuracy(x, shuffled, seed=1)["all"][0]
    assert abs(chance - 100 / 3) < 12.0


class _Enc:
    def __init__(self, ids, offsets):
        self.ids, self.offsets = ids, offsets


class CharPairs:
    """A toy tokenizer: every two characters are a token (a token may straddle a space)."""

    class backend:  # noqa: N801
        @staticmethod
        def encode(text, add_special_tokens=False):
            offs = [(i, min(i + 2, len(text))) for i in range(0, len(text), 2)]
            return _Enc(list(range(len(offs))), offs)


def test_bracketed_tree_spans_map_to_token_spans(tmp_path):
    path = tmp_path / "t.mrg"
    path.write_text("( (S (NP-SBJ (DT the) (NN dog)) (VP (VBZ does) (RB n't) (VP (VB see) (NP (PRP us)))) (. .)) )\n"
                    "(S (NP (NNS cats)) (VP (VBD ran) (PP (IN to) (NP (DT a) (NN box)))))\n", encoding="utf-8")
    (w1, s1), (w2, s2) = read_trees(path)
    assert w1 == ["the", "dog", "does", "n't", "see", "us", "."]
    assert s1 == [("NP", 0, 2), ("NP", 5, 6), ("VP", 4, 6), ("VP", 2, 6)]
    assert s2 == [("NP", 0, 1), ("NP", 3, 5), ("PP", 2, 5), ("VP", 1, 5)]
    text, ranges = join_with_offsets(w1)
    assert text == "the dog doesn't see us ." and ranges[3] == (12, 15)
    # "th|e |do|g |do|es|n'|t |se|e |us| ." : token t belongs to the word holding its last character
    sent = token_spans(w1, s1, CharPairs)
    assert sent.spans == (("NP", 0, 4), ("NP", 10, 11), ("VP", 8, 11), ("VP", 4, 11))  # " ." is the period's
    with pytest.raises(ILMError, match="unbalanced"):
        (tmp_path / "bad.mrg").write_text("(S (NP a)", encoding="utf-8")
        read_trees(tmp_path / "bad.mrg")


def test_feature_sets_clip_to_the_model():
    assert feature_sets(12) == {"layer1": [0], "layer3": [2], "layer6": [5], "layer9": [8], "layer12": [11],
                                "last4": [8, 9, 10, 11]}
    assert feature_sets(2) == {"layer1": [0], "last4": [0, 1]}


def test_synthetic_trees_are_the_corpus_sentences():
    from impossible_lms.corpus import synthetic

    plain = synthetic.generate_file("stories", "test", 20, 0)
    with_trees = synthetic.generate_file_trees("stories", "test", 20, 0)
    assert [s.text for s in plain] == [s.text for s, _ in with_trees]
    for s, spans in with_trees:
        assert spans and all(0 <= a < b <= len(s.words) for _, a, b in spans)
    assert sum(l == "VP" for _, spans in with_trees for l, _, _ in spans) >= 15


@pytest.fixture(scope="module")
def hop_data(tmp_path_factory):
    from impossible_lms.perturb import perturb_corpus

    out = tmp_path_factory.mktemp("probe")
    perturb_corpus(["word_hop"], "synthetic", out, tokenizer="fallback", tagger="gold", progress=False,
                   corpus_options={"sentences": 3000, "seed": 0}, fallback_vocab=300)
    return out / "word_hop"


def test_probe_end_to_end_rows_stored_and_cli(tmp_path, hop_data):
    from typer.testing import CliRunner

    from cli.main import app
    from impossible_lms.evaluation.toy import make_toy_run

    run = make_toy_run(tmp_path / "run", steps=(100,), language="word_hop", vocab_size=400, seed=3)
    df = probe(run, hop_data, results=tmp_path / "results")
    assert set(df["metric"]) == {"probe_accuracy"} and set(df["unit"]) == {"%"}
    assert set(df["subset"]) == {"layer1", "last4"} and "all" in set(df["label"])
    assert {"NP", "all"} <= set(df["label"]) and df["value"].between(0, 100).all()
    result = CliRunner().invoke(app, ["probe", str(run), "--data", str(hop_data), "--results", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert f"{len(df)} row(s)" in result.output
    bad = CliRunner().invoke(app, ["probe", str(run), "--data", str(hop_data), "--trees", str(tmp_path / "none.mrg")])
    assert bad.exit_code == 1 and "trees file not found" in bad.output and "Traceback" not in bad.output


def test_missing_sklearn_is_one_line(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_sklearn(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ILMError, match=r"pip install 'ilm\[probe\]'"):
        probe(tmp_path, tmp_path)


def test_report_view_for_probe_accuracy(tmp_path, hop_data):
    from impossible_lms.evaluation import load_results
    from impossible_lms.evaluation.toy import make_toy_run
    from impossible_lms.reporting import make_report, report

    for seed in (3, 4):
        run = make_toy_run(tmp_path / f"run{seed}", steps=(100,), language="word_hop", vocab_size=400, seed=seed)
        probe(run, hop_data, results=tmp_path / "results")
    df = load_results([tmp_path / "results"])
    tables, _ = report([tmp_path / "results"], tmp_path / "report", ["csv"])
    cells = tables["probe"]
    one = cells[(cells["subset"] == "last4") & (cells["label"] == "all")].iloc[0]
    assert one["seeds"] == 2
    assert one["value"] == pytest.approx(df[(df["subset"] == "last4") & (df["label"] == "all")]["value"].mean())
    names = {f.name for f in make_report(df, tmp_path / "report", ["png"])}
    assert "probe_word_hop_tiny-gpt2.png" in names


def test_stanza_hook_parses_the_datasets_sentences_or_says_how_to_install(tmp_path, hop_data, monkeypatch):
    import sys
    import types

    from impossible_lms.analysis.probe import probe_data

    monkeypatch.setitem(sys.modules, "stanza", None)  # "not installed"
    with pytest.raises(ILMError, match=r"pip install 'ilm\[stanza\]', or give --trees FILE"):
        probe_data(hop_data, "stanza")
    with pytest.raises(ILMError, match="--trees stanza"):  # a non-synthetic corpus without trees
        from impossible_lms.analysis.probe import synthetic_trees

        synthetic_trees(types.SimpleNamespace(corpus={"name": "babylm"}))

    parsed: list[str] = []

    class Pipeline:  # Stanza's shape: doc.sentences[i].constituency prints as a bracketed tree
        def __init__(self, lang, processors, download_method, verbose):
            assert download_method is None  # never fetch models behind the user's back

        def __call__(self, text):
            parsed.append(text)
            words = text.split()
            tree = "(ROOT (S (NP " + " ".join(f"(X {w})" for w in words[:2]) + ") (VP " + \
                   " ".join(f"(X {w})" for w in words[2:]) + ")))"
            return types.SimpleNamespace(sentences=[types.SimpleNamespace(constituency=tree)])

    monkeypatch.setitem(sys.modules, "stanza", types.SimpleNamespace(Pipeline=Pipeline))
    sentences = probe_data(hop_data, "stanza")
    assert parsed and all(len(t) >= 50 for t in parsed)
    labels = [l for s in sentences for l, _, _ in s.spans]
    assert labels.count("NP") == labels.count("VP") == len(sentences) > 0


def test_run_stage_probes_hop_data_and_no_reverse_for_the_reverse_family(tmp_path, monkeypatch):
    import types

    from impossible_lms.experiment.analyses import ANALYSES
    from impossible_lms.experiment.layout import Layout, Run

    calls = []
    monkeypatch.setattr("impossible_lms.analysis.probe.probe", lambda run, folder, **kw: calls.append((folder, kw)))
    monkeypatch.setattr(Layout, "run", lambda self, run: tmp_path / "run")
    (tmp_path / "data" / "no_reverse").mkdir(parents=True)
    (tmp_path / "data" / "no_reverse" / "manifest.json").write_text("{}")
    cfg = types.SimpleNamespace(out=tmp_path)  # the layout puts data/ and results/ under it
    stage = ANALYSES["probe"]
    assert stage.applies("word_hop") and stage.applies("partial_reverse") and stage.applies("no_shuffle")
    assert not stage.applies("local_shuffle:w=3")  # its words are out of order
    assert stage.run(cfg, Run("partial_reverse", "gpt2", 0), {"trees": "stanza"}) == [tmp_path / "results"]
    stage.run(cfg, Run("word_hop", "gpt2", 0), {})
    assert calls[0] == (tmp_path / "data" / "no_reverse",
                        {"show_progress": True, "trees": "stanza", "results": tmp_path / "results"})
    assert calls[1][0] == tmp_path / "data" / "word_hop"


def test_sentences_longer_than_the_context_are_skipped_and_counted():
    """One sentence of 344 tokens must not abort a probe of a model with a 256-token context."""
    import types

    import pytest as _pytest

    from impossible_lms.analysis.probe import ProbeSentence, fitting

    model = types.SimpleNamespace(config=types.SimpleNamespace(n_positions=8))
    short, long_ = ProbeSentence((1, 2, 3), (("NP", 0, 2),)), ProbeSentence(tuple(range(12)), (("NP", 0, 2),))
    with _pytest.warns(UserWarning, match=r"skipped 1 of 2 sentences longer than the model's context of 8 tokens "
                                          r"\(the longest has 12\)"):
        assert fitting([short, long_], model) == [short]
    with _pytest.raises(ILMError, match="every probe sentence is longer than the model's context of 8 tokens"):
        fitting([long_], model)
