"""zero1to3.everyday: procedural everyday objects, seeded, parts in their own colours, read as a source."""

import numpy as np
import trimesh

from zero1to3.dataset import everyday, objects


def test_every_category_is_written_once_per_turn_and_the_same_seed_writes_the_same_files(tmp_path):
    count = len(everyday.CATEGORIES) + 2
    first = everyday.write_everyday_objects(tmp_path / "a", count, seed=3)
    again = everyday.write_everyday_objects(tmp_path / "b", count, seed=3)
    other = everyday.write_everyday_objects(tmp_path / "c", 2, seed=4)
    assert [p.name for p in first][: len(everyday.CATEGORIES)] == [
        f"{name}_{i:04d}.ply" for i, name in enumerate(everyday.CATEGORIES)
    ]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again, strict=True))
    assert first[0].read_bytes() != other[0].read_bytes()


def test_objects_load_as_a_folder_source_with_parts_in_several_colours(tmp_path):
    """What render reads: every object a mesh in the unit cube, with vertex colours; most have several colours,
    and a package's front has its own colour (the pose shows in the colours, not only in the outline)."""
    everyday.write_everyday_objects(tmp_path, len(everyday.CATEGORIES), seed=0)
    sources = objects.folder_sources(tmp_path, "*.ply", "Z", prefix="every_")
    assert len(sources) == len(everyday.CATEGORIES) and sources[0].object_id.startswith("every_")
    colours = {}
    for source in sources:
        mesh = objects.load_normalised_mesh(source)
        assert np.isclose(np.max(mesh.extents), 1.0)
        assert isinstance(mesh.visual, trimesh.visual.ColorVisuals) and mesh.visual.kind == "vertex"
        colours[source.object_id] = len(np.unique(mesh.visual.vertex_colors[:, :3], axis=0))
    assert sum(n >= 2 for n in colours.values()) >= len(colours) - 2, colours

    package = next(oid for oid in colours if "package" in oid)
    assert colours[package] >= 3  # a front, the back and its sides: the box's yaw shows
