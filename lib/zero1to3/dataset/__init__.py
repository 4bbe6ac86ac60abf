"""Stage 01, the dataset: object sources (random URDF shapes, procedural everyday objects, YCB zero-shot objects,
your own meshes), the render orchestration and its Blender scene, and reading the rendered views back.
"""
