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


def _zero1to3_imports(source: str) -> set[str]:
    """Modules of the package that `source` imports, anywhere (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "zero1to3":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zero1to3."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("zero1to3.")}
    return {m for m in found if (REPO / "lib" / "zero1to3" / f"{m}.py").is_file()}


def test_each_stage_depends_on_every_module_its_notebook_runs():
    """An edit to any module a stage runs reruns that stage (`dvc repro` never leaves a stale result), and an edit
    to any other module does not.

    The stage runs `cli.py`'s `run` path (config, files) and its notebook, which imports modules that import
    others; every module in that closure must be a declared dependency.
    """
    import json

    import yaml

    lib = REPO / "lib" / "zero1to3"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cells = json.loads((REPO / "notebooks" / cli.STAGES[name]).read_text())["cells"]
        todo = _zero1to3_imports("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
        needed, todo = {"cli"}, todo | {"config", "files"}  # cli's own imports beyond these serve `sample` only
        while todo:
            module = todo.pop()
            if module not in needed:
                needed.add(module)
                todo |= _zero1to3_imports((lib / f"{module}.py").read_text())
        declared = {dep.removeprefix("lib/zero1to3/") for dep in stage["deps"] if dep.startswith("lib/")}
        missing = sorted(f"{m}.py" for m in needed if f"{m}.py" not in declared)
        assert not missing, f"dvc.yaml stage {name!r} runs {missing} but does not depend on them"
        extra = sorted(declared - {f"{m}.py" for m in needed})
        assert not extra, (
            f"dvc.yaml stage {name!r} depends on {extra}, which it never runs (an edit reruns it for nothing)"
        )


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
    import papermill

    started = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: started.append(a))
    assert cli.main(["run", "finetune", "--params", str(path), "--output-notebook", str(tmp_path / "out.ipynb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finetune.training.max_steps" in err and "-5" in err
    assert not started and not (tmp_path / "out.ipynb").exists()


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
