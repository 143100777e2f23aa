"""Names → languages: the 15 reference languages, parametric specs, aliases, errors."""

from __future__ import annotations

import re

import pytest

from perturbations.errors import ILMError
from perturbations import (
    MARKER_PLURAL,
    MARKER_REVERSE,
    MARKER_SINGULAR,
    REFERENCE_LANGUAGES,
    Language,
    Sentence,
    get_language,
    language_table,
    list_languages,
)
from perturbations.toy import ToyTokenizer


def test_fifteen_reference_languages_in_paper_order() -> None:
    assert [lang.display for lang in list_languages()] == [
        "NoShuffle",
        "NondeterministicShuffle",
        "DeterministicShuffle (seed=21)",
        "DeterministicShuffle (seed=57)",
        "DeterministicShuffle (seed=84)",
        "LocalShuffle (w=3)",
        "LocalShuffle (w=5)",
        "LocalShuffle (w=10)",
        "EvenOddShuffle",
        "NoReverse",
        "PartialReverse",
        "FullReverse",
        "NoHop",
        "TokenHop",
        "WordHop",
    ]
    assert [lang.name for lang in list_languages()] == list(REFERENCE_LANGUAGES)


@pytest.mark.parametrize("name", REFERENCE_LANGUAGES)
def test_name_round_trips(name: str) -> None:
    lang = get_language(name)
    assert lang.name == name
    assert get_language(lang.name) == lang
    assert get_language(lang) is lang
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", lang.color)


def test_families_markers_and_tags() -> None:
    by_family = {f: [lang.name for lang in list_languages(f)] for f in ("shuffle", "reverse", "hop")}
    assert len(by_family["shuffle"]) == 9
    assert by_family["reverse"] == ["no_reverse", "partial_reverse", "full_reverse"]
    assert by_family["hop"] == ["no_hop", "token_hop", "word_hop"]
    for lang in list_languages():
        expected = {"shuffle": (), "reverse": (MARKER_REVERSE,), "hop": (MARKER_SINGULAR, MARKER_PLURAL)}
        assert lang.markers == expected[lang.family]
        assert lang.needs_tags == (lang.family == "hop")
    assert (MARKER_REVERSE, MARKER_SINGULAR, MARKER_PLURAL) == ("\U0001F141", "\U0001F142", "\U0001F13F")


@pytest.mark.parametrize(
    "spec, name, display, params",
    [
        ("local_shuffle:w=7", "local_shuffle:w=7", "LocalShuffle (w=7)", {"w": 7, "seed": 0}),
        ("deterministic_shuffle:seed=9", "deterministic_shuffle:seed=9", "DeterministicShuffle (seed=9)", {"seed": 9}),
        ("token_hop:n=2", "token_hop:n=2", "TokenHop (n=2)", {"n": 2}),
        ("word_hop:n=2", "word_hop:n=2", "WordHop (n=2)", {"n": 2}),
        ("word_hop:n=4", "word_hop", "WordHop", {"n": 4}),  # the default is not shown
        (" Local-Shuffle:w=3 ", "local_shuffle:w=3", "LocalShuffle (w=3)", {"w": 3, "seed": 0}),
        ("local_shuffle:w=3,seed=5", "local_shuffle:w=3,seed=5", "LocalShuffle (w=3, seed=5)", {"w": 3, "seed": 5}),
    ],
)
def test_parametric_specs(spec: str, name: str, display: str, params: dict) -> None:
    lang = get_language(spec)
    assert (lang.name, lang.display, lang.params) == (name, display, params)
    assert get_language(lang.name) == lang


def test_parametric_language_behaves_per_its_parameter() -> None:
    tok = ToyTokenizer()
    ids = [list(range(100, 107))]
    out = get_language("local_shuffle:w=2").perturb_file([Sentence("x")], tok, ids=ids)
    # default_rng(0) orders two items [0, 1]: w=2 is the identity.
    assert out[0].ids == ids[0]


@pytest.mark.parametrize(
    "alias, name",
    [
        ("shuffle_local3", "local_shuffle:w=3"),
        ("shuffle_deterministic57", "deterministic_shuffle:seed=57"),
        ("hop_words4", "word_hop"),
        ("hop_tokens4", "token_hop"),
        ("hop_control", "no_hop"),
        ("reverse_partial", "partial_reverse"),
        ("shuffle_control", "no_shuffle"),
        ("local-shuffle-w10", "local_shuffle:w=10"),  # Hub model name
        ("deterministic-shuffle-s84", "deterministic_shuffle:seed=84"),
        ("local_shuffle_w=3", "local_shuffle:w=3"),  # dataset folder name
        ("token-hop", "token_hop"),
        ("TokenHop", "token_hop"),  # display names
        ("LocalShuffle:w=3", "local_shuffle:w=3"),
        ("NondeterministicShuffle", "nondeterministic_shuffle"),
    ],
)
def test_reference_and_folder_names(alias: str, name: str) -> None:
    assert get_language(alias).name == name


