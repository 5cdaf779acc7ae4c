"""``doorpi eval faces DIR``: measured error rates of the on-device face pipeline.

DIR holds one folder per person (DIR/<person>/<image>). Every photo runs
through the same detector, alignment and SFace model as the gate; scores of
all pairs give EER, TAR at fixed FAR and FAR/FRR at the shipped threshold
with 95 % Clopper-Pearson intervals. Open-set 1:N uses a fixed split:
people in sorted order, even positions enrolled (their first usable photo is
the template, the rest are probes), odd positions never enrolled.
Embeddings stay in memory; only numbers are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="measure accuracy on labelled data")
    sub = p.add_subparsers(dest="eval_command", metavar="WHAT")
    f = sub.add_parser("faces", help="face verification and 1:N error rates on DIR/<person>/*")
    f.add_argument("dir", type=Path, help="folder with one sub-folder of photos per person")
    f.add_argument("--json", action="store_true", help="print JSON (default: a short summary)")
    f.add_argument("--models", help="models folder (default: $DOORPI_MODELS_DIR, models/build)")
    f.add_argument("--sface", help="use this SFace .tflite instead (compare quantizations)")
    f.add_argument("--threads", type=int, default=None)
    f.add_argument(
        "--no-refine",
        action="store_true",
        help="align on BlazeFace's 4 points instead of the face mesh's 5",
    )
    f.add_argument("--threshold", type=float, default=None, help="override the shipped threshold")
    f.add_argument("--margin", type=float, default=None, help="override the 1:N margin")
    f.add_argument("--max-side", type=int, default=2048, help="decode photos at most this large")
    f.set_defaults(func=run_faces)
    try:  # ``doorpi eval liveness`` lives in the liveness module
        from doorpi.cli import eval_liveness
    except ImportError:
        pass
    else:
        eval_liveness.add_parser(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the pipeline over the folder and compute every figure."""
    import numpy as np

    from doorpi.hardware.camera import FolderSource, ImageFileError, load_rgb
    from doorpi.vision import match, metrics
    from doorpi.vision.models import load_models
    from doorpi.vision.pipeline import FacePipeline
    from doorpi.vision.runtime import TFLiteModel

    models = load_models(args.models, args.threads)
    if args.sface:
        models.embedder = TFLiteModel(args.sface, args.threads)
    pipe = FacePipeline(models, refine=not args.no_refine)
    threshold = match.SHIPPED_THRESHOLD if args.threshold is None else args.threshold
    margin = match.SHIPPED_MARGIN if args.margin is None else args.margin

    people = sorted(d.name for d in args.dir.iterdir() if d.is_dir())
    labels: list[str] = []
    files: list[str] = []
    embs: list[np.ndarray] = []
    failures: list[str] = []
    gate_rejects: dict[str, int] = {}
    stage_ms: dict[str, list[float]] = {}
    for person in people:
        for path in FolderSource(args.dir / person, recursive=False).paths():
            try:
                rgb = load_rgb(path, args.max_side)
            except ImageFileError as exc:  # counted, named, and the run goes on
                print(f"doorpi eval: skipped {exc}", file=sys.stderr)
                failures.append(f"{person}/{path.name}")
                continue
            res = pipe.embed_any(rgb)
            for k, v in res.timings_ms.items():
                stage_ms.setdefault(k, []).append(v)
            if res.embedding is None:
                failures.append(f"{person}/{path.name}")
                continue
            if res.quality is not None and not res.quality.ok:
                gate_rejects[res.quality.reason] = gate_rejects.get(res.quality.reason, 0) + 1
            labels.append(person)
            files.append(path.name)
            embs.append(res.embedding)
    usable = {lab for lab in labels if labels.count(lab) >= 2}
    if len(set(labels)) < 2 or not usable:
        raise EvalDataError(
            f"{args.dir}: {len(embs)} usable faces in {len(labels) + len(failures)} photos of "
            f"{len(people)} people; measuring needs faces of at least 2 people, one of them "
            "with 2 or more photos"
        )
    x = np.stack(embs)
    gen, imp = metrics.pair_scores(x, labels)
    eer, eer_thr = metrics.eer(gen, imp)
    tar = {}
    for far in (1e-3, 1e-4):
        t = metrics.threshold_at_far(imp, far)
        tar[f"{far:.0e}"] = {"tar": float((gen >= t).mean()), "threshold": t}

    # Open-set 1:N with the fixed split.
    enrolled = set(people[0::2])
    gallery = match.Gallery()
    probes: list[tuple[str, np.ndarray]] = []
    seen: set[str] = set()
    for lab, e in zip(labels, embs, strict=True):
        if lab in enrolled and lab not in seen:
            gallery.add(lab, e)
            seen.add(lab)
        else:
            probes.append((lab, e))
    fn = n_res = fp = n_non = 0
    for lab, e in probes:
        m = gallery.search(e)
        ok = m.accepted(threshold, margin)
        if lab in enrolled:
            n_res += 1
            fn += int(not (ok and m.identity == lab))
        else:
            n_non += 1
            fp += int(ok)
    return {
        "dir": str(args.dir),
        "sface": str(models.embedder.path),
        "alignment": "blazeface-4pt" if args.no_refine else "facemesh-5pt",
        "people": len(people),
        "images": len(labels) + len(failures),
        "detection_failures": len(failures),
        "failed_images": failures,
        "quality_gate_rejects": gate_rejects,
        "genuine_pairs": len(gen),
        "impostor_pairs": len(imp),
        "genuine_min": float(gen.min()),
        "impostor_max": float(imp.max()),
        "eer": eer,
        "eer_threshold": eer_thr,
        "tar_at_far": tar,
        "shipped": metrics.rates_at(gen, imp, threshold),
        "open_set": {
            "split": "sorted people, even positions enrolled with their first usable photo",
            "gallery_size": len(gallery),
            "threshold": threshold,
            "margin": margin,
            "resident_probes": n_res,
            "fnir": fn / n_res if n_res else None,
            "fnir_ci95": metrics.clopper_pearson(fn, n_res),
            "nonresident_probes": n_non,
            "fpir": fp / n_non if n_non else None,
            "fpir_ci95": metrics.clopper_pearson(fp, n_non),
        },
        "stage_ms_median": {k: float(np.median(v)) for k, v in stage_ms.items()},
    }


