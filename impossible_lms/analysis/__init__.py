"""Analyses of trained models, one module each, rows into the evaluation result store.

- :mod:`.agreement`: subject–verb agreement pairs from the no_hop/word_hop test sets;
- :mod:`.intervene`: interchange interventions on those pairs (metric ``iia``);
- :mod:`.minimal_pairs`: BLiMP-style minimal pairs (metric ``minimal_pair_accuracy``);
- :mod:`.syntaxgym`: SyntaxGym suites, region surprisal across conditions (metric ``syntaxgym_accuracy``);
- :mod:`.stimuli`: English stimuli put into a dataset's language (shared by the two above);
- :mod:`.runner`: the checkpoint sweep every analysis shares (skip-done, prefetch, store).

Each analysis is a function ``(subject, data, checkpoints, results, ...) -> DataFrame``
of long-format rows (``evaluation.store.COLUMNS``; ``position``/``label`` are
the analysis columns), so ``ilm report`` finds them beside perplexity.
"""
