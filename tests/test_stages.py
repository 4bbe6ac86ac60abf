import ast
import json
import re
from pathlib import Path

import pytest

from conftest import REPO, load_script
from zero1to3 import cli, stages


def test_only_the_entry_points_read_params_yaml():
    """Convention 2: library functions take explicit arguments; only the entry points (the stages' and the user
    commands', which take stage 04's settings from it) read params."""
    for path in sorted((REPO / "lib" / "zero1to3").rglob("*.py")):
        if path.name in ("stages.py", "cli.py"):
            continue
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "yaml" not in imported, f"{path.name} imports yaml"
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert "params.yaml" not in literals, f"{path.name} names params.yaml"


def test_read_params_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        stages.read_params(tmp_path / "nope.yaml", "render")
    path = tmp_path / "p.yaml"
    path.write_text("train: {seed: 0}\n")
    with pytest.raises(ValueError, match=r"no group 'render'; groups present: \['train'\]"):
        stages.read_params(path, "render")


def test_unknown_stage_is_an_error_listing_stages(tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'paint'; stages: \\['render'"):
        stages.run_stage("paint", REPO / "params.yaml")


def test_dvc_stages_match_the_entry_points_stages():
    import yaml

    dvc_stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in dvc_stages.items():
        assert stage["cmd"] == f"python -m zero1to3.stages {name}"
        assert f"notebooks/{stages.STAGES[name]}" in stage["deps"]
        assert stage["params"] == [name]


def _module_file(dotted: str) -> str | None:
    """`zero1to3.core.files` -> "core/files.py" (relative to lib/zero1to3/), or None if it is not a module file."""
    parts = dotted.split(".")[1:]
    relative = Path(*parts).with_suffix(".py") if parts else None
    return relative.as_posix() if relative and (REPO / "lib" / "zero1to3" / relative).is_file() else None


def _zero1to3_imports(source: str) -> set[str]:
    """Module files of the package (relative to lib/zero1to3/) that `source` imports, anywhere (function-level
    imports included). A package's `__init__.py` is not one: it holds only its docstring
    (`test_package_inits_hold_only_their_docstring`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zero1to3":
            found.add(_module_file(node.module))
            found |= {_module_file(f"{node.module}.{alias.name}") for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {_module_file(a.name) for a in node.names if a.name.startswith("zero1to3.")}
    return found - {None}


def test_package_inits_hold_only_their_docstring():
    """The package's folders are maps, not code: an `__init__.py` is one docstring, so no stage depends on it."""
    for path in sorted((REPO / "lib" / "zero1to3").rglob("__init__.py")):
        body = ast.parse(path.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), path
        assert len(body[0].value.value.split()) >= 10, f"{path}: the docstring should say what the folder holds"


def test_each_stage_depends_on_every_module_its_notebook_runs():
    """An edit to any module a stage runs reruns that stage (`dvc repro` never leaves a stale result), and an edit
    to any other module does not.

    The stage runs `stages.py` (config, files) and its notebook, which imports modules that import others; every
    module in that closure must be a declared dependency. `cli.py` is not one: an edit to a user command reruns
    nothing.
    """
    import json

    import yaml

    lib = REPO / "lib" / "zero1to3"
    dvc_stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in dvc_stages.items():
        cells = json.loads((REPO / "notebooks" / stages.STAGES[name]).read_text())["cells"]
        todo = _zero1to3_imports("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
        needed, todo = set(), todo | {"stages.py"}
        while todo:
            module = todo.pop()
            if module not in needed:
                needed.add(module)
                todo |= _zero1to3_imports((lib / module).read_text())
        declared = {dep.removeprefix("lib/zero1to3/") for dep in stage["deps"] if dep.startswith("lib/")}
        missing = sorted(needed - declared)
        assert not missing, f"dvc.yaml stage {name!r} runs {missing} but does not depend on them"
        extra = sorted(declared - needed)
        assert not extra, (
            f"dvc.yaml stage {name!r} depends on {extra}, which it never runs (an edit reruns it for nothing)"
        )


def _params_with(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_run_checks_the_group_before_anything_starts(tmp_path, capsys, monkeypatch):
    """A bad value is one line naming group.key, exit 2, and the notebook never starts."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["finetune"]["training"]["max_steps"] = -5
    path = _params_with(tmp_path, yaml.safe_dump(params))
    import papermill

    started = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: started.append(a))
    assert stages.main(["finetune", "--params", str(path), "--output-notebook", str(tmp_path / "out.ipynb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finetune.training.max_steps" in err and "-5" in err
    assert not started and not (tmp_path / "out.ipynb").exists()


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    path = _params_with(tmp_path, "render:\n  seed: 0\n  num_train: [1, 2\n")
    assert stages.main(["render", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "malformed YAML" in err
    line = int(err.split(f"{path}:")[1].split(":")[0])
    assert line in (3, 4)  # the unclosed list opens on line 3; the parser notices at the end of the file


def test_unknown_key_in_a_group_is_an_error_not_a_warning(tmp_path, capsys):
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sample"]["guidance_sclae"] = 3.0
    path = _params_with(tmp_path, yaml.safe_dump(params))
    assert stages.main(["sample", "--params", str(path)]) == 2
    assert "sample.guidance_sclae: unknown key" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Held-out sets, checked against the manifest (and stage 03's samples) when a stage runs


def _data_with_sets(tmp_path, sets=("train", "val", "test", "zero_shot", "gso"), sampled=("test", "zero_shot")):
    data_dir = tmp_path / "data"
    (data_dir / "samples").mkdir(parents=True)
    (data_dir / "manifest.json").write_text(json.dumps({"split": {name: [] for name in sets}}))
    for name in sampled:
        (data_dir / "samples" / f"{name}.npz").write_bytes(b"")
    return str(data_dir)


def test_named_sets_of_the_manifest_pass_the_stage_check(tmp_path):
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    data_dir = _data_with_sets(tmp_path)
    stages.check_sets("sample", params["sample"] | {"data_dir": data_dir, "sets": ["gso", "test"]}, tmp_path)
    stages.check_sets("sjc", params["sjc"] | {"data_dir": data_dir, "objects_per_set": {"gso": 2}}, tmp_path)
    stages.check_sets("evaluate", params["evaluate"] | {"data_dir": data_dir, "sets": ["zero_shot"]}, tmp_path)
    stages.check_sets("finetune", params["finetune"], tmp_path / "nowhere")  # stages without sets: nothing to check


@pytest.mark.parametrize(
    "stage, change, message",
    [
        (
            "sample",
            {"sets": ["test", "scans"]},
            r"sample\.sets: 'scans' not in .*manifest\.json, whose held-out sets are val, test, zero_shot, gso",
        ),
        ("sjc", {"objects_per_set": {"zero_shot": 1, "ycb": 2}}, r"sjc\.objects_per_set: 'ycb' not in .*manifest"),
        ("evaluate", {"sets": ["gso"]}, r"evaluate\.sets: 'gso' not sampled: .*samples holds test, zero_shot"),
    ],
)
def test_a_set_the_data_lacks_is_one_line_and_exit_2_before_the_notebook(
    tmp_path, capsys, monkeypatch, stage, change, message
):
    import papermill
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[stage] |= change | {"data_dir": _data_with_sets(tmp_path)}
    path = _params_with(tmp_path, yaml.safe_dump(params))
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("the notebook started"))
    assert stages.main([stage, "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


def test_sampling_before_stage_01_says_to_run_it(tmp_path, capsys):
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sample"]["data_dir"] = str(tmp_path / "no_data")
    assert stages.main(["sample", "--params", str(_params_with(tmp_path, yaml.safe_dump(params)))]) == 2
    err = capsys.readouterr().err
    assert "no dataset manifest" in err and "run stage 01 first" in err


def test_the_manifest_and_samples_layout_match_the_library():
    from zero1to3.core import outputs
    from zero1to3.dataset import data

    assert stages.MANIFEST_NAME == data.MANIFEST_NAME
    assert outputs.samples_path("d", "gso") == Path("d") / stages.SAMPLES_DIR / "gso.npz"


# ---------------------------------------------------------------------------------------------------------------
# Profiles: overlays on params.yaml (`extends: ../params.yaml`), merged by `stages.load_params`

PROFILES = [*sorted((REPO / "profiles").glob("*.yaml")), REPO / "tests" / "smoke_params.yaml"]
PARAMS_YAML = str(REPO / "params.yaml")  # absolute: an overlay's `extends` is relative to the overlay's folder


def _overlay(tmp_path, groups, name="overlay.yaml"):
    import yaml

    path = tmp_path / name
    path.write_text(yaml.safe_dump({"extends": PARAMS_YAML} | groups, sort_keys=False))
    return path


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_profile_is_an_overlay_that_fits_every_stage_schema(path):
    import yaml

    assert yaml.safe_load(path.read_text())["extends"] == "../params.yaml"
    for stage in stages.STAGES:
        group = stages.read_params(path, stage)  # merged, then checked by config.stage_config
        assert stages.EXTENDS_KEY not in group


def test_an_overlay_that_changes_nothing_is_params_yaml(tmp_path):
    import yaml

    default = yaml.safe_load((REPO / "params.yaml").read_text())
    empty = _overlay(tmp_path, {})
    repeats = _overlay(tmp_path, {"sample": {"sampler": {"eta": default["sample"]["sampler"]["eta"]}}}, "same.yaml")
    for path in (empty, repeats):
        assert stages.load_params(path) == default
        assert list(stages.load_params(path)) == list(default)  # the groups in params.yaml's order
        for stage in stages.STAGES:
            assert stages.read_params(path, stage) == default[stage]


def test_an_overlay_merges_mappings_replaces_lists_and_drops_null_keys(tmp_path):
    import yaml

    default = yaml.safe_load((REPO / "params.yaml").read_text())
    path = _overlay(
        tmp_path,
        {
            "sample": {"sets": ["zero_shot"], "sampler": {"ddim_steps": 10}},
            "sjc": {"objects_per_set": {"test": None, "zero_shot": 1}},
        },
    )
    sample = stages.read_params(path, "sample")
    assert sample["sets"] == ["zero_shot"]  # replaced, not appended to [test, zero_shot]
    assert sample["sampler"] == default["sample"]["sampler"] | {"ddim_steps": 10}  # merged key by key
    assert sample | {"sets": None, "sampler": None} == default["sample"] | {"sets": None, "sampler": None}
    assert stages.read_params(path, "sjc")["objects_per_set"] == {"zero_shot": 1}  # `test: ~` removed the key


def test_merge_params_changes_neither_argument():
    base = {"a": {"b": [1, 2], "c": 3}}
    overlay = {"a": {"b": [4], "c": None}}
    merged = stages.merge_params(base, overlay)
    merged["a"]["b"].append(5)
    assert merged == {"a": {"b": [4, 5]}}
    assert base == {"a": {"b": [1, 2], "c": 3}} and overlay == {"a": {"b": [4], "c": None}}


def test_an_unknown_key_in_an_overlay_is_one_line_naming_the_file_and_key(tmp_path, capsys):
    path = _overlay(tmp_path, {"sample": {"guidance_sclae": 3.0}})
    assert stages.main(["sample", "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}: " in err and "sample.guidance_sclae: unknown key" in err, err
    with pytest.raises(ValueError, match=r"sjc\.config: unknown keys \['iteration'\]"):
        stages.read_params(_overlay(tmp_path, {"sjc": {"config": {"iteration": 3}}}), "sjc")


def test_an_overlay_group_its_base_lacks_is_an_error_naming_the_file(tmp_path):
    path = _overlay(tmp_path, {"smaple": {"seed": 1}})
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: unknown groups \['smaple'\]; groups of "):
        stages.read_params(path, "render")  # even when reading another group: nobody would read this one


def test_an_overlay_extends_one_complete_file_that_exists(tmp_path):
    missing = _params_with(tmp_path, "extends: nowhere.yaml\nrender: {seed: 1}\n")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml does not exist"):
        stages.read_params(missing, "render")
    first = _overlay(tmp_path, {"render": {"seed": 1}}, "first.yaml")
    second = tmp_path / "second.yaml"
    second.write_text(f"extends: {first.name}\nrender: {{seed: 2}}\n")
    with pytest.raises(ValueError, match="is itself an overlay; extend a complete file"):
        stages.read_params(second, "render")
    bad = _params_with(tmp_path, "extends: [params.yaml]\n")
    with pytest.raises(ValueError, match="extends must name the params file it changes"):
        stages.read_params(bad, "render")


# ---------------------------------------------------------------------------------------------------------------
# The quick profile (`make quick`)


def test_the_quick_profile_fits_every_schema_and_writes_only_under_quick():
    import yaml

    from zero1to3 import config

    quick = stages.load_params(REPO / "profiles" / "quick.yaml")  # merged over params.yaml
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(quick) == list(default) == list(stages.STAGES)
    for stage, group in quick.items():
        config.stage_config(stage, group)
        assert set(group) == set(default[stage])
        for key in ("data_dir", "models_dir", "results_dir"):
            if key in group:
                assert group[key].startswith("quick/"), f"{stage}.{key} = {group[key]} would touch the study's files"
    assert quick["finetune"]["tiny_model"] == default["finetune"]["tiny_model"]  # the same model, trained less
    assert "/quick" in (REPO / ".gitignore").read_text().splitlines()


def test_the_own_objects_example_fits_every_schema_and_its_meshes_make_the_named_set(tmp_path):
    """README "Your own objects": the profile and scripts/example_meshes.py agree, and nothing leaves quick/."""
    import yaml

    from zero1to3 import config
    from zero1to3.dataset import render

    profile = stages.load_params(REPO / "profiles" / "own_objects.yaml")  # merged over params.yaml
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(profile) == list(default)
    for stage, group in profile.items():
        config.stage_config(stage, group)
        assert set(group) == set(default[stage])
        for key in ("data_dir", "models_dir", "results_dir"):
            if key in group:
                assert group[key].startswith("quick/own_objects/"), f"{stage}.{key} = {group[key]}"
    meshes = load_script("scripts/example_meshes.py").write_example_meshes(tmp_path / "meshes")
    cfg = config.RenderConfig.from_dict(profile["render"])
    here = "quick/own_objects/meshes"
    moved = [e.model_copy(update={"path": e.path.replace(here, str(meshes))}) for e in cfg.sources]
    extra = {name: [s.object_id for s in group] for name, group in render.config_sources(moved).items()}
    assert extra["train"] == ["gso_blue_can", "gso_green_wedge", "gso_red_box"]
    assert extra["mine"] == ["3f2a9c01", "7b11e0d4", "scan_ball", "scan_broken", "scan_pill", "scan_ring"]
    assert {"mine", "zero_shot"} <= set(profile["sample"]["sets"]) and "mine" in profile["sjc"]["objects_per_set"]
    assert profile["evaluate"]["sets"] == profile["sample"]["sets"]


def test_a_notebook_run_with_another_params_file_says_so_at_the_top(tmp_path):
    import nbformat

    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · Render")]), path)
    stages.mark_profile(path, Path("profiles/quick.yaml"))
    cells = nbformat.read(path, as_version=4).cells
    assert "Run with `profiles/quick.yaml`, not the study's `params.yaml`" in cells[0].source
    assert cells[1].source == "# 01 · Render"


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path):
    """`make lab`'s script starts JupyterLab; the server lists the five notebooks over HTTP, then stops."""
    import json
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "test-token"
    server = subprocess.Popen(
        [
            "bash",
            str(REPO / "scripts" / "lab.sh"),
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            "--ServerApp.open_browser=False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path)},
    )
    try:
        url = f"http://127.0.0.1:{port}/api/contents/notebooks?token={token}"
        deadline, listing = time.monotonic() + 90, None
        while listing is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    listing = json.load(response)
            except OSError:
                time.sleep(0.5)
        assert listing is not None, f"JupyterLab did not answer: {server.stderr.read().decode()[-2000:]}"
        names = {item["name"] for item in listing["content"]}
        assert set(stages.STAGES.values()) <= names
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_user_command_run_is_the_stage_entry_point(tmp_path, capsys):
    """`python -m zero1to3 run <stage>` (the README's) hands over to `stages`: the same check, one line, exit 2."""
    path = tmp_path / "p.yaml"
    path.write_text("render:\n  seed: 0\n  num_train: [1, 2\n")
    assert cli.main(["run", "render", "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and f"{path}:" in err and "malformed YAML" in err
