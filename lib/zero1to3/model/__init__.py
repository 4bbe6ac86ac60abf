"""The Zero-1-to-3 model: its components and their loading, noise and DDIM schedules, the tiny and paper-scale
builders, VAE and CLIP encoding, the pose conditioning, the study's own VAE, and the official checkpoint converter.
"""
