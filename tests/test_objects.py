import numpy as np
import pytest
import trimesh

from zero1to3 import objects


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
