"""Stage 05, evaluation: metrics by kind (pixels, perceptual networks, shapes, bootstrap statistics), the scoring of
every method against baselines and controls, and the report.
"""
