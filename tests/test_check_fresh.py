"""scripts/check_fresh.py: dvc.lock against the code, notebooks and params it recorded."""

import hashlib

import pytest
import yaml

from conftest import REPO, load_script

check_fresh = load_script("scripts/check_fresh.py")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def project(tmp_path):
    """A two-stage project whose dvc.lock matches its files, as a complete `dvc repro` leaves it."""
    files = {"lib/a.py": "A = 1\n", "lib/b.py": "B = 2\n", "nb/one.ipynb": "{}\n"}
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    params = {"one": {"seed": 0, "sizes": [1, 2]}, "two": {"seed": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stages = {
        "one": {"cmd": "run one", "deps": ["nb/one.ipynb", "lib/a.py"], "params": ["one"], "outs": ["data/one"]},
        "two": {"cmd": "run two", "deps": ["data/one", "lib/a.py", "lib/b.py"], "params": ["two"]},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))

    def dep(path):
        return {"path": path, "hash": "md5", "md5": _md5(files[path]) if path in files else "0" * 32 + ".dir"}

    lock = {
        name: {
            "cmd": s["cmd"],
            "deps": [dep(p) for p in s["deps"]],
            "params": {"params.yaml": {g: params[g] for g in s["params"]}},
        }
        for name, s in stages.items()
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": lock}))
    return tmp_path


def test_a_lock_written_from_these_files_is_fresh(project, capsys):
    assert check_fresh.stale_stages(project) == {}
    assert check_fresh.main(["--repo", str(project)]) == 0
    assert "match dvc.lock" in capsys.readouterr().out


def test_an_edited_module_makes_every_stage_that_runs_it_stale(project, capsys):
    (project / "lib" / "b.py").write_text("B = 3\n")
    assert check_fresh.stale_stages(project) == {"two": ["lib/b.py (changed)"]}
    (project / "lib" / "a.py").write_text("A = 0\n")
    assert set(check_fresh.stale_stages(project)) == {"one", "two"}
    assert check_fresh.main(["--repo", str(project)]) == 1
    err = capsys.readouterr().err
    assert "stale: stage one: lib/a.py (changed)" in err and "2 stage(s)" in err


def test_params_are_read_as_dvc_writes_them_yaml_1_2(project):
    """DVC writes `no` and `1e-06` bare into dvc.lock; read as YAML 1.1 they would be False and a string."""
    (project / "params.yaml").write_text(
        'one: {seed: 0, sizes: [1, 2], precision: "no", weight: 1.0e-6}\ntwo: {seed: 1}\n'
    )
    lock = (
        (project / "dvc.lock")
        .read_text()
        .replace("seed: 0", "seed: 0\n          precision: no\n          weight: 1e-06")
    )
    (project / "dvc.lock").write_text(lock)
    assert "precision: no" in lock and check_fresh.stale_stages(project) == {}
    (project / "params.yaml").write_text(
        'one: {seed: 0, sizes: [1, 2], precision: "no", weight: 2.0e-6}\ntwo: {seed: 1}\n'
    )
    assert check_fresh.stale_stages(project) == {"one": ["params.yaml group 'one'"]}


def test_params_a_new_or_dropped_dependency_and_the_command_count(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["one"]["sizes"] = [1, 2, 3]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    stages = yaml.safe_load((project / "dvc.yaml").read_text())
    stages["stages"]["two"]["deps"] = ["data/one", "lib/a.py", "nb/one.ipynb"]  # b.py dropped, the notebook new
    stages["stages"]["two"]["cmd"] = "run two --fast"
    (project / "dvc.yaml").write_text(yaml.safe_dump(stages))
    stale = check_fresh.stale_stages(project)
    assert stale["one"] == ["params.yaml group 'one'"]
    assert stale["two"] == [
        "command 'run two' -> 'run two --fast'",
        "nb/one.ipynb (new dependency)",
        "lib/b.py (no longer a dependency)",
    ]


def test_the_repository_is_checked_without_its_data(capsys):
    """On this repository it runs without data/ or models/ and names only stages of dvc.yaml."""
    stale = check_fresh.stale_stages(REPO)
    assert set(stale) <= set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
