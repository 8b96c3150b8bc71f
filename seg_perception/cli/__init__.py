"""Layer 9: the ``seg_*`` command-line entry points (thin shells over the layers below)."""
