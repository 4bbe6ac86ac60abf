import ast

import pytest

from conftest import REPO
from zero1to3 import cli


def test_only_the_cli_reads_params_yaml():
    """Convention 2: library functions take explicit arguments; only the stage entry point reads params."""
    for path in sorted((REPO / "lib" / "zero1to3").glob("*.py")):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "yaml" not in imported, f"{path.name} imports yaml"
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert "params.yaml" not in literals, f"{path.name} names params.yaml"


def test_read_params_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        cli.read_params(tmp_path / "nope.yaml", "render")
    path = tmp_path / "p.yaml"
    path.write_text("train: {seed: 0}\n")
    with pytest.raises(ValueError, match=r"no group 'render'; groups present: \['train'\]"):
        cli.read_params(path, "render")


def test_unknown_stage_is_an_error_listing_stages(tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'paint'; stages: \\['render'"):
        cli.run_stage("paint", REPO / "params.yaml")


def test_dvc_stages_match_cli_stages():
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m zero1to3 run {name}"
        assert f"notebooks/{cli.STAGES[name]}" in stage["deps"]
        assert stage["params"] == [name]


def _params_with(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_run_checks_the_group_before_anything_starts(tmp_path, capsys, monkeypatch):
    """Issue 11, item 8: a bad value is one line naming group.key, exit 2, and the notebook never starts."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["finetune"]["training"]["max_steps"] = -5
    path = _params_with(tmp_path, yaml.safe_dump(params))
    started = []
    monkeypatch.setattr(cli, "run_stage", lambda *a, **k: started.append(a))
    assert cli.main(["run", "finetune", "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finetune.training.max_steps" in err and "-5" in err
    assert not started


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    path = _params_with(tmp_path, "render:\n  seed: 0\n  num_train: [1, 2\n")
    assert cli.main(["run", "render", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "malformed YAML" in err
    line = int(err.split(f"{path}:")[1].split(":")[0])
    assert line in (3, 4)  # the unclosed list opens on line 3; the parser notices at the end of the file


def test_unknown_key_in_a_group_is_an_error_not_a_warning(tmp_path, capsys):
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sample"]["guidance_sclae"] = 3.0
    path = _params_with(tmp_path, yaml.safe_dump(params))
    assert cli.main(["run", "sample", "--params", str(path)]) == 2
    assert "sample.guidance_sclae: unknown key" in capsys.readouterr().err
