"""A user's own image to a coloured mesh (`python -m zero1to3 reconstruct IMAGE`): framing the image like the
training renders, estimating the input camera's elevation, and running stage 04's SJC on it.
"""
