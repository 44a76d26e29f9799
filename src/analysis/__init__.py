"""The paper's analyses of a trained DCGAN (Radford et al., sections 4.1, 6.2, 6.3), one concept per module:

  arithmetic       numbered samples and vector arithmetic on their latent vectors (Fig. 7), with the same
                   arithmetic in pixel space beside it
  nearest          the memorisation check: each generated image's nearest training images, by pixel L2 and by D
                   features, against the test set's nearest-neighbour distances as the reference
  guided_backprop  what D's last-stage channels respond to: guided-backpropagation maps of the real images that
                   excite them most, trained D against untrained D (Fig. 5)
  figures          the small Pillow helpers their figures share (tiles, labels, panels)

The library functions take numpy arrays and callables (a generator forward z -> images in [-1, 1], as in
src/outputs/generate.py; a feature function images -> vectors), so they are tested without checkpoints; the CLIs
(eval.py, verify.py) load the networks and call them. Every file is written whole (src/files.py write_atomically).
"""
