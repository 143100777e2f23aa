"""Experiment YAML, plan, stamps/skip logic with injected stages, --only, --dry-run and --emit."""

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from impossible_lms.errors import ILMError
from impossible_lms.experiment import (
    Stages, check_names, emit_slurm, emit_torchrun, eval_languages, eval_metrics, format_plan, load_experiment,
    layout, plan_experiment, run_experiment, select_runs, tokens_per_run, train_settings,
)

from demo_config import DEMO, ROOT, demo_train  # noqa: E402


@pytest.fixture
def cfg(tmp_path):
    c = load_experiment(DEMO, [f"out={tmp_path / 'exp'}"])
    # the planner's semantics with one analysis seam (the demo's treeproj stage: tests/test_analysis_treeproj.py)
    c.analyses = {"intervene": {"split": "train", "max_pairs": 64}}
    return c


class FakeStages:
    """Stages that write a marker file and record each call."""

    def __init__(self):
        self.calls = []

    def stages(self):
        return Stages(self.perturb, self.train, self.evaluate, self.report, analyses={"intervene": self.intervene})

    def intervene(self, cfg, run, options):  # the analysis stage seam (experiment/analyses.py)
        self.calls.append(("intervene", run.key))
        return [self._touch(layout(cfg).results() / f"{run.slug.replace('/', '_')}.iia")]

    def _touch(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        return path

    def perturb(self, cfg, languages):
        self.calls.append(("perturb", tuple(languages)))
        return [self._touch(layout(cfg).data_dir / lang.replace(":", "_") / "manifest.json") for lang in languages]

    def train(self, cfg, run):
        self.calls.append(("train", run.key))
        return [self._touch(layout(cfg).runs() / run.slug / "run.json")]

    def evaluate(self, cfg, run):
        self.calls.append(("eval", run.key))
        return [self._touch(layout(cfg).results() / f"{run.key.replace('/', '_')}.jsonl")]

    def report(self, cfg, variant=""):
        self.calls.append(("report", variant) if variant else ("report",))
        return [self._touch(layout(cfg).report(variant) / "final.csv")]


def test_yaml_and_overrides():
    cfg = load_experiment(DEMO, ["seeds=[0,1]", "corpus.options.sentences=100", "train.schedule.steps=20"])
    assert cfg.languages == ["no_shuffle", "local_shuffle:w=3", "partial_reverse", "token_hop"]
    assert cfg.seeds == [0, 1] and cfg.models == ["tiny-gpt2"]
    assert cfg.corpus.options == {"sentences": 100, "seed": 0}  # the override merges into the YAML mapping
    assert cfg.train["schedule"] == {"steps": 20, "warmup": demo_train("schedule", "warmup")}
    assert cfg.out == Path("runs/demo") and layout(cfg).report() == Path("runs/demo/report")
    with pytest.raises(ILMError, match="did you mean 'seeds'"):
        load_experiment(DEMO, ["sedes=[1]"])
    with pytest.raises(ILMError):
        load_experiment(DEMO, ["languages=[not_a_language]"])
    with pytest.raises(ILMError, match="unknown report format"):
        load_experiment(DEMO, ["report.formats=[docx]"])


@pytest.mark.parametrize("name", ["demo", "kallini2024", "backpack", "crosslinguistic", "complexity", "babylm-small"])
def test_shipped_experiments_load(name):
    cfg = load_experiment(ROOT / "experiments" / f"{name}.yaml")
    runs = select_runs(cfg)
    if not cfg.variants and not cfg.model_seeds:
        assert len(runs) == len(cfg.languages) * len(cfg.models) * len(cfg.seeds)
    if name == "kallini2024":
        assert len(cfg.languages) == 15 and cfg.seeds == [0, 14, 41, 53, 96]
        keys = [r.key for r in runs]
        assert len(keys) == len(set(keys)) == 15 * 5 + 15 * 1 + 2 * 15
        assert {r.seed for r in runs if r.model == "gpt2-nopos"} == {53}
        assert sorted({(r.variant, r.model, r.seed) for r in runs if r.variant}) == [
            ("warmup1000", "gpt2", 96), ("warmup4000", "gpt2", 0)]
        assert train_settings(cfg, "warmup1000")["schedule"] == {"warmup": 1000}
        det = [f"deterministic_shuffle:seed={s}" for s in (21, 57, 84)]
        for x in det:  # perplexities.sh: each seed's model on the other seeds' data and on the nondeterministic one
            assert eval_languages(cfg, x) == [x] + [y for y in det if y != x] + ["nondeterministic_shuffle"]
        assert eval_languages(cfg, "no_shuffle") == ["no_shuffle"]


def test_only_globs(cfg):
    cfg.seeds = [0, 1]
    keys = lambda only: [r.key for r in select_runs(cfg, only)]  # noqa: E731
    assert keys(["*hop"]) == ["token_hop/tiny-gpt2/0", "token_hop/tiny-gpt2/1"]
    assert keys(["*/*/1"]) == [f"{l}/tiny-gpt2/1" for l in cfg.languages]
    assert keys(["local_shuffle_w=3/tiny-gpt2/0", "no_shuffle//1"]) == ["no_shuffle/tiny-gpt2/1",
                                                                         "local_shuffle:w=3/tiny-gpt2/0"]
    assert keys(["local_shuffle:w=?/tiny-*/0"]) == ["local_shuffle:w=3/tiny-gpt2/0"]
    with pytest.raises(ILMError, match="matches none"):
        select_runs(cfg, ["word_hop"])
    with pytest.raises(ILMError, match="matches none"):
        select_runs(cfg, ["*/gpt2"])  # globs match whole names: gpt2 is not tiny-gpt2
    with pytest.raises(ILMError, match="expected LANG/MODEL/SEED"):
        select_runs(cfg, ["a/b/c/d"])


def test_hop_only_metrics(cfg):
    assert eval_metrics(cfg, "token_hop") == ["perplexity", "marker_surprisal"]
    assert eval_metrics(cfg, "partial_reverse") == ["perplexity"]


def test_dry_run_plan_and_estimate(cfg):
    result = run_experiment(cfg, dry_run=True, stages=None)
    plan = result.plan
    assert result.executed == [] and not cfg.out.exists()
    assert [s.stage for s in plan.steps] == ["perturb"] * 4 + ["train", "eval"] * 4 + ["intervene", "report"]
    tokens = demo_train("schedule", "steps") * demo_train("batch", "tokens")
    assert tokens_per_run(cfg) == tokens
    text = format_plan(plan)
    assert "  [todo] train   token_hop/tiny-gpt2/0" in text
    assert "to do: 4 perturb, 4 train, 4 eval, 1 intervene, 1 report" in text
    assert "estimate:" not in text  # the estimate is its own step (impossible_lms.estimate)


def test_run_then_rerun_does_nothing(cfg):
    fake = FakeStages()
    first = run_experiment(cfg, stages=fake.stages(), log=lambda m: None)
    assert fake.calls[0] == ("perturb", tuple(cfg.languages))
    assert [c[0] for c in fake.calls] == ["perturb"] + ["train", "eval"] * 4 + ["intervene", "report"]
    assert len(first.executed) == 11  # the interventions run on the hop language only
    assert (cfg.out / "experiment.yaml").is_file()

    fake.calls.clear()
    again = run_experiment(cfg, stages=fake.stages(), log=lambda m: None)
    assert fake.calls == [] and again.executed == []
    assert all(s.status == "done" for s in again.plan.steps)


def test_changes_rerun_only_what_they_affect(cfg):
    fake = FakeStages()
    run_experiment(cfg, stages=fake.stages(), log=lambda m: None)

    fake.calls.clear()
    cfg.eval.checkpoints = "50-150:50"
    run_experiment(cfg, stages=fake.stages(), log=lambda m: None)
    assert [c[0] for c in fake.calls] == ["eval"] * 4 + ["report"]

    fake.calls.clear()
    cfg.train = {**cfg.train, "optim": {"lr": 1e-3}}
    run_experiment(cfg, stages=fake.stages(), log=lambda m: None)
    assert [c[0] for c in fake.calls] == ["train", "eval"] * 4 + ["intervene", "report"]

    fake.calls.clear()  # an analysis option: only that analysis and the report
    cfg.analyses = {"intervene": {**cfg.analyses["intervene"], "max_pairs": 8}}
    run_experiment(cfg, stages=fake.stages(), log=lambda m: None)
    assert fake.calls == [("intervene", "token_hop/tiny-gpt2/0"), ("report",)]

    fake.calls.clear()  # a deleted dataset: that language's whole chain reruns
    (layout(cfg).data_dir / "partial_reverse" / "manifest.json").unlink()
    run_experiment(cfg, stages=fake.stages(), log=lambda m: None)
    assert fake.calls == [("perturb", ("partial_reverse",)), ("train", "partial_reverse/tiny-gpt2/0"),
                          ("eval", "partial_reverse/tiny-gpt2/0"), ("report",)]


def test_only_runs_the_selection(cfg):
    fake = FakeStages()
    run_experiment(cfg, only=["token_hop"], stages=fake.stages(), log=lambda m: None)
    assert fake.calls == [("perturb", ("token_hop",)), ("train", "token_hop/tiny-gpt2/0"),
                          ("eval", "token_hop/tiny-gpt2/0"), ("intervene", "token_hop/tiny-gpt2/0"), ("report",)]


def test_a_failing_stage_leaves_no_stamp(cfg):
    fake = FakeStages()
    stages = fake.stages()

    def boom(cfg, run):
        raise RuntimeError("crash")

    stages.evaluate = boom
    with pytest.raises(RuntimeError):
        run_experiment(cfg, stages=stages, log=lambda m: None)
    plan = plan_experiment(cfg)
    assert [s.status for s in plan.steps if s.stage == "train"] == ["done", "todo", "todo", "todo"]
    assert all(s.status == "todo" for s in plan.steps if s.stage == "eval")


def test_emit_torchrun_and_slurm(cfg, tmp_path):
    lines = emit_torchrun(cfg, ["token_hop"])
    assert len(lines) == 1
    args = shlex.split(lines[0])
    assert args[:6] == ["torchrun", "--standalone", "--nproc_per_node=1", "-m", "cli.main", "train"]
    assert args[6:14] == ["--data", str(layout(cfg).data_dir / "token_hop"), "--model", "tiny-gpt2", "--seed", "0",
                          "--out", str(layout(cfg).runs())]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    steps, batch_tokens = demo_train("schedule", "steps"), demo_train("batch", "tokens")
    assert f"schedule.steps={steps}" in sets and f"batch.tokens={batch_tokens}" in sets and "device=cpu" in sets

    path = emit_slurm(cfg, None, tmp_path / "train.sh")
    text = path.read_text()
    assert "#SBATCH --array=0-3" in text and text.count("torchrun --standalone") == 4
    assert 'eval "${RUNS[$SLURM_ARRAY_TASK_ID]}"' in text
    assert (f"#   ilm perturb no_shuffle local_shuffle:w=3 partial_reverse token_hop --corpus synthetic "
            f"--corpus-option sentences={cfg.corpus.options['sentences']} --corpus-option seed=0 --out {layout(cfg).data_dir} --tokenizer fallback "
            f"--tagger gold --workers 1\n") in text


def test_cli_dry_run_and_emit(tmp_path):
    from cli.main import app

    out = tmp_path / "exp"
    res = CliRunner().invoke(app, ["run", str(DEMO), "--set", f"out={out}", "--set", "estimate.seconds=0.2",
                                      "--dry-run", "--only", "*hop*"])
    assert res.exit_code == 0, res.output
    assert "on this machine's CPU: " in res.output and "GFLOP/s)" in res.output and "on one H100: " in res.output
    assert "[todo] perturb token_hop" in res.output and "no_shuffle" not in res.output
    assert not out.exists()
    res = CliRunner().invoke(app, ["run", str(DEMO), "--set", f"out={out}", "--emit", "torchrun"])
    assert res.exit_code == 0 and res.output.count("torchrun ") == 4
    bad = CliRunner().invoke(app, ["run", str(DEMO), "--emit", "mpirun"])
    assert bad.exit_code == 1 and "choose torchrun or slurm" in bad.output
    missing = CliRunner().invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "config file not found" in missing.output


def test_unknown_model_or_metric_fails_before_any_work(cfg):
    cfg.models = ["tiny-gtp2"]
    with pytest.raises(ILMError, match="unknown model preset 'tiny-gtp2' \\(did you mean 'tiny-gpt2'\\?\\)"):
        run_experiment(cfg, log=lambda m: None)
    cfg.models = ["tiny-gpt2"]
    cfg.eval.metrics = ["perplexity", "marker_surprise"]
    with pytest.raises(ILMError, match="unknown metric 'marker_surprise'"):
        run_experiment(cfg, log=lambda m: None)
    assert not cfg.out.exists()


def test_unknown_analysis_is_one_line(tmp_path):
    from impossible_lms.errors import ILMError

    with pytest.raises(ILMError, match="unknown analysis 'intervine'.*intervene"):
        load_experiment(DEMO, [f"out={tmp_path}", "analyses={intervine: {}}"])


# -------------------------------------------------- cross evals, per-model seeds, variants

STUDY = [
    "models=[tiny-gpt2,tiny-gpt2-nopos]",
    "model_seeds={tiny-gpt2-nopos: [5]}",
    "eval.cross={local_shuffle_w=3: [local_shuffle:w=5, no_shuffle]}",
    "variants={warm: {train: {schedule: {warmup: 7}}, seeds: [2], models: [tiny-gpt2], languages: [token_hop]}}",
]


@pytest.fixture
def study(tmp_path):
    c = load_experiment(DEMO, [f"out={tmp_path / 'exp'}", *STUDY])
    c.analyses = {"intervene": {"split": "train", "max_pairs": 64}}  # one analysis seam, as in ``cfg``
    return c


def test_study_plan_has_per_model_seeds_variants_and_cross_data(study):
    runs = select_runs(study)
    assert [r.key for r in runs if r.language == "token_hop"] == [
        "token_hop/tiny-gpt2/0", "token_hop/tiny-gpt2-nopos/5", "token_hop/tiny-gpt2@warm/2"]
    assert len(runs) == 4 * 2 + 1
    plan = plan_experiment(study)
    # The cross data is perturbed although no model trains on it.
    assert [s.key for s in plan.steps if s.stage == "perturb"] == [
        "no_shuffle", "local_shuffle:w=3", "local_shuffle:w=5", "partial_reverse", "token_hop"]
    assert [s.key for s in plan.steps if s.stage == "report"] == ["report", "report@warm"]
    assert eval_languages(study, "local_shuffle:w=3") == ["local_shuffle:w=3", "local_shuffle:w=5", "no_shuffle"]
    text = format_plan(plan)
    assert "eval    local_shuffle:w=3/tiny-gpt2/0  (+ scored on local_shuffle:w=5, no_shuffle)" in text
    assert "train   token_hop/tiny-gpt2@warm/2" in text
    assert [r.key for r in select_runs(study, ["*/*@warm"])] == ["token_hop/tiny-gpt2@warm/2"]
    assert len(select_runs(study, ["*/tiny-gpt2"])) == 4  # the recipe's runs only


def test_default_stages_pass_cross_data_variant_settings_and_folders(study, monkeypatch):
    import impossible_lms.evaluation as evaluation
    import impossible_lms.training as training
    from impossible_lms.experiment import Run, default_stages

    calls = {}
    monkeypatch.setattr(evaluation, "evaluate", lambda **kw: calls.setdefault("eval", kw))
    monkeypatch.setattr(training, "train", lambda tc, **kw: calls.setdefault("train", tc) and tc.run_dir)
    stages = default_stages()
    stages.evaluate(study, Run("local_shuffle:w=3", "tiny-gpt2", 0))
    data = layout(study).data_dir
    assert calls["eval"]["data"] == [data / "local_shuffle_w=3", data / "local_shuffle_w=5", data / "no_shuffle"]
    assert calls["eval"]["results"] == layout(study).results()
    calls.clear()
    warm = Run("token_hop", "tiny-gpt2", 2, "warm")
    stages.evaluate(study, warm)
    assert calls["eval"]["data"] == data / "token_hop"
    assert calls["eval"]["results"] == study.out / "variants" / "warm" / "results"
    stages.train(study, warm)
    tc = calls["train"]
    assert tc.schedule.warmup == 7 and tc.schedule.steps == demo_train("schedule", "steps") and tc.seed == 2
    assert Path(tc.run_dir) == study.out / "variants" / "warm" / "runs" / "token_hop" / "tiny-gpt2" / "seed2"


def test_study_runs_once_and_a_changed_cross_list_reruns_only_its_evals(study):
    fake = FakeStages()
    run_experiment(study, stages=fake.stages(), log=lambda m: None)
    assert fake.calls[0] == ("perturb", ("no_shuffle", "local_shuffle:w=3", "local_shuffle:w=5", "partial_reverse",
                                         "token_hop"))
    assert fake.calls[-2:] == [("report",), ("report", "warm")]
    assert len([c for c in fake.calls if c[0] == "train"]) == 9
    fake.calls.clear()
    assert run_experiment(study, stages=fake.stages(), log=lambda m: None).executed == [] and fake.calls == []
    study.eval.cross = {"local_shuffle:w=3": ["no_shuffle"]}
    run_experiment(study, stages=fake.stages(), log=lambda m: None)
    assert fake.calls == [("eval", "local_shuffle:w=3/tiny-gpt2/0"), ("eval", "local_shuffle:w=3/tiny-gpt2-nopos/5"),
                          ("report",)]


def test_emit_gives_a_variant_its_settings_and_folder(study):
    (line,) = emit_torchrun(study, ["*/*@warm"])
    args = shlex.split(line)
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert "schedule.warmup=7" in sets
    assert f"run_dir={study.out / 'variants' / 'warm' / 'runs' / 'token_hop' / 'tiny-gpt2' / 'seed2'}" in sets


@pytest.mark.parametrize("override,message", [
    ("model_seeds={gpt3: [1]}", "model_seeds: 'gpt3' is not one of the experiment's models"),
    ("eval.cross={word_hop: [no_hop]}", "eval.cross: word_hop is not one of the experiment's languages"),
    ("variants={w: {trian: {}}}", "variants.w: unknown key 'trian' \\(did you mean 'train'\\?\\)"),
    ("variants={w: {train: {}}}", "variants.w: `train` must give"),
    ("variants={w: {train: {seed: 1}, models: [gpt3]}}", "variants.w: model 'gpt3' is not one of"),
    ("variants={'a/b': {train: {seed: 1}}}", "variant name 'a/b'"),
])
def test_study_mistakes_are_one_line_errors(override, message):
    with pytest.raises(ILMError, match=message):
        load_experiment(DEMO, [override])


def test_a_variant_train_typo_fails_before_any_work(study):
    study.variants = {"warm": {"train": {"schedule": {"warmpu": 7}}}}
    with pytest.raises(ILMError, match="variants.warm.train: .*warmpu"):
        check_names(study)


def test_corpus_spec_reaches_perturb_and_an_unset_fallback_vocab_keeps_old_fingerprints(cfg, monkeypatch):
    """corpus.fallback_vocab goes to perturb_corpus (both callers share one function); left unset, the
    plan's perturb fingerprints are those of experiments written before the field existed."""
    import impossible_lms.perturb as perturb
    from impossible_lms.experiment import plan_experiment
    from impossible_lms.experiment.stages import perturb_languages
    from impossible_lms.io import fingerprint

    seen = []
    monkeypatch.setattr(perturb, "perturb_corpus", lambda languages, source, out, **kw: seen.append(kw) or [])
    cfg.corpus.fallback_vocab = 777
    perturb_languages(cfg, ["no_shuffle"])
    assert seen[-1]["fallback_vocab"] == 777 and seen[-1]["tokenizer"] == cfg.corpus.tokenizer
    cfg.corpus.fallback_vocab = None
    perturb_languages(cfg, ["no_shuffle"])
    assert "fallback_vocab" not in seen[-1]
    step = next(s for s in plan_experiment(cfg).steps if s.stage == "perturb")
    corpus = {"source": cfg.corpus.source, "options": cfg.corpus.options, "tokenizer": cfg.corpus.tokenizer,
              "tagger": cfg.corpus.tagger}
    assert step.fingerprint == fingerprint("perturb", step.key, corpus)
