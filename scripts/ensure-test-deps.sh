#!/bin/sh
# Debian packages the unit tests and the benchmark compare against:
#   python3-torch python3-torchvision  torchvision's ResNet18 as the reference our trunk must match
#   libopenblas0-pthread                an optimised BLAS behind that torch (Debian's default is the
#                                       reference BLAS, 30x slower), for a fair benchmark peer
#   chromium                            the real browser the notebook renderers are tested in
#   python3-anndata python3-h5py        the readers the h5ad export is checked with (what scanpy users read)
#   python3-nbformat                    Jupyter's validator for the notebooks we save (figures as SVG)
#   python3-tifffile                    an independent reader of the OME-TIFF pyramids the slide tests write
#   libopenslide0 libopenjp2-tools      optional: OpenSlide (what reads NDPI, MRXS and JPEG 2000 SVS) and
#                                       opj_compress (writes the JPEG 2000 tiles of a test SVS); installed
#                                       when root, else their tests skip saying why
# Installed with apt-get when missing and running as root on Debian; otherwise explains and fails.
# TRIPLEX_SKIP_TORCH=1 skips the PyTorch checks on a machine that cannot have them.
set -eu

missing=""
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] || { echo "ensure-test-deps: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file." >&2; exit 1; }
else
  command -v chromium >/dev/null 2>&1 || missing=" chromium"
fi
if [ -z "${TRIPLEX_SKIP_TORCH:-}" ]; then
  if command -v dpkg >/dev/null 2>&1; then
    for p in python3-torch python3-torchvision libopenblas0-pthread python3-anndata python3-h5py python3-nbformat python3-tifffile; do
      dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
  elif ! ${TRIPLEX_TORCH_PYTHON:-python3} -c 'import torch, torchvision, anndata, h5py, nbformat, tifffile' 2>/dev/null; then
    missing="$missing torch torchvision anndata h5py nbformat tifffile"
  fi
fi
optional=""
if command -v dpkg >/dev/null 2>&1; then
  for p in libopenslide0 libopenjp2-tools; do
    dpkg -s "$p" >/dev/null 2>&1 || optional="$optional $p"
  done
  if [ -n "$optional" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-deps: installing$optional"
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $optional ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $optional; }
  elif [ -n "$optional" ]; then
    echo "ensure-test-deps: not installed:$optional (the OpenSlide tests skip; as root this script installs them)" >&2
  fi
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-deps: missing:$missing" >&2
  echo "The ResNet18 parity tests compare against torchvision, and the renderer tests run in Chromium. Install them (Debian: apt-get install$missing)," >&2
  echo "or point TRIPLEX_TORCH_PYTHON at a python with torch and torchvision, or set TRIPLEX_SKIP_TORCH=1 to skip those tests." >&2
  exit 1
fi
echo "ensure-test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # a list of package names
apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing
