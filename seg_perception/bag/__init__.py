"""``seg_bag``: make rosbag2 bags from image folders, replay them offline through the
segmentation pipeline (``eval``), or live against a running node (``live``).

Modules: :mod:`.bagfile` (bag reading/writing with ``rosbags``), :mod:`.recovery` (what is
left of cut-off bags), :mod:`.make`, :mod:`.replay` (``seg_bag eval``), :mod:`.live`,
:mod:`.cli` (the command line).
"""
