import copy
import dataclasses

import pydantic
import pytest
import yaml

from conftest import REPO
from zero1to3 import config
from zero1to3.config import RenderConfig

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
_ENTRY = {"path": "meshes/gso", "glob": "*/meshes/model.obj", "up_axis": "Z", "prefix": "gso_", "split": "gso"}


def test_params_yaml_render_group_builds_a_config():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = RenderConfig.from_dict(params["render"])
    assert cfg.num_train >= 300 and cfg.num_views == 12  # the default scale
    assert RenderConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_is_an_error_listing_valid_keys(tiny_render_cfg):
    values = tiny_render_cfg.to_dict() | {"num_trian": 5}
    with pytest.raises(ValueError, match=r"RenderConfig: unknown keys \['num_trian'\]; valid keys: \['seed'"):
        RenderConfig.from_dict(values)


def test_missing_key_is_an_error(tiny_render_cfg):
    values = tiny_render_cfg.to_dict()
    del values["seed"]
    with pytest.raises(ValueError, match=r"RenderConfig: missing keys \['seed'\]"):
        RenderConfig.from_dict(values)


@pytest.mark.parametrize("field", ["num_views", "resolution_px", "samples_per_pixel"])
def test_nonsense_values_are_rejected(tiny_render_cfg, field):
    with pytest.raises(ValueError, match=field):
        RenderConfig.from_dict(tiny_render_cfg.to_dict() | {field: 0})


def test_render_settings_change_with_image_settings_only(tiny_render_cfg):
    import dataclasses

    assert dataclasses.replace(tiny_render_cfg, num_train=99).render_settings() == tiny_render_cfg.render_settings()
    assert dataclasses.replace(tiny_render_cfg, seed=1).render_settings() != tiny_render_cfg.render_settings()


def test_every_group_of_params_yaml_fits_its_schema_and_becomes_a_frozen_config():
    for stage in config.STAGE_SCHEMAS:
        built = config.stage_config(stage, PARAMS[stage])
        assert isinstance(built, config.STAGE_SCHEMAS[stage])
        with pytest.raises((dataclasses.FrozenInstanceError, pydantic.ValidationError)):
            built.seed = 1
    sampler = config.stage_config("sample", PARAMS["sample"]).sampler
    assert sampler.ddim_steps == PARAMS["sample"]["sampler"]["ddim_steps"]


def _edit(stage, path, value):
    group = copy.deepcopy(PARAMS[stage])
    *parents, key = path.split(".")
    target = group
    for parent in parents:
        target = target[parent]
    if value is _DELETE:
        del target[key]
    else:
        target[key] = value
    return group


_DELETE = object()


# Every kind of bad value is one line naming `group.key`, the value and the rule.
@pytest.mark.parametrize(
    "stage, path, value, message",
    [
        ("finetune", "training.max_steps", -5, r"finetune\.training\.max_steps: .*or equal to 1 \(got -5\)"),
        ("finetune", "training.max_stpes", 5, r"finetune\.training: unknown keys \['max_stpes'\]"),
        ("finetune", "training.learning_rate", "1e-3", r"finetune\.training\.learning_rate: .*valid number.*'1e-3'"),
        ("finetune", "training.prediction_type", "eps", r"finetune\.training\.prediction_type: .*'epsilon'"),
        ("finetune", "training.seed", 3, r"finetune\.training: \['seed'\] are set by the stage"),
        ("finetune", "sede", 1, r"finetune\.sede: unknown key"),
        ("finetune", "vae.steps", "500", r"finetune\.vae\.steps: .*valid integer \(got '500'\)"),
        ("finetune", "tiny_model.image_size", 64.5, r"finetune\.tiny_model\.image_size: .*integer"),
        ("finetune", "tiny_model.depth", 3, r"finetune\.tiny_model: unknown keys \['depth'\]"),
        ("finetune", "scale", "huge", r"finetune\.scale: .*'tiny' or 'paper'"),
        ("render", "radius_min", 0, r"render\.radius_min: .*greater than 0"),
        ("render", "radius_min", 3.0, r"render: need sqrt\(3\)/2 < radius_min <= radius_max"),
        ("render", "num_train", "400", r"render\.num_train: .*valid integer"),
        ("render", "seed", _DELETE, r"render: missing keys \['seed'\]"),
        ("sample", "sampler.guidance_scale", 0.0, r"sample\.sampler\.guidance_scale: .*greater than or equal to 1"),
        ("sample", "sets", ["train"], r"sample\.sets\.0: `train` is not held out"),
        ("sample", "sets", ["My set"], r"sample\.sets\.0: String should match pattern .*\(got 'My set'\)"),
        ("sjc", "objects_per_set", {"test": -1}, r"sjc\.objects_per_set\.test: .*greater than or equal to 0"),
        ("render", "sources", [_ENTRY | {"up_axis": "X"}], r"render\.sources\.0\.up_axis: .*'Y' or 'Z' \(got 'X'\)"),
        ("render", "sources", _DELETE, r"render: missing keys \['sources'\]"),
        ("sjc", "config.iterations", 0, r"sjc\.config: `iterations` must be positive, got 0"),
        ("sjc", "config.iterations", _DELETE, r"sjc\.config: missing keys \['iterations'\]"),
        ("evaluate", "num_resamples", True, r"evaluate\.num_resamples: .*integer"),
    ],
)
def test_bad_values_are_errors_naming_group_key_value_and_rule(stage, path, value, message):
    with pytest.raises(config.ParamsError, match=message) as err:
        config.stage_config(stage, _edit(stage, path, value))
    assert len(str(err.value).splitlines()) == 1


