"""`ilm doctor` on a described (fake) machine: statuses, fixes, what becomes fatal, BabyLM layout, disk."""

from pathlib import Path

from typer.testing import CliRunner

from impossible_lms import doctor
from impossible_lms.doctor import BABYLM_GENRES, Environment, check_babylm, diagnose, fatal

ROOT = Path(__file__).resolve().parents[1]


def fake_env(modules=("torch", "nltk"), cuda=False, cached=(), nltk=(), stanza_dir=Path("/nonexistent"),
             free=10**12, python=(3, 11, 7)):
    return Environment(
        python=python,
        module_version=lambda name: "9.9" if name in modules else None,
        cuda=lambda: (True, "1 × H100 (CUDA 12.4)") if cuda else (False, "no CUDA device"),
        hf_cached=lambda repo, f: (repo, f) in cached,
        nltk_has=lambda resource: resource in nltk,
        stanza_dir=lambda: stanza_dir,
        disk_free=lambda path: free,
        run_setup=lambda train: dict(CPU_SETUP),
    )


CPU_SETUP = {"device": "cpu", "precision": "fp32", "attention": "math", "compile": False, "compile_available": True}


def by_name(checks):
    return {c.name: c for c in checks}


def test_bare_cpu_machine_warns_but_nothing_is_fatal():
    checks = by_name(diagnose(env=fake_env()))
    assert [n for n in checks] == ["python", "torch", "cuda", "flash-attn", "gpt2 tokenizer", "nltk tagger", "stanza tagger",
                                   "run setup"]
    assert checks["run setup"].detail == "device cpu, precision fp32, attention math, torch.compile off"
    assert checks["python"].status == "ok" and checks["torch"].detail == "torch 9.9"
    assert checks["cuda"].status == "warn"
    assert checks["flash-attn"].status == "ok"  # irrelevant without CUDA
    assert checks["gpt2 tokenizer"].status == "warn" and "tokenizer: fallback" in checks["gpt2 tokenizer"].fix
    nltk = checks["nltk tagger"]
    assert nltk.status == "warn" and nltk.detail == "missing NLTK data: punkt_tab, averaged_perceptron_tagger_eng"
    assert nltk.commands == ("python -m nltk.downloader -d $NLTK_DATA punkt_tab averaged_perceptron_tagger_eng",)
    assert checks["stanza tagger"].status == "warn" and checks["stanza tagger"].commands == ('pip install -e ".[stanza]"',)
    assert fatal(list(checks.values())) == []


def test_gpu_machine_with_everything(tmp_path):
    (tmp_path / "en").mkdir()
    env = fake_env(modules=("torch", "nltk", "flash_attn", "stanza"), cuda=True, cached={("gpt2", "tokenizer.json")},
                   nltk={"tokenizers/punkt_tab", "taggers/averaged_perceptron_tagger_eng"}, stanza_dir=tmp_path)
    checks = diagnose(env=env)
    assert all(c.status == "ok" for c in checks), [(c.name, c.status) for c in checks]
    assert by_name(checks)["cuda"].detail == "1 × H100 (CUDA 12.4)"


def test_missing_torch_and_old_python_are_fatal():
    checks = by_name(diagnose(env=fake_env(modules=(), python=(3, 9, 1))))
    assert checks["python"].status == "fail" and checks["torch"].status == "fail"
    assert "cuda" not in checks


def test_an_experiments_needs_become_fatal(tmp_path):
    corpus = make_babylm(tmp_path / "babylm")
    exp = tmp_path / "exp.yaml"
    exp.write_text((ROOT / "experiments" / "kallini2024.yaml").read_text()
                   .replace("source: data/babylm", f"source: {corpus}")
                   .replace("out: runs/kallini2024", f"out: {tmp_path / 'out'}"))
    checks = by_name(diagnose(experiment=exp, env=fake_env(free=10**9)))
    assert checks["gpt2 tokenizer"].status == "fail"   # tokenizer: gpt2
    assert checks["stanza tagger"].status == "fail"    # tagger: stanza
    assert checks["nltk tagger"].status == "warn"
    assert checks["corpus"].status == "ok"
    disk = checks["disk"]
    # 120 runs (90 + 30 warm-up ablations) × 30 checkpoints × 124M params × 12 bytes (+ tiny datasets)
    assert disk.status == "fail" and disk.detail.startswith("5356.8 GB needed") and "1.0 GB free" in disk.detail


def test_demo_needs_nothing_missing_here(tmp_path):
    checks = by_name(diagnose(experiment=ROOT / "experiments" / "demo.yaml", env=fake_env()))
    assert "corpus" not in checks  # synthetic
    assert checks["disk"].status == "ok" and fatal(list(checks.values())) == []