@pytest.mark.parametrize("name", [*REFERENCE_LANGUAGES, "local_shuffle:w=3,seed=5", "token_hop:n=2"])
def test_dataset_folder_names_read_back(name: str) -> None:
    # The pipeline names a language's folder by replacing ":" with "_".
    assert get_language(name.replace(":", "_")).name == name


def test_unknown_name_suggests_nearest() -> None:
    with pytest.raises(ILMError) as e:
        get_language("local_shufle")
    msg = str(e.value)
    assert msg.startswith("unknown language 'local_shufle'; did you mean local_shuffle")
    assert "ilm languages" in msg and "\n" not in msg
    with pytest.raises(ILMError, match=r"did you mean token_hop"):
        get_language("tokn_hop")
    with pytest.raises(ILMError, match=r"^unknown language 'zzz'; \(`ilm languages` lists them\)$"):
        get_language("zzz")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("local_shuffle", "local_shuffle needs w, e.g. local_shuffle:w=3"),
        ("deterministic_shuffle", "deterministic_shuffle needs seed"),
        ("local_shuffle:w=0", "local_shuffle: w must be between 1 and 1024, got 0"),
        ("local_shuffle:w=99999999999999999999", "local_shuffle: w must be between 1 and 1024, got 99999999999999999999"),
        ("deterministic_shuffle:seed=-1", "deterministic_shuffle: seed must be between 0 and 4294967295, got -1"),
        ("deterministic_shuffle:seed=4294967296", "deterministic_shuffle: seed must be between 0 and 4294967295"),
        ("word_hop:n=0", "word_hop: n must be between 1 and 1024, got 0"),
        ("no_hop:n=0", "no_hop: n must be between 1 and 1024, got 0"),
        ("local_shuffle:w=x", "local_shuffle: w must be an integer, got 'x'"),
        ("local_shuffle:k=3", "local_shuffle has no parameter 'k'; it takes w, seed"),
        ("no_shuffle:w=3", "no_shuffle has no parameter 'w'; it takes no parameters"),
        ("token_hop:4", "bad parameter '4' in token_hop; write token_hop:name=value"),
        ("token_hop:n=-1", "token_hop: n must be between 1 and 1024, got -1"),
    ],
)
def test_bad_parameters(spec: str, message: str) -> None:
    with pytest.raises(ILMError) as e:
        get_language(spec)
    assert str(e.value).startswith(message)


def test_unknown_family() -> None:
    with pytest.raises(ILMError, match="unknown family 'shufle'; choose from shuffle, reverse, hop"):
        list_languages("shufle")


def test_every_language_is_a_language_with_an_example() -> None:
    for lang in list_languages():
        assert isinstance(lang, Language)
        line = lang.example()
        assert line and "\n" not in line
    assert get_language("no_shuffle").example() == "the dog sees the cats , a hen and you ."
    assert get_language("word_hop").example() == "the dog see the cats , a hen \U0001F142 and you ."
    assert get_language("word_hop:n=9").example() == "(the example sentence is filtered out)"


def test_language_table() -> None:
    rows = language_table(family="reverse")
    assert [r["name"] for r in rows] == ["no_reverse", "partial_reverse", "full_reverse"]
    assert rows[0]["markers"] == MARKER_REVERSE
    assert set(rows[0]) == {"name", "display", "family", "markers", "summary", "example"}
    rows = language_table(["local_shuffle:w=7", "token_hop:n=2"])
    assert [r["display"] for r in rows] == ["LocalShuffle (w=7)", "TokenHop (n=2)"]
    assert language_table(["local_shuffle:w=7"], family="hop") == []


def test_package_imports_without_torch_or_transformers(heavy_imports) -> None:
    # perturbations is pure Python + numpy, so the pipeline's worker processes stay
    # light and `ilm languages` is quick: importing it must not load torch.
    _, loaded = heavy_imports("import perturbations; perturbations.get_language('word_hop')")
    assert loaded == []


def test_error_type_is_shared_with_the_library() -> None:
    from perturbations.errors import ILMError as LibraryError

    assert LibraryError is ILMError
