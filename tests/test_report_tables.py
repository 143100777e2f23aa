"""Report tables on crafted results: exact geometric means, t-intervals, areas and ordering."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from impossible_lms.errors import ILMError
from impossible_lms.reporting import build_tables
from impossible_lms.reporting.stats import geometric_interval, mean_interval, normalised_auc, t_quantile

T1 = 12.706  # t_{0.975, 1}: two seeds


def row(language, seed, checkpoint, value, metric="perplexity", subset="test_affected", model="tiny-gpt2", **extra):
    return dict(subject=f"runs/{language}/{model}/seed{seed}", language=language, model=model, seed=seed,
                checkpoint=checkpoint, metric=metric, subset=subset, value=value, ci_low=np.nan,
                ci_high=np.nan, count=100, unit="bits" if "surprisal" in metric else "ppl", **extra)


@pytest.fixture
def results():
    rows = [
        # no_shuffle: seed 0 → 10, 4; seed 1 → 40, 16 (geometric means 20 and 8)
        row("no_shuffle", 0, 100, 10.0), row("no_shuffle", 0, 200, 4.0),
        row("no_shuffle", 1, 100, 40.0), row("no_shuffle", 1, 200, 16.0),
        # token_hop, one seed, uneven checkpoints
        row("token_hop", 0, 100, 10.0), row("token_hop", 0, 200, 4.0), row("token_hop", 0, 400, 2.0),
        row("token_hop", 0, 400, 2.0, metric="marker_surprisal"), row("token_hop", 1, 400, 4.0, metric="marker_surprisal"),
        row("token_hop", 0, 400, -1.0, metric="surprisal_difference"),
        row("token_hop", 1, 400, 1.0, metric="surprisal_difference"),
        # trained on no_shuffle, scored on token_hop's data: its own row, never averaged with no_shuffle's
        row("no_shuffle", 0, 200, 1e6, eval_language="token_hop"),
        # reverse listed last but sorts between the families
        row("partial_reverse", 0, 100, 50.0),
    ]
    df = pd.DataFrame(rows)
    df["eval_language"] = df["eval_language"].where(df["eval_language"].notna(), df["language"])
    return df


def test_stats_helpers_exact():
    assert t_quantile(1) == T1 and t_quantile(4) == 2.776 and t_quantile(100) == 1.960
    mean, low, high, n = mean_interval([2.0, 4.0])
    assert (mean, n) == (3.0, 2)
    assert low == pytest.approx(3.0 - T1) and high == pytest.approx(3.0 + T1)
    g, glow, ghigh, n = geometric_interval([10.0, 40.0])
    assert g == pytest.approx(20.0)
    assert glow == pytest.approx(20.0 * 2 ** -T1) and ghigh == pytest.approx(20.0 * 2 ** T1)
    single = geometric_interval([7.0])
    assert single[0] == pytest.approx(7.0) and math.isnan(single[1]) and single[3] == 1
    assert normalised_auc([400, 100, 200], [2.0, 10.0, 4.0]) == pytest.approx(1300 / 300)
    assert normalised_auc([100], [5.0]) == 5.0


def test_perplexity_table_geometric_mean_over_seeds(results):
    t = build_tables(results)["perplexity"]
    ns = t[(t.language == "no_shuffle") & (t.eval_language == "no_shuffle")].set_index("checkpoint")
    assert ns.loc[100, "value"] == pytest.approx(20.0)
    assert ns.loc[200, "value"] == pytest.approx(8.0)  # the 1e6 cross-language row is not averaged in
    assert ns.loc[200, "ci_low"] == pytest.approx(8.0 * 2 ** -T1)
    assert ns.loc[200, "ci_high"] == pytest.approx(8.0 * 2 ** T1)
    assert list(ns["seeds"]) == [2, 2]
    # family order (shuffle, reverse, hop), then checkpoints ascending
    assert list(dict.fromkeys(t.language)) == ["no_shuffle", "partial_reverse", "token_hop"]
    assert list(t[t.language == "token_hop"].checkpoint) == [100, 200, 400]
    # the train-on-X/test-on-Y row follows X's own rows
    cross = t[t.eval_language != t.language]
    assert list(cross[["language", "eval_language", "checkpoint", "value", "seeds"]].itertuples(index=False, name=None)) \
        == [("no_shuffle", "token_hop", 200.0, 1e6, 1)]
    assert list(t.index[t.eval_language != t.language]) == [2]


def test_final_table_takes_each_runs_last_checkpoint(results):
    t = build_tables(results)["final"]
    ppl = t[(t.metric == "perplexity") & (t.eval_language == t.language)].set_index("language")
    assert ppl.loc["no_shuffle", "checkpoint"] == 200 and ppl.loc["no_shuffle", "value"] == pytest.approx(8.0)
    assert ppl.loc["token_hop", "checkpoint"] == 400 and ppl.loc["token_hop", "value"] == pytest.approx(2.0)
    assert ppl.loc["partial_reverse", "checkpoint"] == 100
    diff = t[t.metric == "surprisal_difference"].iloc[0]
    assert diff.value == pytest.approx(0.0)
    assert diff.ci_low == pytest.approx(-T1 * math.sqrt(2) / math.sqrt(2))


def test_auc_is_mean_over_seeds_of_each_curves_mean_height():
    df = pd.DataFrame([row("no_shuffle", 0, 100, 10.0), row("no_shuffle", 0, 200, 4.0),
                       row("no_shuffle", 1, 100, 40.0), row("no_shuffle", 1, 200, 16.0),
                       row("token_hop", 0, 100, 10.0), row("token_hop", 0, 200, 2.0)])
    t = build_tables(df)["auc"].set_index("language")
    # seed 0: 10→4 gives 7; seed 1: 40→16 gives 28
    assert t.loc["no_shuffle", "value"] == pytest.approx(17.5)
    assert t.loc["no_shuffle", "ci_high"] == pytest.approx(17.5 + T1 * 21 / 2)
    assert t.loc["token_hop", "value"] == pytest.approx(6.0) and t.loc["token_hop", "seeds"] == 1


def test_auc_uses_only_the_checkpoints_common_to_the_runs_compared():
    df = pd.DataFrame([row("no_shuffle", 0, 100, 10.0), row("no_shuffle", 0, 200, 4.0),
                       row("no_shuffle", 1, 100, 40.0), row("no_shuffle", 1, 200, 16.0),
                       row("no_shuffle", 1, 300, 1.0),  # seed 1 ran further
                       row("token_hop", 0, 100, 10.0), row("token_hop", 0, 200, 4.0), row("token_hop", 0, 400, 2.0)])
    with pytest.warns(UserWarning, match=r"auc tiny-gpt2 test_affected: runs have different checkpoints; using the 2 "
                                         r"common to all \(100, 200\); 2 run\(s\) had others \(no_shuffle seed 1, "
                                         r"token_hop seed 0\)"):
        t = build_tables(df)["auc"].set_index("language")
    assert t.loc["no_shuffle", "value"] == pytest.approx(17.5)  # seed 1's step 300 is left out
    assert t.loc["token_hop", "value"] == pytest.approx(7.0)  # not (7*100 + 3*200) / 300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same grid everywhere: no warning
        build_tables(df[df.checkpoint <= 200])


def test_surprisal_tables(results):
    tables = build_tables(results)
    ms = tables["marker_surprisal"].iloc[0]
    assert (ms.language, ms.checkpoint, ms.value, ms.seeds) == ("token_hop", 400, pytest.approx(3.0), 2)
    assert ms.ci_low == pytest.approx(3.0 - T1)
    assert "layers" not in tables  # no exits scored: no empty table


def test_layer_rows_stay_out_of_the_final_tables(results):
    layered = pd.concat([results, pd.DataFrame([row("no_shuffle", 0, 200, 99.0, layer=1)])], ignore_index=True)
    tables = build_tables(layered)
    assert tables["perplexity"].set_index(["language", "eval_language", "checkpoint"]).loc[
        ("no_shuffle", "no_shuffle", 200), "value"] == pytest.approx(8.0)
    assert list(tables["layers"][["language", "layer", "value"]].itertuples(index=False, name=None)) == [("no_shuffle", 1.0, 99.0)]


def test_missing_columns_is_a_user_error():
    with pytest.raises(ILMError, match="missing column"):
        build_tables(pd.DataFrame({"language": ["x"], "value": [1.0]}))


def test_unknown_language_reports_under_its_own_name():
    t = build_tables(pd.DataFrame([row("my-new-lang", 0, 100, 3.0)]))["final"]
    assert list(t.language) == ["my-new-lang"]


def test_one_seed_shows_the_runs_own_interval_marked_as_such():
    from impossible_lms.reporting.render import INTERVAL_NOTE, to_markdown

    df = pd.DataFrame([row("no_hop", 0, 100, 50.0), row("no_hop", 0, 200, 40.0), row("no_hop", 1, 200, 40.0)])
    df.loc[0, ["ci_low", "ci_high"]] = [45.0, 56.0]
    t = build_tables(df)["perplexity"].set_index("checkpoint")
    assert (t.loc[100, "ci_low"], t.loc[100, "ci_high"], t.loc[100, "interval"]) == (45.0, 56.0, "sentences")
    assert t.loc[200, "interval"] == "seeds" and t.loc[200, "value"] == pytest.approx(40.0)
    md = to_markdown("perplexity", build_tables(df)["perplexity"])
    assert "| [45.00, 56.00]* |" in md and INTERVAL_NOTE in md
