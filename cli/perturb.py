"""``ilm perturb``: write one tokenised dataset per impossible language."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cli.common import command, console, progress_option

HELP = """Perturb a corpus into one tokenised dataset per LANGUAGE.

LANGUAGE is a name or spec (`local_shuffle:w=3`, `word_hop`), or a shorthand:
`all` / `reference` (the 15 languages of Kallini et al. 2024) or a family
(`shuffle`, `reverse`, `hop`). `ilm languages` lists them.

Each corpus file is read, split and tokenised once for all languages; tagging
runs only when a hop language is asked for. Each language's folder
OUT/<language>/ (manifest.json, tokenizer/, train/dev/test_affected/test_unaffected)
is written atomically; rerunning skips finished languages.

Example: ilm perturb all --corpus synthetic --out data --tokenizer fallback
"""


def register(app: typer.Typer) -> None:
    @command(app, "perturb", help=HELP, no_args_is_help=True)
    def perturb(
        languages: List[str] = typer.Argument(..., metavar="LANGUAGE...", help="Languages, specs or shorthands (all, reference, shuffle, reverse, hop)."),
        corpus: str = typer.Option(..., "--corpus", "-c", help="`synthetic`, a BabyLM folder, a text file, or hf:org/name (from the local cache)."),
        corpus_option: Optional[List[str]] = typer.Option(None, "--corpus-option", help="Corpus reader option key=value, repeatable: sentences=3000 and seed=0 (synthetic), train=100M (BabyLM)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder; one subfolder per language."),
        tokenizer: str = typer.Option("gpt2", "--tokenizer", "-t", help="`gpt2` (local Hugging Face cache only), a folder with tokenizer.json or vocab.json+merges.txt, or `fallback` (a BPE trained on the corpus; not comparable with GPT-2)."),
        tagger: str = typer.Option("nltk", "--tagger", help="nltk | stanza | gold | auto | none: tags for hop languages (other languages only need sentence splitting)."),
        workers: int = typer.Option(1, "--workers", "-j", min=1, help="Processes that split, tag, tokenise and perturb the corpus chunk by chunk (2 or more: a pool beside the process that writes; results are identical for any number)."),
        on_bad_bytes: str = typer.Option("fail", "--on-bad-bytes", help="fail | skip: what to do with lines that are not UTF-8."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache tagger output here, per corpus file (keyed on its bytes and the tagger's version), so reruns and other studies on the same files skip tagging; `none` turns it off.", show_default="$ILM_CACHE_DIR/tags, else ~/.cache/ilm/tags"),
        fallback_vocab: int = typer.Option(4096, "--fallback-vocab", min=300, help="Vocabulary size of the `fallback` tokenizer."),
        force: bool = typer.Option(False, "--force", help="Replace outputs made with another corpus, tokenizer or tagger."),
        show_progress: bool = progress_option(),
    ) -> None:
        from impossible_lms.config import parse_overrides
        from impossible_lms.data import load_manifest
        from impossible_lms.perturb import perturb_corpus

        folders = perturb_corpus(
            languages,
            corpus,
            out,
            tokenizer=tokenizer,
            tagger=tagger,
            workers=workers,
            cache_dir=cache_dir,
            errors=on_bad_bytes,
            progress=show_progress,
            force=force,
            fallback_vocab=fallback_vocab,
            corpus_options=parse_overrides(corpus_option),
        )
        _summary(folders, out, load_manifest)


def _summary(folders: list[Path], out: Path, load_manifest) -> None:
    from rich.table import Table

    table = Table("language", "vocab", "train sent.", "train tokens", "test aff.", "test unaff.", "dropped", title=f"datasets in {out}")
    fallback = False
    for folder in folders:
        m = load_manifest(folder)
        fallback = fallback or bool(m.tokenizer.get("fallback"))
        c = m.counts
        table.add_row(
            m.language,
            str(m.vocab_size),
            f"{c['train']['sentences']:,}",
            f"{c['train']['tokens']:,}",
            f"{c['test_affected']['sentences']:,}",
            f"{c['test_unaffected']['sentences']:,}",
            f"{sum(m.dropped.values()):,}",  # by the language's filters, all splits
        )
    console.print(table)
    if fallback:
        console.print("[yellow]note:[/] fallback tokenizer (trained on this corpus): not comparable with GPT-2 results")
