"""benchmarks/bench_study.py: stage times from the executed notebooks, the reference workload, the verdict."""

import json
import sys

import nbformat
import pytest

from conftest import REPO, load_script
from zero1to3 import stages
from zero1to3.core import progress


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(REPO / "benchmarks"))  # as when run as a script: it imports bench_train, then _common
    try:
        return load_script("benchmarks/bench_study.py")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def executed(folder, minutes: dict[str, float], reused: dict[str, str] | None = None) -> None:
    """A papermill-like executed notebook per stage: durations in the metadata, a reuse line in one output."""
    folder.mkdir(parents=True, exist_ok=True)
    for stage, name in stages.STAGES.items():
        line = (reused or {}).get(stage, progress.reuse_line([]))
        cell = nbformat.v4.new_code_cell("x = 1\ny = 2", outputs=[nbformat.v4.new_output("stream", text=line)])
        cell.metadata["papermill"] = {"duration": minutes[stage] * 60.0}
        nb = nbformat.v4.new_notebook(cells=[cell])
        nb.metadata["papermill"] = {"duration": minutes[stage] * 60.0, "start_time": "s", "end_time": "e"}
        nbformat.write(nb, folder / name)


def test_stage_times_sum_and_a_reused_stage_is_named(bench, tmp_path):
    minutes = dict.fromkeys(stages.STAGES, 10.0)
    executed(tmp_path / "fresh", minutes)
    times = bench.stage_times(tmp_path / "fresh")
    assert [t["minutes"] for t in times.values()] == [10.0] * len(stages.STAGES)
    assert all(t["reused"] is None for t in times.values()), "the nothing-reused line is not a reuse"
    assert times["render"]["slowest_cells"] == [{"cell": "x = 1", "seconds": 600.0}]
    executed(tmp_path / "resumed", minutes, {"finetune": "Reused from `models/finetune/`: the VAE."})
    assert bench.stage_times(tmp_path / "resumed")["finetune"]["reused"].startswith("Reused from")


def test_a_failed_or_missing_stage_has_no_time(bench, tmp_path):
    executed(tmp_path, dict.fromkeys(stages.STAGES, 1.0))
    path = tmp_path / stages.STAGES["sample"]
    nb = nbformat.read(path, as_version=4)
    nb.metadata["papermill"]["exception"] = True
    nbformat.write(nb, path)
    with pytest.raises(RuntimeError, match="failed run"):
        bench.stage_times(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="make study"):
        bench.stage_times(tmp_path)


def test_reference_workload_is_timed_and_the_study_given_in_its_units(bench, tmp_path, monkeypatch):
    seconds = bench.reference_seconds(str(REPO / "tests" / "smoke_params.yaml"), steps=2)
    assert 0 < seconds < 60
    executed(tmp_path / "nb", dict.fromkeys(stages.STAGES, 5.0))  # 25 minutes in all
    monkeypatch.setattr(bench, "reference_seconds", lambda params: 30.0)
    out = tmp_path / "study.json"
    monkeypatch.setattr("sys.argv", ["bench_study.py", "--notebooks", str(tmp_path / "nb"), "--out", str(out)])
    bench.main()
    result = json.loads(out.read_text())
    assert result["total_minutes"] == 25.0 and result["within_budget"] is True
    assert result["reference_seconds"] == 30.0 and result["study_in_reference_units"] == 50.0  # 1500 s / 30 s
