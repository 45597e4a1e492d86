"""latentserve.generators: the shipped generators — datasets, training, ONNX export, the zoo.

The distribution `latentserve-generators` (torch, onnx, scikit-learn); direction discovery and
evaluation are `latentserve.registry.quality`'s. Example::

    from latentserve.generators.sprites_vae import train_sprites_vae
    bundle = train_sprites_vae(Path("out/sprites-vae"), epochs=2, seed=0)
"""
