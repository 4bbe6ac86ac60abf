"""Novel views (stages 02 and 03): training the view-conditioned model and its diagnostics, the DDIM sampling
loop with classifier-free guidance, and the diffusers-style pipeline that users call.
"""