class EvalDataError(ValueError):
    """A data folder with too little in it to measure anything; one line."""


def run_faces(args: argparse.Namespace) -> int:
    from doorpi.cli import CliError
    from doorpi.vision.runtime import ModelError

    if not args.dir.is_dir():
        raise CliError(f"{args.dir}: not a folder")
    t0 = time.monotonic()
    try:
        report = evaluate(args)
    except (ModelError, EvalDataError) as exc:
        raise CliError(str(exc)) from None
    report["seconds"] = round(time.monotonic() - t0, 1)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        s = report["shipped"]
        print(
            f"{report['images']} images, {report['people']} people, "
            f"{report['detection_failures']} detection failures\n"
            f"EER {report['eer']:.3%}  TAR@FAR1e-3 {report['tar_at_far']['1e-03']['tar']:.2%}  "
            f"TAR@FAR1e-4 {report['tar_at_far']['1e-04']['tar']:.2%}\n"
            f"threshold {s['threshold']:.3f}: FAR {s['far']:.2e} (95% CI up to "
            f"{s['far_ci95'][1]:.1e}), FRR {s['frr']:.2%} (95% CI "
            f"{s['frr_ci95'][0]:.1%} to {s['frr_ci95'][1]:.1%})\n"
            f"1:N FPIR {report['open_set']['fpir']:.2%}  FNIR {report['open_set']['fnir']:.2%}"
        )
    return 0
