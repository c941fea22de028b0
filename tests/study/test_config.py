"""StudyConfig loading and its one-line errors."""

import pytest

from repspace.study import StudyConfig, load_study_config

GOOD = """
name = "t"
methods = ["base", "lora", "adapter"]
tasks = ["vqa"]
seeds = [0, 1]
data_fractions = [0.5, 1.0]
steps = {default = 5, lora = 7}
lr = {adapter = 0.01}
n_train = 40
[options.lora]
alpha = 8
[budgets]
lora = [2, 4]
[train]
warmup_ratio = 0.1
[compare]
num_samples = 16
layers = ["vision", "text"]
"""


def write(tmp_path, text, name="study.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_and_yaml_load_the_same(tmp_path):
    cfg = load_study_config(write(tmp_path, GOOD))
    assert cfg.methods == ("base", "lora", "adapter")
    assert cfg.steps_for("lora") == 7 and cfg.steps_for("adapter") == 5
    assert cfg.lr_for("adapter") == 0.01 and cfg.lr_for("lora") is None
    assert cfg.budgets_for("lora") == (2, 4) and cfg.budgets_for("adapter") == (None,)
    assert cfg.compare.layers == ("vision", "text") and cfg.compare.num_samples == 16
    yaml_text = """
name: t
methods: [base, lora, adapter]
seeds: [0, 1]
data_fractions: [0.5, 1.0]
steps: {default: 5, lora: 7}
lr: {adapter: 1e-2}
n_train: 40
options: {lora: {alpha: 8}}
budgets: {lora: [2, 4]}
train: {warmup_ratio: 0.1}
compare: {num_samples: 16, layers: [vision, text]}
"""
    cfg2 = load_study_config(write(tmp_path, yaml_text, "study.yaml"))
    assert cfg2.to_dict() == cfg.to_dict()
    assert StudyConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "text, key, words",
    [
        ('methods = ["lora"]\nbogus = 1', "bogus", "unknown key"),
        ('name = "x"', "methods", "missing"),
        ('methods = ["lora", "nope"]', "methods[1]", "unknown method"),
        ("methods = []", "methods", "non-empty list"),
        ('methods = ["lora", "lora"]', "methods", "duplicates"),
        ('methods = ["lora"]\ntasks = ["vqa", "chat"]', "tasks[1]", "unknown task"),
        ('methods = ["lora"]\nseeds = [0, "1"]', "seeds[1]", "integer"),
        ('methods = ["lora"]\ndata_fractions = [1.5]', "data_fractions[0]", "≤ 1"),
        ('methods = ["lora"]\nsteps = 0', "steps", "≥ 1"),
        (
            'methods = ["lora"]\nsteps = {adapter = 3}',
            "steps.adapter",
            "not one of the study's methods",
        ),
        ('methods = ["lora"]\nlr = -1.0', "lr", "> 0"),
        ('methods = ["lora"]\n[options.lora]\nrank = 3', "options.lora", "no option"),
        (
            'methods = ["lora"]\n[options.adapter]\nwidth = 3',
            "options.adapter",
            "not a trained method",
        ),
        ('methods = ["ia3"]\n[budgets]\nia3 = [1, 2]', "budgets.ia3", "no budget knob"),
        ('methods = ["lora"]\n[budgets]\nlora = []', "budgets.lora", "non-empty list"),
        (
            'methods = ["lora"]\n[options.lora]\nr = 4\n[budgets]\nlora = [2]',
            "budgets.lora",
            "sweep it here only",
        ),
        ('methods = ["lora"]\n[train]\nsteps = 3', "train.steps", "set by the study"),
        ('methods = ["lora"]\n[compare]\nprobes = "x"', "compare.probes", "unknown key"),
        ('methods = ["lora"]\n[compare]\npooling = "tokens"', "compare.pooling", "mean, first"),
    ],
)
def test_errors_are_one_line_naming_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_study_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and f"key {key!r}" in msg and words in msg, msg


def test_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_study_config(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_study_config(write(tmp_path, "methods = [lora"))
    with pytest.raises(ValueError, match="unknown study config format"):
        load_study_config(write(tmp_path, "x", "study.ini"))
    with pytest.raises(ValueError, match="must be a table"):
        load_study_config(write(tmp_path, "- 1\n- 2", "study.yaml"))


def test_output_dir_is_the_key_and_output_its_older_spelling(tmp_path):
    new = load_study_config(write(tmp_path, 'methods = ["base"]\noutput_dir = "o/new"\n', "a.toml"))
    old = load_study_config(write(tmp_path, 'methods = ["base"]\noutput = "o/old"\n', "b.toml"))
    assert (new.output_dir, new.study_dir().as_posix()) == ("o/new", "o/new")
    assert old.output_dir == "o/old" and "output" not in old.to_dict()
    assert (
        load_study_config(write(tmp_path, 'methods = ["base"]\n', "c.toml")).study_dir().as_posix()
        == "studies/c"
    )
    with pytest.raises(ValueError, match=r"key 'output': is the older spelling of 'output_dir'"):
        load_study_config(
            write(tmp_path, 'methods = ["base"]\noutput = "x"\noutput_dir = "y"\n', "d.toml")
        )
