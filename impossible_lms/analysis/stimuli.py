"""Stimuli in a model's language: texts put through the rules of a dataset's language.

The targeted evaluations (minimal pairs, SyntaxGym suites) write their stimuli
in English; a model of another language is scored on them as its language
would write them. :func:`perturb_texts` applies the language of dataset folder
``data`` (its manifest names it, its tokenizer folder gives the ids) to a list
of texts, in order: shuffles and reverses apply to each text's tokens, drawing
from one fresh stream of the language in list order; hops need tags, so a
tagger (``nltk`` by default, or any object with ``tag_lines``) tags each text
first, as one sentence even when its splitter cuts it. A text the language's
filters drop comes back as ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from impossible_lms.errors import ILMError


def ordered_languages() -> list[str]:
    """The registered languages (at their defaults) that keep every token where it was (markers
    inserted, verbs lemmatised), so a stimulus's regions keep their tokens: SyntaxGym suites are
    defined for these only."""
    from perturbations import list_languages

    return [lang.name for lang in list_languages(every=True) if lang.keeps_token_order]


def keeps_token_order(language: str) -> bool:
    """Whether ``language`` (any spelling the registry reads) keeps every token where it was."""
    from perturbations import get_language

    return get_language(language).keeps_token_order


@dataclass(frozen=True)
class PerturbedTexts:
    ids: list[list[int] | None]  # one per text; None: the language's filters drop it
    sentences: list[Any]  # the perturbations.Sentence each text became (tagged for hop languages)
    language: Any  # the perturbations.Language
    tokenizer: Any  # the dataset's MarkedTokenizer
    eos_id: int

    @property
    def language_name(self) -> str:
        return self.language.name


def stimulus_files(paths: str | Path | Sequence[str | Path], suffix: str, what: str, hub_id: str,
                   local_dir: str) -> list[Path]:
    """The files ``paths`` name (a folder: its ``*suffix`` files, sorted); a missing one is an
    ILMError that says where the public set is on the Hub and how to fetch it."""
    files: list[Path] = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob(f"*{suffix}"))
        elif p.is_file():
            files.append(p)
        else:
            raise ILMError(f"no {what} at {p}; the public set is {hub_id} on the Hugging Face Hub "
                           f"(huggingface-cli download {hub_id} --repo-type dataset --local-dir {local_dir})")
    return files


def perturb_texts(texts: Sequence[str], data: str | Path, tagger="nltk", genre: str = "stimuli") -> PerturbedTexts:
    """``texts`` in the language of dataset folder ``data``, as its tokenizer's ids (module doc)."""
    from perturbations import Sentence, get_language

    from impossible_lms.data import load_dataset_tokenizer, load_manifest
    from impossible_lms.tagging import get_tagger

    manifest = load_manifest(data)
    lang = get_language(manifest.language)
    tok = load_dataset_tokenizer(data)
    if lang.needs_tags:
        tag = get_tagger(tagger)
        if not hasattr(tag, "tag_lines"):  # gold tags live in a corpus; stimuli are plain text
            raise ILMError(f"--tagger {tagger}: stimuli are plain text with no tags of their own; "
                           f"{manifest.language} needs a tagger that tags text (nltk or stanza)")
        if hasattr(tag, "prepare"):
            tag.prepare()
        sentences = [one_sentence(tag.tag_lines([t], genre), t) for t in texts]
    else:
        sentences = [Sentence(text=t, words=None) for t in texts]
    columns = lang.perturb_columns(sentences, tok, stream=lang.new_stream())
    rows = iter(columns.ids.to_lists())
    ids = [next(rows) if kept else None for kept in columns.kept]
    return PerturbedTexts(ids, sentences, lang, tok, manifest.eos_id)


def one_sentence(tagged, text: str):
    """A stimulus is one sentence even when the splitter cuts it: its parts' words, joined."""
    from perturbations import Sentence

    if len(tagged) == 1:
        return tagged[0]
    words = tuple(w for s in tagged for w in (s.words or ()))
    return Sentence(text=text, words=words or None)
