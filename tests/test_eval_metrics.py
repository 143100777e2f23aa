"""Metrics on hand-made log-probs: perplexity rule, hop surprisal alignment, units, bootstrap, registry."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from impossible_lms.errors import ILMError
from impossible_lms.evaluation import METRICS, parse_checkpoints
from impossible_lms.evaluation.metrics import (
    MetricOptions,
    get_metrics,
    marker_pairs,
    marker_surprisal,
    perplexity,
    sentence_log_perplexity,
)
from impossible_lms.evaluation.stats import bootstrap_mean, geometric_mean_ci

NAN = float("nan")


def test_sentence_perplexity_is_exp_of_mean_loss_after_the_first_token():
    lp = np.array([NAN, math.log(0.5), math.log(0.25)])
    assert sentence_log_perplexity(lp) == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert math.isnan(sentence_log_perplexity(np.array([NAN])))  # one token: nothing scored


def test_perplexity_rows_are_geometric_means_and_skip_empty_subsets():
    data = SimpleNamespace(shortfall=lambda split, max_tokens=None: 0)
    logprobs = {
        "test_affected": [np.array([NAN, math.log(0.5)]), np.array([NAN, math.log(0.125)])],  # ppl 2 and 8
        "test_unaffected": [],
        "dev": [np.array([NAN, math.log(0.25), math.log(0.25)]), np.array([NAN])],  # ppl 4; one unscorable
    }
    rows = {r["subset"]: r for r in perplexity(data, logprobs, MetricOptions(seed=0))}
    assert set(rows) == {"test_affected", "dev"}
    assert rows["test_affected"]["value"] == pytest.approx(4.0)  # sqrt(2 * 8)
    assert rows["test_affected"]["count"] == 2 and rows["test_affected"]["unit"] == "perplexity"
    assert rows["test_affected"]["ci_low"] <= 4.0 <= rows["test_affected"]["ci_high"]
    assert rows["dev"]["value"] == pytest.approx(4.0) and rows["dev"]["count"] == 1


def test_marker_pairs_align_the_following_token_with_the_marker_index():
    VERB, MARKER, EOS = 37, 38, 39
    pairs = marker_pairs([[5, VERB, MARKER, 7, 8], [1, 2, 3], [4, VERB, MARKER], [MARKER, 6, MARKER]],
                         [MARKER], EOS)
    assert pairs.index == [2, 2, 0]  # the sentence without a marker is left out
    assert pairs.with_marker == [[5, VERB, MARKER, 7, 8, EOS], [4, VERB, MARKER, EOS], [MARKER, 6, MARKER, EOS]]
    # only the first marker is removed; what followed it (7, EOS, 6) sits at its index
    assert pairs.without_marker == [[5, VERB, 7, 8, EOS], [4, VERB, EOS], [6, MARKER, EOS]]


def _hop_data(sentences):
    return SimpleNamespace(sample=lambda split, max_tokens=None: sentences, shortfall=lambda split, max_tokens=None: 0,
                           marker_ids={"🅂": 38}, eos_id=39, family="hop")


def test_marker_surprisal_in_bits_and_nats():
    data = _hop_data([[5, 37, 38, 7], [6, 37, 38, 9]])
    # p(marker) = 1/8 and 1/2; p(following | no marker) = 1/32 and 1/4
    with_lp = [np.log([1, 1, 1 / 8, 1, 1]), np.log([1, 1, 1 / 2, 1, 1])]
    without_lp = [np.log([1, 1, 1 / 32, 1]), np.log([1, 1, 1 / 4, 1])]
    logprobs = {"with_marker": with_lp, "without_marker": without_lp}
    bits = {r["metric"]: r for r in marker_surprisal(data, logprobs, MetricOptions(unit="bits"))}
    assert bits["marker_surprisal"]["value"] == pytest.approx((3 + 1) / 2)
    assert bits["surprisal_difference"]["value"] == pytest.approx(((5 - 3) + (2 - 1)) / 2)
    assert bits["marker_surprisal"]["unit"] == "bits" and bits["marker_surprisal"]["count"] == 2
    nats = {r["metric"]: r for r in marker_surprisal(data, logprobs, MetricOptions(unit="nats"))}
    assert nats["marker_surprisal"]["value"] == pytest.approx(2 * math.log(2))
    assert nats["surprisal_difference"]["unit"] == "nats"
    with pytest.raises(ILMError, match="unit 'bans'"):
        marker_surprisal(data, logprobs, MetricOptions(unit="bans"))


def test_marker_at_index_zero_is_skipped_without_eos_conditioning():
    data = _hop_data([[38, 5, 6], [4, 37, 38]])
    logprobs = {"with_marker": [np.array([NAN, -1, -1, -1]), np.log([1, 1, 0.5, 1])],
                "without_marker": [np.array([NAN, -1, -1]), np.log([1, 1, 0.25])]}
    rows = {r["metric"]: r for r in marker_surprisal(data, logprobs, MetricOptions())}
    assert rows["marker_surprisal"]["count"] == 1 and rows["marker_surprisal"]["value"] == pytest.approx(1.0)


def test_bootstrap_is_deterministic_given_the_seed():
    values = np.random.default_rng(3).normal(size=200)
    a, b, c = bootstrap_mean(values, seed=5), bootstrap_mean(values, seed=5), bootstrap_mean(values, seed=6)
    assert a == b and a[1:] != c[1:] and a[0] == c[0] == pytest.approx(values.mean())
    assert a[1] < a[0] < a[2]
    g = geometric_mean_ci(np.log([2.0, 8.0]), seed=0)
    assert g[0] == pytest.approx(4.0) and 2.0 <= g[1] <= g[2] <= 8.0


def test_registry_and_aliases():
    assert {"perplexity", "marker_surprisal"} <= set(METRICS)
    assert [m.name for m in get_metrics(["surprisal_difference", "marker_surprisal"])] == ["marker_surprisal"]
    with pytest.raises(ILMError, match="unknown metric 'perplexty' \\(did you mean 'perplexity'\\?\\)"):
        get_metrics(["perplexty"])
    hop, shuffle = SimpleNamespace(family="hop"), SimpleNamespace(family="shuffle")
    assert METRICS["marker_surprisal"].applies(hop) and not METRICS["marker_surprisal"].applies(shuffle)


@pytest.mark.parametrize("spec, want", [
    ("100-500:100", [100, 200, 300, 400, 500]),
    ("3000", [3000]),
    ("500,100, 200-300:50", [100, 200, 250, 300, 500]),
    ("1-3", [1, 2, 3]),
    ("all", None), (None, None), (700, [700]), (["100", 200], [100, 200]),
])
def test_parse_checkpoints(spec, want):
    assert parse_checkpoints(spec) == want


@pytest.mark.parametrize("spec", ["100-", "a", "300-100", "100-300:0", "1.5"])
def test_parse_checkpoints_rejects_bad_specs(spec):
    with pytest.raises(ILMError, match="bad checkpoint"):
        parse_checkpoints(spec)
