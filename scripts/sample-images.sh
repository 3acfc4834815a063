#!/usr/bin/env bash
# Real photographs for the image examples and tests, from the scikit-image wheel on PyPI
# (its skimage/data test images: NASA's astronaut portrait, a cat, a cup of coffee, a rocket
# launch, … — public domain or CC0, see scikit-image's data/README). Nothing is committed.
# Prints the directory.
#   MEDIAFLOW_SAMPLES  where samples live [default: ~/.local/share/mediaflow/samples]
set -euo pipefail
dir=${MEDIAFLOW_SAMPLES:-$HOME/.local/share/mediaflow/samples}/images
files=(astronaut.png chelsea.png coffee.png camera.png rocket.jpg logo.png motorcycle_left.png retina.jpg)
if [ ! -f "$dir/.complete" ]; then
  mkdir -p "$dir"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download -q --no-deps --only-binary :all: --disable-pip-version-check \
    --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$work" scikit-image==0.26.0 >&2
  python3 - "$work"/*.whl "$dir" "${files[@]}" <<'PY'
import sys, zipfile, os
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with open(os.path.join(out, n), "wb") as f:
            f.write(z.read("skimage/data/" + n))
PY
  touch "$dir/.complete"
fi
echo "$dir"
