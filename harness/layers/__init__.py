"""Trusted images in layers, each tagged by a hash of everything it is made from.

    rootfs (debian:bookworm-slim pulled, or debootstrap + `docker import` offline)
      -> base (Python 3.11 venv, the sandbox user)
        -> torch-<version>
          -> runtime-deps (torchaudio, torchcodec, FFmpeg, xares)
            -> runtime (the in-container agent, `checker/`)
          -> submission-<sha> (a participant's files and requirements; `harness.stages.build`)

`model` says what a layer is made from and names it; `options` how builds reach the outside;
`rootfs` where the bottom comes from; `build` runs recipes and commits them; `store` lists and
prunes what was built.
"""
