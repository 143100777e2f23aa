"""Every option of every command reaches the library: set to another value, it changes what the
library function behind the command receives. A new option without an entry here fails the
inventory test, so an option cannot be shown in --help and documented while doing nothing."""

from __future__ import annotations

import types
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "demo.yaml"


class Recorder:
    """Stands in for the library functions: keeps what each receives, returns something harmless."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def stand_in(self, name: str, returns=None):
        def fn(*args, **kwargs):
            self.calls.append((name, _plain(args, kwargs)))
            return returns() if callable(returns) else returns

        return fn


def _plain(args, kwargs) -> str:
    from impossible_lms.config import to_dict

    def one(v):
        if hasattr(v, "__dataclass_fields__"):
            return to_dict(v)
        return v

    return repr(([one(a) for a in args], {k: one(v) for k, v in sorted(kwargs.items())}))


class Pairs(list):
    def save(self, path) -> None:
        pass


def empty_frame():
    return pd.DataFrame(columns=["metric", "subset", "value", "checkpoint", "layer", "count", "label", "ci_low",
                                 "ci_high", "unit", "eval_language", "position"])


# command -> (library functions to stand in: (module, attribute, returns), the required arguments)
def targets(tmp: Path) -> dict[str, tuple[list[tuple[str, str, object]], list[str]]]:
    run, data = tmp / "run", tmp / "data"
    analysis = lambda mod, fn: [(mod, fn, empty_frame)]  # noqa: E731
    return {
        "languages": ([("perturbations", "language_table", list)], []),
        "perturb": ([("impossible_lms.perturb", "perturb_corpus", list)],
                    ["no_hop", "--corpus", "synthetic", "--out", str(tmp / "out")]),
        "train": ([("impossible_lms.training", "train", lambda: str(tmp / "r"))], ["--data", str(data)]),
        "eval": ([("impossible_lms.evaluation", "evaluate", empty_frame),
                  ("impossible_lms.analysis.minimal_pairs", "minimal_pairs", empty_frame),
                  ("impossible_lms.analysis.syntaxgym", "syntaxgym", empty_frame)], [str(run), "--data", str(data)]),
        "intervene": ([("impossible_lms.analysis.intervene", "intervene", empty_frame),
                       ("impossible_lms.analysis.agreement", "agreement_data", Pairs)],
                      [str(run), "--data", str(data)]),
        "probe": (analysis("impossible_lms.analysis.probe", "probe"), [str(run), "--data", str(data)]),
        "minimal-pairs": (analysis("impossible_lms.analysis.minimal_pairs", "minimal_pairs"),
                          [str(run), "--data", str(data), "--pairs", str(tmp / "p.jsonl")]),
        "syntaxgym": (analysis("impossible_lms.analysis.syntaxgym", "syntaxgym"),
                      [str(run), "--data", str(data), "--suites", str(tmp / "s.json")]),
        "treeproj": (analysis("impossible_lms.analysis.treeproj", "treeproj"), [str(run), "--data", str(data)]),
        "production": (analysis("impossible_lms.analysis.production", "production"), [str(run), "--data", str(data)]),
        "report": ([("impossible_lms.reporting", "report", lambda: ({}, []))], [str(tmp / "results")]),
        "run": ([("impossible_lms.experiment", "run_experiment",
                  lambda: types.SimpleNamespace(plan=types.SimpleNamespace(runs=[]), executed=[])),
                 ("impossible_lms.experiment", "emit_torchrun", list),
                 ("impossible_lms.experiment", "emit_slurm", lambda: "script"),
                 ("impossible_lms.estimate", "estimate_training", None),
                 ("impossible_lms.experiment", "format_plan", lambda: "plan")], [str(DEMO)]),
        "generate": ([("impossible_lms.models.generate", "generate_text",
                       lambda: types.SimpleNamespace(text=" more"))], [str(run), "--prompt", "He"]),
        "senses": ([("impossible_lms.models.generate", "sense_table", list)], [str(run), "word"]),
        "doctor": ([("impossible_lms.doctor", "diagnose", list)], []),
        "baselines": ([("impossible_lms.evaluation.baselines", "complexity_baselines",
                        lambda: pd.DataFrame({"metric": ["unigram_entropy", "ngram_perplexity"], "value": [1.0, 2.0],
                                              "label": ["", "order 2"], "subset": ["train", "dev"]}))],
                      [str(data)]),
        "separation": ([("impossible_lms.reporting.complexity", "separation",
                         lambda: ({}, []))],
                       [str(tmp / "results")]),
        "models": ([("impossible_lms.models.config", "preset_table", list)], []),
        "export": ([("impossible_lms.models.export", "export_run",
                     lambda: types.SimpleNamespace(steps=[1], layout="gpt2", folder=tmp, notes=[], skipped=[]))],
                   [str(run), "--to", str(tmp / "hf")]),
    }


# A value other than the default for each option, by option name (flags need none).
VALUES = {
    "--family": "hop", "--corpus-option": "sentences=10", "--tokenizer": "fallback", "--tagger": "gold",
    "--workers": "2", "--on-bad-bytes": "skip", "--cache-dir": "cache", "--fallback-vocab": "500",
    "--data": "other", "--model": "tiny-gpt2", "--seed": "7", "--steps": "5", "--batch-tokens": "777",
    "--micro-batch": "2", "--lr": "0.01", "--warmup": "1", "--checkpoint-every": "2", "--precision": "bf16",
    "--out": "elsewhere", "--run-dir": "exact", "--objective": "lm+exits", "--init-from": "weights",
    "--config": "CONFIG", "--set": "schedule.steps=9", "--resume": "RESUME", "--device": "cpu",
    "--checkpoints": "5", "--metrics": "perplexity", "--subsets": "dev", "--results": "res2",
    "--revision": "checkpoint-5", "--sentences-per-genre": "9", "--sample-scheme": "per_genre", "--unit": "nats",
    "--pairs": "p2.jsonl", "--suites": "s2.json", "--language": "word_hop", "--tokens": "3", "--max-pairs": "2",
    "--split": "train", "--save-pairs": "pairs.json", "--batch-rows": "3", "--trees": "t.mrg",
    "--local-agreement": None, "--region-metric": "first", "--unit-tp": "token", "--layer": "1",
    "--read-layer": "1", "--sentences": "3", "--format": "csv", "--only": "*hop*", "--emit": "torchrun",
    "--prompt": "She", "--max-new-tokens": "3", "--contrast": "final,1", "--alpha": "0.5", "--top": "2",
    "--corpus": "other", "--experiment": str(DEMO), "--to": "hf2", "--vocab": "1000", "--orders": "2", "--seeds": "4",
    "--discount": "0.5", "--judge": "control_run", "--prompts": "5", "--prompt-tokens": "2", "--temperature": "0.5",
}
# per command where the generic value does not fit
COMMAND_VALUES = {("treeproj", "--unit"): "token", ("separation", "--format"): "md", ("run", "--set"): "seeds=[3]", ("run", "--out"): None,
                  ("run", "--emit"): "slurm"}
# options that, by design, change what the command prints or writes itself rather than a library call
CLI_ONLY = {
    ("report", "--quiet"): "whether the tables are printed",
}


def _options(name: str) -> list:
    command = typer.main.get_command(app).commands[name]
    options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
    return options


def _alternative(command: str, option, tmp: Path) -> list[str]:
    """The arguments that set ``option`` to something other than its default."""
    if option.is_flag:
        if option.secondary_opts:  # --progress/--no-progress: the one that is not the default
            return [option.secondary_opts[0] if option.default else option.opts[0]]
        return [option.opts[0]]
    flag = next(o for o in option.opts if o.startswith("--"))
    value = COMMAND_VALUES.get((command, flag), VALUES.get(flag))
    if value in ("CONFIG", "RESUME"):
        path = tmp / value.lower()
        if value == "CONFIG":
            path.write_text("schedule: {steps: 11}\n")
        else:
            path.mkdir(exist_ok=True)
            (path / "config.yaml").write_text("data: d\nschedule: {steps: 13}\n")
        value = str(path)
    return [flag, value]


def test_every_option_has_an_entry() -> None:
    """A new option must say how it reaches the library (or why it is the CLI's own)."""
    names = typer.main.get_command(app).commands
    assert sum(len(_options(c)) for c in names) > 100  # the inventory sees the options (typer's own click)
    missing = [f"{c} {o.opts[0]}" for c in names for o in _options(c) if not o.is_flag and
               (c, o.opts[0]) not in CLI_ONLY and COMMAND_VALUES.get((c, o.opts[0]), VALUES.get(
                   next(x for x in o.opts if x.startswith("--")), "MISSING")) == "MISSING"]
    assert missing == []
    assert set(targets(Path("/x"))) == set(names)


@pytest.mark.parametrize("command", sorted(targets(Path("/x"))))
def test_each_option_changes_what_the_library_receives(command, tmp_path, monkeypatch) -> None:
    import importlib

    recorder = Recorder()
    stand_ins, base = targets(tmp_path)[command]
    for module, attribute, returns in stand_ins:
        monkeypatch.setattr(importlib.import_module(module), attribute, recorder.stand_in(attribute, returns))
    (tmp_path / "data").mkdir()
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def calls(extra: list[str]) -> list:
        recorder.calls.clear()
        result = runner.invoke(app, [command, *base, *extra])
        assert result.exit_code == 0, (extra, result.output, result.exception)
        return list(recorder.calls)

    baseline = calls([])
    assert baseline, f"{command} called none of its library functions"
    if command == "eval":  # the targeted evaluations run only when asked: their options are checked with them
        base += ["--pairs", "p.jsonl", "--suites", "s.json"]
        baseline = calls([])
    for option in _options(command):
        flag = option.opts[0]
        if (command, flag) in CLI_ONLY:
            continue
        extra = _alternative(command, option, tmp_path)
        if extra[-1] is None:
            extra = extra[:-1]
        got = calls(extra)
        assert got != baseline, f"ilm {command} {' '.join(extra)} changed nothing the library receives"
        if command == "eval" and flag in ("--batch-tokens", "--precision", "--device", "--seed", "--checkpoints"):
            # the targeted evaluations get it too, not only evaluate()
            for name in ("minimal_pairs", "syntaxgym"):
                before = [c for n, c in baseline if n == name]
                assert [c for n, c in got if n == name] != before, f"eval {flag} does not reach {name}"


def test_train_flags_reach_the_train_config(tmp_path, monkeypatch) -> None:
    """The two flags that were shown in --help but never reached TrainConfig."""
    import impossible_lms.training as training

    seen = []
    monkeypatch.setattr(training, "train", lambda cfg, **kw: seen.append(cfg) or "run")
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--model", "tiny-gpt2-exits",
                                   "--objective", "lm+exits", "--init-from", "w", "--precision", "float32"])
    assert res.exit_code == 0, res.output
    assert (seen[0].objective, seen[0].init_from, seen[0].precision) == ("lm+exits", "w", "fp32")
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--precision", "half"])
    assert res.exit_code == 1 and "--precision 'half': choose auto, float32 (fp32)" in res.output
