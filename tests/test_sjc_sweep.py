"""benchmarks/sjc_sweep.py: variants are stage 04's config with checked overrides, one thread per worker."""

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


def test_stage04s_finished_runs_are_copied_once_and_unfinished_ones_not(sweep, tmp_path):
    stage04, work = tmp_path / "sjc", tmp_path / "work"
    for name in ("a.ply", "a.field.pt", "a.json", "b.ply", "b.json"):  # b: no field, not finished
        (stage04 / "sjc" / name).parent.mkdir(parents=True, exist_ok=True)
        (stage04 / "sjc" / name).write_text(name)
    assert sweep.seed_from_stage04(stage04, work, ["a", "b", "c"]) == 1
    assert sorted(p.name for p in (work / "sjc").iterdir()) == ["a.field.pt", "a.json", "a.ply"]
    (work / "sjc" / "a.json").write_text("this variant's own record")
    assert sweep.seed_from_stage04(stage04, work, ["a"]) == 0  # never over a run of the sweep's own
    assert (work / "sjc" / "a.json").read_text() == "this variant's own record"
