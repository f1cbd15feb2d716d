# Sourced by setup.sh and test.sh: which LibTorch (MOCO_TORCH: debian or
# pip) and the build folder that goes with it (BUILD_DIR, unless set).
MOCO_TORCH=${MOCO_TORCH:-debian}
case "$MOCO_TORCH" in
  debian) BUILD_DIR=${BUILD_DIR:-build} ;;
  pip) BUILD_DIR=${BUILD_DIR:-build-torch2} ;;
  *) echo "--torch/MOCO_TORCH: expected debian or pip, got '$MOCO_TORCH'" >&2; exit 2 ;;
esac
export MOCO_TORCH BUILD_DIR
