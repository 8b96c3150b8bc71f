"""Pure camera and ground-plane geometry (numpy + OpenCV): drivable-area grids, KITTI BEV."""
