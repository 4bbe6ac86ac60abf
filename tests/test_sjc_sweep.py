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
