"""latentserve.generators: the shipped generators — datasets, training, directions, ONNX export.

Needs the `[train]` extra (torch, onnx, scikit-learn). Example::

    from latentserve.generators.sprites_vae import train_sprites_vae
    bundle = train_sprites_vae(Path("out/sprites-vae"), epochs=2, seed=0)
"""