def test_configs_check_values_when_built_directly_too():
    cfg = RenderConfig.from_dict(PARAMS["render"])
    with pytest.raises(ValueError, match="num_views"):
        dataclasses.replace(cfg, num_views="12")  # a notebook edited by hand gets the same checks


def test_every_problem_of_a_group_is_reported_at_once():
    group = _edit("finetune", "training.max_steps", -5)
    group["vae"]["stepz"] = 3
    with pytest.raises(config.ParamsError) as err:
        config.stage_config("finetune", group)
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and "finetune.vae.stepz: unknown key" in lines[0] and "training.max_steps" in lines[1]


# --- your own objects (`render.sources`) and named evaluation sets ---------------------------------------------------


def test_render_sources_are_checked_entries_that_round_trip():
    coloured = _ENTRY | {"color_rgba": [1, 0.5, 0, 1]}
    cfg = config.stage_config("render", PARAMS["render"] | {"sources": [_ENTRY, coloured]})
    assert [e.split for e in cfg.sources] == ["gso", "gso"] and cfg.sources[0].color_rgba is None  # optional
    assert cfg.sources[1].color_rgba == [1.0, 0.5, 0.0, 1.0]
    assert cfg.to_dict()["sources"][0] == _ENTRY | {"color_rgba": None}  # plain data, as params.yaml holds it
    assert RenderConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.render_settings() == RenderConfig.from_dict(PARAMS["render"]).render_settings()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"glob": None}, r"render\.sources\.0\.glob: missing key"),
        ({"colour": [1, 0, 0, 1]}, r"render\.sources\.0\.colour: unknown key"),
        ({"color_rgba": [1, 0, 0]}, r"render\.sources\.0\.color_rgba: List should have at least 4 items"),
        ({"color_rgba": [2, 0, 0, 1]}, r"render\.sources\.0\.color_rgba\.0: .*less than or equal to 1"),
        ({"prefix": "GSO-"}, r"render\.sources\.0\.prefix: String should match pattern"),
        ({"split": "Google Scans"}, r"render\.sources\.0\.split: String should match pattern"),
    ],
)
def test_a_bad_source_entry_is_one_line_naming_the_entry_and_key(change, message):
    entry = {k: v for k, v in (_ENTRY | change).items() if v is not None}
    with pytest.raises(config.ParamsError, match=message) as err:
        config.stage_config("render", PARAMS["render"] | {"sources": [entry]})
    assert len(str(err.value).splitlines()) == 1


def test_named_evaluation_sets_flow_through_sample_sjc_and_evaluate_params():
    """Any set name may be given; whether the manifest has it is checked when the stage runs (`stages.check_sets`)."""
    sample = config.stage_config("sample", PARAMS["sample"] | {"sets": ["test", "gso"]})
    assert sample.sets == ["test", "gso"]
    sjc = config.stage_config("sjc", PARAMS["sjc"] | {"objects_per_set": {"gso": 3, "zero_shot": 1}})
    assert list(sjc.objects_per_set.items()) == [("gso", 3), ("zero_shot", 1)]  # in the given order
    assert config.stage_config("evaluate", PARAMS["evaluate"] | {"sets": ["gso"]}).sets == ["gso"]
    with pytest.raises(config.ParamsError, match=r"sjc\.objects_per_set\.train\.\[key\]: `train` is not held out"):
        config.stage_config("sjc", PARAMS["sjc"] | {"objects_per_set": {"train": 3}})
