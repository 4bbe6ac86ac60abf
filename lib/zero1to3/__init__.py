"""The Zero-1-to-3 study as a package: one folder per job, named after the stage it serves.

Told which stage you care about, open one folder:

- top level: `cli` (the user commands `run`, `render`, `sample`, `reconstruct`), `stages` (the stage entry point
  that `dvc repro` calls), `config` (the schema of every params group), `cameras` (camera frames and poses).
- `core/`: what every stage shares: atomic files, checkpoints, fingerprints, progress bars, worker processes,
  the environment record, figures, and the files stages 03-05 hand each other (`outputs`).
- `dataset/` (stage 01): object sources (`objects`, `everyday`), the render orchestration (`render`), the Blender
  scene (`scene`), and reading the rendered views back (`data`).
- `model/`: the Zero-1-to-3 components (`components`), their noise and DDIM schedules (`schedulers`), the tiny and
  paper-scale builders (`builders`), VAE and CLIP encoding (`encoders`), the pose conditioning (`conditioning`),
  the study's own VAE (`autoencoder`) and the official checkpoint converter (`convert`).
- `novel_views/` (stages 02-03): training (`train`) and its diagnostics, the DDIM sampling loop (`sample`) and the
  diffusers-style pipeline around it (`pipeline`).
- `sjc/` (stage 04): Score Jacobian Chaining, split as threestudio splits it: geometry (`voxel`), renderer
  (`raymarch`), guidance (`guidance`), system (`system`); meshes (`mesh`) and the stage's orchestration
  (`reconstruction`).
- `single_image/`: one user image to a coloured mesh (`image_to_3d`), with its framing (`inputs`) and the input
  camera's elevation estimate (`elevation`).
- `evaluation/` (stage 05): metrics by kind (`pixel_metrics`, `perceptual`, `shape_metrics`, `bootstrap`), the
  scoring of every method (`evaluate`) and the report (`report`).

Conventions (camera frames, pose encoding, dropout, DDIM schedule) are written down in docs/conventions.md.
"""
