"""The report's typology view: attested vs unattested word orders (np_order, Cinque 2005).

One row per language that carries an attestation label (``np_order:order=...``),
read from the final table, plus one summary row per (model, metric, subset) and
label: the mean over those languages' values (``languages`` says how many).
Geometric mean for perplexity, arithmetic otherwise, as the tables aggregate.
Each run of ``experiments/crosslinguistic.yaml`` is one treebank, so this is
"attested vs unattested, per language": one report per treebank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["language", "order", "attested", "model", "metric", "subset", "value", "ci_low", "ci_high", "seeds", "languages"]


def _label(name: str) -> tuple[str, bool] | None:
    try:
        from perturbations import get_language

        lang = get_language(name)
    except Exception:  # a result under a name the registry does not know has no label
        return None
    attested = getattr(lang, "attested", None)
    return None if attested is None else (lang.order, bool(attested))


def attestation_table(final: pd.DataFrame) -> pd.DataFrame:
    """Labelled languages' final values, then the attested/unattested means per model × metric × subset."""
    labels = {name: _label(name) for name in final["language"].unique()} if not final.empty else {}
    rows = final[final["language"].map(lambda n: labels.get(n) is not None)] if labels else final.iloc[0:0]
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.assign(order=rows["language"].map(lambda n: labels[n][0]),
                       attested=rows["language"].map(lambda n: labels[n][1]), languages=1)
    summary = []
    for (model, metric, subset, attested), g in rows.groupby(["model", "metric", "subset", "attested"], sort=True):
        values = g["value"].dropna().to_numpy(float)
        mean = float(np.exp(np.log(values).mean())) if metric == "perplexity" and len(values) else float(values.mean()) if len(values) else np.nan
        label = "(all attested)" if attested else "(all unattested)"
        summary.append((label, "", attested, model, metric, subset, mean, np.nan, np.nan, int(g["seeds"].min()), len(values)))
    return pd.concat([rows[COLUMNS], pd.DataFrame(summary, columns=COLUMNS)], ignore_index=True)
