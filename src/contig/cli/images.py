"""``contig images``: validate the image manifest, crop the fundus field, resize, write a uint8 cache."""

from __future__ import annotations

import argparse
import logging
import math

from contig.cli.argtypes import float_in, int_at_least, positive_int
from contig.images.cache import CONVERSIONS, DEFAULTS, MIN_SIZE, build_image_cache
from contig.images.manifest import ON_ERROR

log = logging.getLogger("contig.images.cache")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True,
                        help="TSV with columns IID, path[, eye] (paths relative to the manifest's "
                             "folder, or absolute; eye = left/right)")
    parser.add_argument("--out", required=True,
                        help="output prefix: OUT.npy (n, S, S, 3) uint8, OUT.index.tsv, "
                             "OUT.excluded.tsv, OUT.qc.tsv, OUT.preview.png")
    parser.add_argument("--size", required=True, type=int_at_least(MIN_SIZE),
                        help=f"output side S in pixels (at least {MIN_SIZE})")
    parser.add_argument("--on-error", choices=ON_ERROR, default=DEFAULTS.on_error,
                        help="bad rows (missing/empty/corrupt files, duplicates, paths outside the "
                             "manifest's folder, unconverted grayscale/16-bit images): fail on the "
                             f"first or drop them and list them in OUT.excluded.tsv (default "
                             f"{DEFAULTS.on_error})")
    parser.add_argument("--keep", default=None, metavar="FILE",
                        help="keep only these IIDs (a .fam, or a TSV with an IID column); the others "
                             "are listed in OUT.excluded.tsv")
    parser.add_argument("--allow-outside-root", action="store_true",
                        help="accept image paths outside the manifest's folder (as written, or "
                             "through a symbolic link)")
    parser.add_argument("--brightness-z", type=float_in(0.0, math.inf), default=DEFAULTS.brightness_z,
                        help="drop images whose mean field brightness is more than this many robust "
                             f"z-scores (median/MAD) from the median (default {DEFAULTS.brightness_z:g}; "
                             "0 or inf: keep all)")
    parser.add_argument("--convert", nargs="*", choices=CONVERSIONS, default=[],
                        help="convert instead of treating as bad: 16-bit images to 8-bit (high byte), "
                             "grayscale to RGB (default: neither)")
    parser.add_argument("--workers", type=positive_int, default=DEFAULTS.workers,
                        help=f"decoding processes (default {DEFAULTS.workers})")


def run(args: argparse.Namespace) -> int:
    result = build_image_cache(args.manifest, args.out, args.size, on_error=args.on_error,
                               keep=args.keep, allow_outside_root=args.allow_outside_root,
                               brightness_z=args.brightness_z, convert=args.convert,
                               workers=args.workers)
    for check, removed, changed, remaining in result.qc.iter_rows():
        log.info("%-45s removed %6d  changed %6d  remaining %6d", check, removed, changed, remaining)
    log.info("wrote %d images of %dx%d px (%.0f images/s decoding, %.1f s in all): %s",
             result.index.height, args.size, args.size, result.images_per_second, result.seconds,
             ", ".join(str(p) for p in result.paths.values()))
    return 0
