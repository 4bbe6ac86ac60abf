"""benchmarks/sjc_sweep.py: variants are stage 04's config with checked overrides, one thread per worker."""

import json

import pytest
import yaml

from conftest import REPO, load_script


@pytest.fixture(scope="module")
def sweep():
    return load_script("benchmarks/sjc_sweep.py")


def test_a_variant_is_stage04s_config_with_its_overrides_and_one_thread(sweep):
    base = yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"]
    name, overrides = sweep.parse_variant(["mine", "guidance_scale=20", "lambda_input=1e3", "iterations=300"])
    assert name == "mine" and overrides == {"guidance_scale": 20, "lambda_input": 1000.0, "iterations": 300}
    cfg = sweep.variant_config(base, overrides)
    assert cfg.guidance_scale == 20 and cfg.iterations == 300 and cfg.num_threads == 1
    assert cfg.to_dict() | {"num_threads": base["num_threads"]} == base | overrides
    for preset in sweep.VARIANTS.values():
        sweep.variant_config(base, preset)  # every named variant is a valid config


def test_bad_variants_are_errors_naming_the_key(sweep):
    base = yaml.safe_load((REPO / "params.yaml").read_text())["sjc"]["config"]
    with pytest.raises(ValueError, match="guidance_scal"):
        sweep.variant_config(base, {"guidance_scal": 3})
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        sweep.parse_variant(["mine", "guidance_scale"])


def _finish(folder, oid, prior, field=True):
    """A finished run's files as `reconstruct_object` writes them, its record last, made with model `prior`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{oid}.ply").write_text(f"{oid} made with {prior}")
    if field:
        (folder / f"{oid}.field.pt").write_text("field")
    (folder / f"{oid}.json").write_text(json.dumps({"identity": {"prior_fingerprint": prior, "seed": 0}}))


def test_stage04s_finished_runs_of_todays_model_are_copied_once_and_replace_stale_ones(sweep, tmp_path):
    stage04, work = tmp_path / "sjc", tmp_path / "work"
    priors = {"sjc": "today", "sjc_i": "today-i"}
    _finish(stage04 / "sjc", "a", "today")
    _finish(stage04 / "sjc", "b", "today", field=False)  # not finished
    _finish(stage04 / "sjc", "old", "yesterday")  # stage 04 not rerun since the model changed
    assert sweep.seed_from_stage04(stage04, work, ["a", "b", "c", "old"], priors) == 1
    assert sorted(p.name for p in (work / "sjc").iterdir()) == ["a.field.pt", "a.json", "a.ply"]
    assert sweep.seed_from_stage04(stage04, work, ["a"], priors) == 0  # the same run is there already

    _finish(work / "sjc", "d", "yesterday")  # the variant's own run, made with an older model: stale
    _finish(stage04 / "sjc", "d", "today")
    _finish(work / "sjc", "old", "today")  # the variant's own run of today's model: kept over stage 04's older one
    assert sweep.seed_from_stage04(stage04, work, ["d", "old"], priors) == 1
    assert (work / "sjc" / "d.ply").read_text() == "d made with today"
    assert (work / "sjc" / "old.ply").read_text() == "old made with today"


def test_earlier_rows_are_kept_only_where_they_compare_with_this_runs(sweep):
    sets, priors = {"test": ["a", "b"]}, {"sjc": "today", "sjc_i": "today-i"}
    earlier = {
        "sets": sets,
        "variants": {
            "g3": {"priors": priors, "all": 1},  # another variant, same objects and models: kept
            "default": {"priors": priors, "all": 2},  # measured again now: this run's row wins
            "old": {"priors": {"sjc": "yesterday", "sjc_i": "today-i"}, "all": 3},  # another model: dropped
            "unrecorded": {"all": 4},  # written before rows recorded their models: dropped
        },
    }
    rows, dropped = sweep.merge_earlier(earlier, {"default": {"priors": priors, "all": 5}}, sets, priors)
    assert rows == {
        "default": {"priors": priors, "all": 5},
        "g3": {"priors": priors, "all": 1, "from_earlier_run": True},
    }
    assert sorted(dropped) == ["old", "unrecorded"]
    rows, dropped = sweep.merge_earlier(earlier, {}, {"test": ["a"]}, priors)  # other objects: nothing compares
    assert rows == {} and sorted(dropped) == ["default", "g3", "old", "unrecorded"]
    assert sweep.merge_earlier(None, {"x": {}}, sets, priors) == ({"x": {}}, [])