def make_babylm(root, skip=None):
    for folder, split in (("train_100M", "train"), ("dev", "dev"), ("test", "test")):
        (root / folder).mkdir(parents=True)
        for genre in BABYLM_GENRES:
            if (folder, genre) != skip:
                (root / folder / f"{genre}.{split}").write_text("Hello there.\n")
    return root


def test_babylm_layout(tmp_path):
    assert check_babylm(make_babylm(tmp_path / "ok")).status == "ok"
    other = check_babylm(make_babylm(tmp_path / "other", skip=("dev", "qed")))
    assert other.status == "warn" and other.detail.endswith("not the 2023 ten-genre layout: dev lacks qed")
    (tmp_path / "empty").mkdir()
    empty = check_babylm(tmp_path / "empty")
    assert empty.status == "fail" and "not a corpus ilm can read" in empty.detail
    (tmp_path / "empty" / "train_10M").mkdir()
    assert check_babylm(tmp_path / "empty").detail.endswith("no corpus files found")
    assert check_babylm(tmp_path / "nope").detail.endswith("does not exist")


def test_babylm_2023_layout_is_accepted_as_the_reader_accepts_it(tmp_path):
    root = tmp_path / "babylm_data"
    for folder, split in (("babylm_10M", "train"), ("babylm_dev", "dev"), ("babylm_test", "test")):
        (root / folder).mkdir(parents=True)
        for genre in BABYLM_GENRES:
            (root / folder / f"{genre}.{split}").write_text("Hello there.\n")
    assert check_babylm(root).status == "ok"
    (root / "babylm_test").rename(root / "elsewhere")
    missing = check_babylm(root)
    assert missing.status == "fail" and missing.detail.endswith("no test split")


def test_cli_exit_codes(tmp_path, monkeypatch):
    from cli.main import app

    monkeypatch.setattr(doctor, "Environment", lambda: fake_env())
    ok = CliRunner().invoke(app, ["doctor"])
    assert ok.exit_code == 0, ok.output
    assert "nothing fatal" in ok.output and "[stanza]" in ok.output.replace("\n", "")
    bad = CliRunner().invoke(app, ["doctor", "--corpus", str(tmp_path / "missing")])
    assert bad.exit_code == 1 and "1 fatal problem(s): corpus" in bad.output


def test_run_setup_is_what_training_would_use_here():
    setup = doctor.run_setup({"device": "cpu"})
    assert setup == {"device": "cpu", "precision": "fp32", "attention": "math", "compile": False,
                     "compile_available": True}
    assert doctor.run_setup({"device": "cpu", "precision": "bf16", "compile": True})["precision"] == "bf16"
    warn = doctor.check_run({**CPU_SETUP, "device": "cuda:0", "compile": True, "compile_available": False})
    assert warn.status == "warn" and "--no-compile" in warn.fix and "(not available here)" in warn.detail


def test_a_50k_vocabulary_on_cpu_warns(tmp_path):
    from impossible_lms.experiment import load_experiment

    demo = ROOT / "experiments" / "demo.yaml"
    small = doctor.check_speed(load_experiment(demo, [f"out={tmp_path}"]), CPU_SETUP)
    assert small.status == "ok" and "tiny-gpt2, vocabulary 4,098: 2.4 MFLOP/token × 409,600 tokens" in small.detail
    big = load_experiment(demo, [f"out={tmp_path}", "corpus.tokenizer=gpt2"])
    slow = doctor.check_speed(big, CPU_SETUP)
    assert slow.status == "warn" and "vocabulary 50,259" in slow.detail and "% in the output layer" in slow.detail
    assert "tokenizer: fallback" in slow.fix
    assert doctor.check_speed(big, {**CPU_SETUP, "device": "cuda:0"}).status == "ok"
    names = [c.name for c in diagnose(experiment=demo, env=fake_env())]
    assert names[-2:] == ["run setup", "speed"]


def test_commands_print_whole_on_their_own_lines(monkeypatch):
    """At 80 columns a command in a table cell is cut mid-word: the CLI prints each one whole, alone on its line."""
    from typer.testing import CliRunner

    import impossible_lms.doctor as doctor
    from cli.main import app

    monkeypatch.setattr(doctor, "diagnose", lambda **kw: diagnose(env=fake_env()))
    res = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "80"})
    lines = res.output.splitlines()
    for command in ("python -m nltk.downloader -d $NLTK_DATA punkt_tab averaged_perceptron_tagger_eng",
                    'pip install -e ".[stanza]"'):
        assert f"  {command}" in lines, res.output
