"""Stage 04, single-image 3D by Score Jacobian Chaining, split as threestudio splits it: the voxel field (geometry),
the ray marcher (renderer), the score of the view-conditioned model (guidance) and the losses and loop (system);
then meshes from a field, and the stage's orchestration over held-out objects.
"""
