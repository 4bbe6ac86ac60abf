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
