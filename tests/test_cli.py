import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, disc_rgba
from zero1to3 import cli, stages

# ---------------------------------------------------------------------------------------------------------------
# `python -m zero1to3 render --shard K/N` and `render --merge N`


@pytest.mark.parametrize("text, expected", [("1/1", (0, 1)), ("3/16", (2, 16)), (" 16 / 16 ", (15, 16))])
def test_parse_shard_counts_from_one(text, expected):
    assert cli.parse_shard(text) == expected


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--shard", "0/4"], r"--shard K/N needs 1 <= K <= N, got K=0, N=4"),
        (["--shard", "5/4"], r"--shard K/N needs 1 <= K <= N, got K=5, N=4"),
        (["--shard", "2"], r"--shard must be K/N, two whole numbers such as 3/16, got '2'"),
        (["--shard=-1/4"], r"--shard must be K/N"),
        (["--shard", "1.5/4"], r"--shard must be K/N"),
        (["--shard", "1/0"], r"1 <= K <= N, got K=1, N=0"),
        (["--merge", "0"], r"--merge N needs the number of shards, a whole number >= 1, got '0'"),
        (["--merge", "two"], r"--merge N needs the number of shards"),
    ],
)
def test_render_bad_shard_or_merge_is_one_line_and_exit_2(tmp_path, capsys, flags, message):
    assert cli.main(["render", *flags, "--params", str(REPO / "params.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("zero1to3 render: error: ") and re.search(message, err), err


@pytest.mark.parametrize("flags", [[], ["--shard", "1/2", "--merge", "2"]])
def test_render_needs_exactly_one_of_shard_and_merge(flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["render", *flags])
    assert exit_.value.code == 2 and "--shard" in capsys.readouterr().err


def test_render_shards_then_merge_give_the_unsharded_manifest(tmp_path, capsys, monkeypatch):
    """Job K of N renders its shard into the same data folder; `--merge N` writes the manifest a single run writes."""
    import yaml
    from test_objects import make_example_meshes
    from test_render import _fake_render_all

    from zero1to3.dataset import render

    monkeypatch.setattr(render, "_render_all", _fake_render_all)  # no Blender: the sharding and the manifest only
    meshes = make_example_meshes(tmp_path / "meshes")
    group = stages.load_params(REPO / "tests" / "smoke_params.yaml")["render"] | {
        "num_train": 5,
        "num_test": 2,
        "zero_shot": ["duck", "mug"],
        "sources": [
            {"path": str(meshes), "glob": "*/meshes/model.obj", "up_axis": "Z", "prefix": "gso_", "split": "gso"},
            {"path": str(meshes / "scans"), "glob": "*.ply", "up_axis": "Z", "prefix": "", "split": "train"},
        ],
    }
    whole = _params_with(tmp_path, yaml.safe_dump({"render": group | {"data_dir": str(tmp_path / "whole")}}))
    assert cli.main(["render", "--shard", "1/1", "--params", str(whole)]) == 0
    assert cli.main(["render", "--merge", "1", "--params", str(whole)]) == 0
    expected = (tmp_path / "whole" / "manifest.json").read_text()
    params = tmp_path / "sharded.yaml"
    params.write_text(yaml.safe_dump({"render": group | {"data_dir": str(tmp_path / "sharded")}}))
    for k in (1, 2, 3):
        assert cli.main(["render", "--shard", f"{k}/3", "--params", str(params)]) == 0
        assert (tmp_path / "sharded" / f"manifest.shard-{k}-of-3.json").is_file()
    capsys.readouterr()
    assert cli.main(["render", "--merge", "4", "--params", str(params)]) == 2  # a fourth job never ran
    assert "manifest.shard-4-of-4.json" in capsys.readouterr().err
    assert cli.main(["render", "--merge", "3", "--params", str(params)]) == 0
    # the same but for where the everyday objects' meshes were written (each data folder has its own)
    expected = expected.replace(str(tmp_path / "whole" / render.EVERYDAY_DIR), str(tmp_path / "sharded" / "everyday"))
    assert (tmp_path / "sharded" / "manifest.json").read_text() == expected
    assert json.loads(expected)["split"]["gso"] == ["gso_shoe"]


def _params_with(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------------
# `python -m zero1to3 sample`


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, dummy_components) -> str:
    from zero1to3.novel_views import pipeline

    folder = tmp_path_factory.mktemp("model") / "model"
    pipeline.Zero123Pipeline.from_components(dummy_components).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def image_path(tmp_path) -> str:
    path = tmp_path / "input.png"
    disc_rgba().save(path)
    return str(path)


def test_cli_single_view(saved_model, image_path, tmp_path):
    out = tmp_path / "out" / "view.png"
    argv = ["sample", image_path, "--model", saved_model, "--out", str(out), "--steps", "2", "--azimuth-deg", "90"]
    assert cli.main(argv) == 0
    first = np.asarray(Image.open(out))
    assert first.shape == (32, 32, 3)
    assert cli.main(argv) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), first)  # the default seed makes it repeatable


def test_cli_azimuth_sweep_writes_a_strip_and_a_gif(saved_model, image_path, tmp_path):
    out = tmp_path / "sweep.png"
    argv = ["sample", image_path, "--model", saved_model, "--out", str(out), "--steps", "2", "--azimuth-sweep", "3"]
    assert cli.main(argv) == 0
    assert np.asarray(Image.open(out)).shape == (32, 96, 3)
    gif = Image.open(tmp_path / "sweep.gif")
    assert gif.n_frames == 3 and gif.size == (32, 32)


def test_cli_missing_model_is_one_line_naming_the_file(image_path, tmp_path, capsys):
    missing = tmp_path / "no_model_here"
    assert cli.main(["sample", image_path, "--model", str(missing), "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing / "model_index.json") in err and "--model" in err
    assert not (tmp_path / "v.png").exists()


@pytest.mark.parametrize("content", [b"not an image at all", None], ids=["unreadable", "missing"])
def test_cli_bad_image_is_one_line_naming_the_path(saved_model, tmp_path, capsys, content):
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    assert cli.main(["sample", str(path), "--model", saved_model, "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err  # checked before the model loads: nothing else printed


def test_cli_image_without_an_object_names_the_path_and_the_reason(saved_model, tmp_path, capsys):
    path = tmp_path / "empty.png"
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(path)
    assert cli.main(["sample", str(path), "--model", saved_model, "--out", str(tmp_path / "v.png")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # above it: transformers' weight-loading bar
    assert last.startswith("zero1to3 sample: error:") and str(path) in last and "no object found" in last


def test_cli_rejects_a_non_png_out(saved_model, image_path, tmp_path, capsys):
    assert cli.main(["sample", image_path, "--model", saved_model, "--out", str(tmp_path / "v.jpg")]) == 2
    assert "--out must be a .png path" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--guidance-scale", "0"], r"`guidance_scale` must be a finite number >= 1, got 0.0"),
        (["--radius", "1e6"], r"`radius` must lie in \[-0.7, 0.7\], got 1000000.0"),
    ],
    ids=["guidance-0", "radius-1e6"],
)
def test_cli_refuses_sampling_arguments_the_model_cannot_use(saved_model, image_path, tmp_path, capsys, flags, match):
    out = tmp_path / "v.png"
    assert cli.main(["sample", image_path, "--model", saved_model, "--out", str(out), "--steps", "2", *flags]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # above it: transformers' weight-loading bar
    assert last.startswith("zero1to3 sample: error:") and re.search(match, last)
    assert not out.exists()


def test_cli_a_directory_as_image_says_so(saved_model, tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path), "--model", saved_model, "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path} is a directory, not an image file" in err


def test_cli_a_huge_image_is_one_line_with_its_size_and_the_limit(saved_model, tmp_path, capsys):
    path = tmp_path / "huge.png"
    Image.new("1", (14000, 14000), 1).save(path)  # 1 bit a pixel: 24 MB in memory, a few kB on disk
    assert cli.main(["sample", str(path), "--model", saved_model, "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    assert "14000x14000 px" in err and f"{Image.MAX_IMAGE_PIXELS:,} pixels" in err


# ---------------------------------------------------------------------------------------------------------------
# `python -m zero1to3 reconstruct`


def _reconstruct_argv(image, out, model, *flags):
    """The smoke profile's tiny SJC settings (3 iterations on a 9^3 grid) and a low iso-level that finds its field."""
    params = str(REPO / "tests" / "smoke_params.yaml")
    return [
        "reconstruct",
        str(image),
        "--out",
        str(out),
        "--model",
        model,
        "--params",
        params,
        "--mesh-threshold",
        "1.0",
        "--turntable-frames",
        "2",
        *flags,
    ]


def test_cli_reconstruct_writes_a_mesh_and_a_rerun_re_exports(saved_model, image_path, tmp_path):
    out = tmp_path / "out"
    assert cli.main(_reconstruct_argv(image_path, out, saved_model)) == 0
    assert {
        "mesh.glb",
        "mesh.obj",
        "mesh.ply",
        "turntable.gif",
        "turntable.png",
        "field.pt",
        "reconstruction.json",
    } <= {p.name for p in out.iterdir()}
    record = json.loads((out / "reconstruction.json").read_text())
    assert record["settings"]["config"]["iterations"] == 3 and record["camera"]["polar_deg"] == 90.0
    assert cli.main(_reconstruct_argv(image_path, out, saved_model, "--mesh-threshold", "1.1")) == 0
    again = json.loads((out / "reconstruction.json").read_text())
    assert not again["trained_this_run"] and again["settings"]["mesh"]["threshold_mean_factor"] == 1.1


def _transparent(path):
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(path)


def _busy(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)


@pytest.mark.parametrize(
    ("make", "flags", "match"),
    [
        (None, [], "does not exist"),
        (lambda p: p.write_bytes(b"not an image"), [], "cannot read"),
        (_transparent, [], "no object found"),
        (_busy, [], "not a plain background"),
        ("disc", ["--polar-deg", "nan"], r"--polar-deg must be a number in \[0, 180\]"),
        ("disc", ["--polar-deg", "up"], r"--polar-deg must be a number in \[0, 180\] or 'auto', got 'up'"),
        ("disc", ["--polar-deg", "181"], r"--polar-deg must be a number in \[0, 180\]"),
        ("disc", ["--azimuth-deg", "inf"], "--azimuth-deg must be a finite number"),
        ("disc", ["--radius", "9"], r"--radius must lie in \[1.5, 2.2\]"),
        ("disc", ["--model", "no_model_here"], "model_index.json"),
        ("disc", ["--mesh-smooth", "2"], "`smooth_kernel` must be an odd kernel size"),
    ],
    ids=[
        "missing",
        "unreadable",
        "transparent",
        "busy",
        "polar-nan",
        "polar-word",
        "polar-181",
        "azimuth-inf",
        "radius",
        "no-model",
        "mesh-smooth",
    ],
)
def test_cli_reconstruct_bad_input_is_one_line_and_exit_2(saved_model, tmp_path, capsys, make, flags, match):
    path = tmp_path / "input.png"
    if make == "disc":
        disc_rgba().save(path)
    elif make is not None:
        make(path)
    out = tmp_path / "out"
    assert cli.main(_reconstruct_argv(path, out, saved_model, *flags)) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # above it, maybe: transformers' weight-loading bar
    assert last.startswith("zero1to3 reconstruct: error:") and re.search(match, last), last
    if make not in ("disc", None) or "--model" in flags:
        assert str(path if "--model" not in flags else "no_model_here") in last  # names the file
    assert not (out / "reconstruction.json").exists() and not (out / "field.pt").exists()


def test_cli_reconstruct_unwritable_out_is_one_line_and_exit_2(saved_model, image_path, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(_reconstruct_argv(image_path, blocker / "out", saved_model)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot write to the output folder {blocker / 'out'}" in err


def test_cli_reconstruct_auto_reads_the_model_folders_probe(saved_model, image_path, tmp_path, capsys, caplog):
    import shutil

    from zero1to3.single_image import elevation

    model = tmp_path / "model"
    shutil.copytree(saved_model, model)
    argv = lambda out: _reconstruct_argv(image_path, tmp_path / out, str(model), "--polar-deg", "auto")  # noqa: E731
    assert cli.main(argv("without")) == 0  # no probe: the consistency estimator, with a warning
    assert json.loads((tmp_path / "without" / "reconstruction.json").read_text())["camera"]["polar_estimator"] == (
        "consistency"
    )
    assert "has no elevation_probe.json" in caplog.text
    rng = np.random.default_rng(0)
    dim = json.loads((model / "model_index.json").read_text())["zero1to3"]["clip_dim"]
    elevation.save_probe(elevation.fit_probe_to_features(rng.normal(size=(20, dim)), rng.uniform(20, 160, 20)), model)
    assert cli.main(argv("with")) == 0
    camera = json.loads((tmp_path / "with" / "reconstruction.json").read_text())["camera"]
    assert camera["polar_estimator"] == "probe" and camera["polar_estimated"]
    (model / elevation.PROBE_FILE).write_text("{}")
    assert cli.main(argv("broken")) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("zero1to3 reconstruct: error:") and str(model / elevation.PROBE_FILE) in last


# One writer per output: `cli.one_writer`


def test_a_second_reconstruct_into_a_busy_out_is_one_line_and_touches_nothing(
    saved_model, image_path, tmp_path, capsys
):
    out = tmp_path / "out"
    with cli.one_writer(out, cli.RECONSTRUCT_LOCK, "reconstruct"):  # another run holds --out
        before = sorted(p.name for p in out.iterdir())
        assert cli.main(_reconstruct_argv(image_path, out, saved_model)) == 2
        assert sorted(p.name for p in out.iterdir()) == before
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"{out} is being written by another `zero1to3 reconstruct` run (pid {os.getpid()})" in err[0]
    )
    assert not out.exists(), "the holder created --out and wrote nothing: it is removed with the lock"
    assert cli.main(_reconstruct_argv(image_path, out, saved_model)) == 0  # free again
    assert (out / "reconstruction.json").is_file() and not (out / cli.RECONSTRUCT_LOCK).exists()


def test_a_lock_file_left_by_a_killed_run_does_not_block(saved_model, image_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / cli.RECONSTRUCT_LOCK).write_text("pid 999999\n")  # no process holds it
    assert cli.main(_reconstruct_argv(image_path, out, saved_model)) == 0
    assert (out / "reconstruction.json").is_file()


def test_a_failed_reconstruct_leaves_no_folder_it_created(tmp_path, image_path, capsys):
    out = tmp_path / "new" / "out"
    assert cli.main(_reconstruct_argv(image_path, out, str(tmp_path / "no_model_here"))) == 2
    assert "no_model_here" in capsys.readouterr().err and not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert cli.main(_reconstruct_argv(image_path, kept, str(tmp_path / "no_model_here"))) == 2
    assert kept.is_dir() and not any(kept.iterdir()), "a folder the user made stays, empty as it was"


def test_sample_into_a_busy_or_unwritable_out_fails_before_the_model_loads(image_path, tmp_path, capsys, monkeypatch):
    from zero1to3.novel_views import pipeline

    loads = []
    monkeypatch.setattr(pipeline.Zero123Pipeline, "from_pretrained", lambda *a, **k: loads.append(a) or 1 / 0)
    out = tmp_path / "views" / "view.png"
    with cli.one_writer(out.parent, f".{out.name}.lock", "sample", out):
        assert cli.main(["sample", image_path, "--model", "m", "--out", str(out)]) == 2
    assert f"{out} is being written by another `zero1to3 sample` run" in capsys.readouterr().err
    assert not out.parent.exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main(["sample", image_path, "--model", "m", "--out", str(blocker / "view.png")]) == 2
    assert f"cannot write to the output folder {blocker}" in capsys.readouterr().err
    assert loads == []
