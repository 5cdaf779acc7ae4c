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


def _open_set_rates(fn: int, n_res: int, fp: int, n_non: int) -> dict[str, object]:
    """FNIR and FPIR (ISO/IEC 19795-1 open-set identification) with counts and exact
    95 % Clopper-Pearson intervals: ``fn`` of ``n_res`` resident probes missed, ``fp``
    of ``n_non`` non-resident probes matched to someone."""
    from doorpi.vision import metrics

    return {
        "resident_probes": n_res,
        "fnir": fn / n_res if n_res else None,
        "fnir_count": fn,
        "fnir_ci95": metrics.clopper_pearson(fn, n_res),
        "nonresident_probes": n_non,
        "fpir": fp / n_non if n_non else None,
        "fpir_count": fp,
        "fpir_ci95": metrics.clopper_pearson(fp, n_non),
    }


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
    f.add_argument(
        "--conditions",
        default=None,
        help="comma-separated degradations to measure, each against as-taken templates: "
        "gray,dark,backlit,small,blur,jpeg (also rot180,bgr); deterministic",
    )
    f.add_argument(
        "--det-png", type=Path, default=None, help="write DET curves per condition to this PNG"
    )
    f.add_argument(
        "--visit-frames",
        type=int,
        default=1,
        help="see each photo as this many frames of one visit (each cropped 3 px more at the "
        "top-left, then degraded) and decide 1:N as the gate's engine does, fusing them",
    )
    f.add_argument(
        "--flip-probes",
        action="store_true",
        help="(study) embed each probe as the mean of the face and its mirror image; "
        "templates as usual",
    )
    f.add_argument(
        "--gray-templates",
        action="store_true",
        help="(study) open set: enrol a grayscale template of the same photo beside each template",
    )
    f.set_defaults(func=run_faces)
    try:  # ``doorpi eval liveness`` lives in the liveness module
        from doorpi.cli import eval_liveness
    except ImportError:
        pass
    else:
        eval_liveness.add_parser(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _open_set(
    people: list[str],
    ref: list[Any],
    probe: list[Any],
    labels: list[str],
    threshold: float,
    margin: float,
    extra_ref: list[Any] | None = None,
) -> dict[str, Any]:
    """Open-set 1:N with the fixed split; ``ref``/``probe`` are embeddings or None.

    Templates: each enrolled person's first photo with an as-taken embedding
    (and, given ``extra_ref``, that photo's other embedding too, e.g. in gray).
    Probes: every other photo as degraded (None, no face found, counts as a
    miss for a resident and as no alarm for a stranger).
    """
    import numpy as np

    from doorpi.vision import match, metrics

    enrolled = set(people[0::2])
    gallery = match.Gallery()
    template_of: dict[str, int] = {}
    for k, (lab, e) in enumerate(zip(labels, ref, strict=True)):
        if lab in enrolled and lab not in template_of and e is not None:
            gallery.add(lab, e)
            template_of[lab] = k
            if extra_ref is not None and extra_ref[k] is not None:
                gallery.add(lab, extra_ref[k])
    fn = n_res = fp = n_non = 0
    # Fusion proxy: each probe fused with the person's previous probe (engine's rule:
    # the mean if they look alike, cosine >= 0.6, else the newer one alone).
    ffn = fn_res = ffp = fn_non = sfn = 0
    last: dict[str, Any] = {}
    for k, (lab, e) in enumerate(zip(labels, probe, strict=True)):
        if template_of.get(lab) == k:
            continue
        m = gallery.search(e) if e is not None else None
        ok = m is not None and m.accepted(threshold, margin)
        if lab in enrolled:
            n_res += 1
            fn += int(not (ok and m is not None and m.identity == lab))
        else:
            n_non += 1
            fp += int(ok)
        prev, last[lab] = last.get(lab), e
        if prev is None or e is None:
            continue
        f = prev + e if float(prev @ e) >= 0.6 else e
        mf = gallery.search(f / np.linalg.norm(f))
        okf = mf.accepted(threshold, margin)
        if lab in enrolled:
            fn_res += 1
            ffn += int(not (okf and mf.identity == lab))
            sfn += int(not (ok and m is not None and m.identity == lab))
        else:
            fn_non += 1
            ffp += int(okf)
    highest = [gallery.search(e).score for lab, e in zip(labels, probe, strict=True)
               if lab not in enrolled and e is not None]  # fmt: skip
    return {
        "split": "sorted people, even positions enrolled with their first usable photo",
        "gallery_size": len(gallery),
        "stranger_best_max": max(highest, default=None),
        "threshold": threshold,
        "margin": margin,
        **_open_set_rates(fn, n_res, fp, n_non),
        "fused2": {
            "what": "each probe fused with the same person's previous probe (two photos "
            "standing in for two frames)",
            "resident_probes": fn_res,
            "fnir": ffn / fn_res if fn_res else None,
            "fnir_ci95": metrics.clopper_pearson(ffn, fn_res),
            "fnir_single_same_probes": sfn / fn_res if fn_res else None,
            "nonresident_probes": fn_non,
            "fpir": ffp / fn_non if fn_non else None,
            "fpir_ci95": metrics.clopper_pearson(ffp, fn_non),
        },
    }


def _visit(
    people: list[str],
    ref: list[Any],
    visits: list[list[tuple[Any, str]]],
    labels: list[str],
    threshold: float,
    margin: float,
) -> dict[str, Any]:
    """Open set as the gate decides: each probe photo seen as several frames of one
    visit, run through the gate's own engine (``PipelineFaceEngine``: fusion of
    its good frames, 1:N with the margin, a decision after every frame).

    ``visits[k]`` holds (embedding or None, quality reason) per frame of photo k.
    "all frames" counts every frame with a face, as the other open-set figures
    do; "gated" only the frames the quality gates let through, as the door does
    (a refused frame is a prompt, so a visit with none through is a miss).
    """
    from doorpi.vision import quality as q
    from doorpi.vision.engine import PipelineFaceEngine
    from doorpi.vision.match import Gallery
    from doorpi.vision.pipeline import FaceResult

    enrolled = set(people[0::2])
    number = {p: i for i, p in enumerate(people)}  # the engine's identities are ints
    gallery = Gallery()
    template_of: dict[str, int] = {}
    for k, (lab, e) in enumerate(zip(labels, ref, strict=True)):
        if lab in enrolled and lab not in template_of and e is not None:
            gallery.add(str(number[lab]), e)
            template_of[lab] = k
    engine = PipelineFaceEngine(
        None, gallery, threshold=threshold, margin=margin, max_nonmatching_frames=len(visits[0])
    )
    out: dict[str, Any] = {"frames_per_visit": len(visits[0])}
    for gated in (False, True):
        fn = n_res = fp = n_non = 0
        for k, (lab, frames) in enumerate(zip(labels, visits, strict=True)):
            if template_of.get(lab) == k:
                continue
            engine.begin(None)
            who = None
            for e, reason in frames:
                if e is None or (gated and reason != q.OK):
                    continue
                o = engine.decide(FaceResult(q.OK, embedding=e))
                if o.state == "matched":
                    who = o.resident_id
                    break
            engine.end()
            if lab in enrolled:
                n_res += 1
                fn += int(who != number[lab])
            else:
                n_non += 1
                fp += int(who is not None)
        out["gated" if gated else "all_frames"] = _open_set_rates(fn, n_res, fp, n_non)
    return out


def _condition_pairs(ref: list[Any], probe: list[Any], labels: list[str]) -> tuple[Any, Any, Any]:
    """Scores of every unordered pair i < j: degraded photo i against as-taken photo j.

    Pairs whose reference j has no as-taken embedding are left out (nobody
    would be enrolled from it); a probe with no face scores -1 (a rejection).
    Returns (genuine, impostor, genuine_probe_index).
    """
    import numpy as np

    n = len(labels)
    dim = next(e.shape[-1] for e in ref if e is not None)
    r = np.zeros((n, dim), np.float32)
    p = np.zeros((n, dim), np.float32)
    has_r = np.array([e is not None for e in ref])
    has_p = np.array([e is not None for e in probe])
    for k in range(n):
        if has_r[k]:
            r[k] = ref[k] / np.linalg.norm(ref[k])
        if has_p[k]:
            p[k] = probe[k] / np.linalg.norm(probe[k])
    s = p @ r.T
    s[~has_p, :] = -1.0
    iu, ju = np.triu_indices(n, 1)
    keep = has_r[ju]
    iu, ju = iu[keep], ju[keep]
    lab = np.asarray(labels)
    same = lab[iu] == lab[ju]
    v = s[iu, ju]
    return v[same], v[~same], iu[same]


def _condition_report(
    name: str,
    people: list[str],
    labels: list[str],
    ref: list[Any],
    probe: list[Any],
    reasons: list[str],
    threshold: float,
    margin: float,
    extra_ref: list[Any] | None = None,
    visits: list[list[tuple[Any, str]]] | None = None,
) -> tuple[dict[str, Any], Any, Any]:
    import numpy as np

    from doorpi.vision import metrics

    gen, imp, gen_probe = _condition_pairs(ref, probe, labels)
    t4 = metrics.threshold_at_far(imp, 1e-4)
    tar_n = int((gen >= t4).sum())
    shipped = metrics.rates_at(gen, imp, threshold)
    # The gate as it runs: a probe its quality check refuses is a rejection too.
    refused = np.array([r != "ok" for r in reasons])
    gated = gen.copy()
    gated[refused[gen_probe]] = -1.0
    _, imp_passing, _ = _condition_pairs(
        ref, [e if r == "ok" else None for e, r in zip(probe, reasons, strict=True)], labels
    )
    fr_gated = int((gated < threshold).sum())
    refusals: dict[str, int] = {}
    for r in reasons:
        if r != "ok":
            refusals[r] = refusals.get(r, 0) + 1
    rep = {
        "condition": name,
        "photos": len(labels),
        "no_face": sum(1 for e in probe if e is None),
        "quality_refused": sum(refusals.values()),
        "quality_refused_by_reason": dict(sorted(refusals.items())),
        "genuine_pairs": len(gen),
        "impostor_pairs": len(imp),
        "impostor_max": float(imp.max()),
        "impostor_max_passing_quality": float(imp_passing.max()),
        "false_accepts_passing_quality": int((imp_passing >= threshold).sum()),
        "genuine_min": float(gen.min()),
        "tar_at_far_1e-4": tar_n / len(gen),
        "tar_at_far_1e-4_count": tar_n,
        "tar_at_far_1e-4_ci95": metrics.clopper_pearson(tar_n, len(gen)),
        "threshold_at_far_1e-4": t4,
        "eer": metrics.eer(gen, imp)[0],
        "shipped": shipped,
        "frr_with_quality_gate": fr_gated / len(gen),
        "frr_with_quality_gate_count": fr_gated,
        "frr_with_quality_gate_ci95": metrics.clopper_pearson(fr_gated, len(gen)),
        "open_set": _open_set(people, ref, probe, labels, threshold, margin, extra_ref),
    }
    if visits is not None:
        rep["open_set"]["visit"] = _visit(people, ref, visits, labels, threshold, margin)
    return rep, gen, imp


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the pipeline over the folder under each condition and compute every figure."""
    import numpy as np

    from doorpi.hardware.camera import FolderSource, ImageFileError, load_rgb
    from doorpi.vision import degrade, match, metrics
    from doorpi.vision.models import load_models
    from doorpi.vision.pipeline import FacePipeline
    from doorpi.vision.runtime import TFLiteModel

    conditions = degrade.parse_conditions(getattr(args, "conditions", None) or "as_taken")
    models = load_models(args.models, args.threads)
    if args.sface:
        models.embedder = TFLiteModel(args.sface, args.threads)
    pipe = FacePipeline(models, refine=not args.no_refine)
    probe_pipe = pipe
    if getattr(args, "flip_probes", False):
        probe_pipe = FacePipeline(models, refine=not args.no_refine)
        probe_pipe.embedder = _MirrorMean(pipe.embedder)  # type: ignore[assignment]
    n_frames = max(1, int(getattr(args, "visit_frames", 1) or 1))
    threshold = match.SHIPPED_THRESHOLD if args.threshold is None else args.threshold
    margin = match.SHIPPED_MARGIN if args.margin is None else args.margin

    people = sorted(d.name for d in args.dir.iterdir() if d.is_dir())
    labels: list[str] = []
    skipped: list[str] = []
    embs: dict[str, list[Any]] = {c: [] for c in conditions}
    reasons: dict[str, list[str]] = {c: [] for c in conditions}
    visits: dict[str, list[list[tuple[Any, str]]]] = {c: [] for c in conditions}
    ref: list[Any] = []  # as taken, the templates' embedding (probes may differ: --flip-probes)
    gray_ref: list[Any] = []
    stage_ms: dict[str, list[float]] = {}
    for person in people:
        for path in FolderSource(args.dir / person, recursive=False).paths():
            try:
                rgb = load_rgb(path, args.max_side)
            except ImageFileError as exc:  # counted, named, and the run goes on
                print(f"doorpi eval: skipped {exc}", file=sys.stderr)
                skipped.append(f"{person}/{path.name}")
                continue
            labels.append(person)
            for cond in conditions:
                res = probe_pipe.embed_any(degrade.CONDITIONS[cond](rgb))
                if cond == "as_taken":
                    for k, v in res.timings_ms.items():
                        stage_ms.setdefault(k, []).append(v)
                embs[cond].append(res.embedding)
                reasons[cond].append(res.quality.reason if res.quality else res.reason)
                frames = [(res.embedding, reasons[cond][-1])]
                for k in range(1, n_frames):  # more frames of the same visit
                    o = _VISIT_SHIFT_PX * k
                    moved = np.ascontiguousarray(rgb[o:, o:])
                    r = probe_pipe.embed_any(degrade.CONDITIONS[cond](moved))
                    frames.append((r.embedding, r.quality.reason if r.quality else r.reason))
                visits[cond].append(frames)
            if probe_pipe is pipe:
                ref.append(embs["as_taken"][-1])
            else:
                ref.append(pipe.embed_any(rgb).embedding)
            if getattr(args, "gray_templates", False):
                gray_ref.append(pipe.embed_any(degrade.gray(rgb)).embedding)
    usable = [lab for lab, e in zip(labels, ref, strict=True) if e is not None]
    if len(set(usable)) < 2 or all(usable.count(x) < 2 for x in set(usable)):
        raise EvalDataError(
            f"{args.dir}: {len(usable)} usable faces in {len(labels) + len(skipped)} photos of "
            f"{len(people)} people; measuring needs faces of at least 2 people, one of them "
            "with 2 or more photos"
        )
    # The model as such (as taken, all pairs): the figures the models README quotes.
    x = np.stack([e for e in ref if e is not None])
    gen, imp = metrics.pair_scores(x, usable)
    eer, eer_thr = metrics.eer(gen, imp)
    tar = {}
    for far in (1e-3, 1e-4):
        t = metrics.threshold_at_far(imp, far)
        tar[f"{far:.0e}"] = {"tar": float((gen >= t).mean()), "threshold": t}
    gate_rejects: dict[str, int] = {}
    for r, e in zip(reasons["as_taken"], ref, strict=True):
        if e is not None and r != "ok":
            gate_rejects[r] = gate_rejects.get(r, 0) + 1
    failed = [f"{lab}/{k}" for k, (lab, e) in enumerate(zip(labels, ref, strict=True)) if e is None]
    report: dict[str, Any] = {
        "dir": str(args.dir),
        "sface": str(models.embedder.path),
        "alignment": "blazeface-4pt" if args.no_refine else "facemesh-5pt",
        "probes": "mirror mean (--flip-probes)" if probe_pipe is not pipe else "as embedded",
        "gray_templates": bool(gray_ref),
        "people": len(people),
        "images": len(labels) + len(skipped),
        "skipped_files": skipped,
        "detection_failures": len(failed) + len(skipped),
        "failed_images": skipped + failed,
        "quality_gate_rejects": gate_rejects,
        "genuine_pairs": len(gen),
        "impostor_pairs": len(imp),
        "genuine_min": float(gen.min()),
        "impostor_max": float(imp.max()),
        "eer": eer,
        "eer_threshold": eer_thr,
        "tar_at_far": tar,
        "shipped": metrics.rates_at(gen, imp, threshold),
        "open_set": _open_set(people, ref, embs["as_taken"], labels, threshold, margin),
        "stage_ms_median": {k: float(np.median(v)) for k, v in stage_ms.items()},
    }
    if len(conditions) > 1 or getattr(args, "conditions", None):
        report["intervals"] = "95 % Clopper-Pearson (exact binomial; pairs are not independent)"
        report["pairs"] = "each unordered pair once: the earlier photo degraded, the later as taken"
        table, curves = [], {}
        for cond in conditions:
            rep, g, i = _condition_report(
                cond, people, labels, ref, embs[cond], reasons[cond], threshold, margin,
                gray_ref or None, visits[cond] if n_frames > 1 else None,
            )  # fmt: skip
            table.append(rep)
            curves[cond] = (g, i)
        report["conditions"] = table
        if getattr(args, "det_png", None):
            from doorpi.vision.detplot import write_det_png

            write_det_png(curves, args.det_png, threshold)
            report["det_png"] = str(args.det_png)
    return report


#: --visit-frames: each further frame of a visit is the photo cropped by this many more
#: pixels at the top-left: another detection, alignment and JPEG block grid (8 px), the
#: small differences between a gate's frames; a stand-in, not real video.
_VISIT_SHIFT_PX = 3


class _MirrorMean:
    """(--flip-probes) The unit mean of the embeddings of a crop and its mirror image."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def embed(self, crop: Any) -> Any:
        import numpy as np

        v = self.inner.embed(crop) + self.inner.embed(np.ascontiguousarray(crop[:, ::-1]))
        return v / max(float(np.linalg.norm(v)), 1e-12)


class EvalDataError(ValueError):
    """A data folder with too little in it to measure anything; one line."""


def _pct(v: float | None, width: int) -> str:
    return f"{v:{width}.2%}" if v is not None else "-".rjust(width)


def format_conditions(report: dict[str, Any]) -> str:
    """The condition table as aligned text, one row per condition."""
    rows = [
        f"{'condition':10s} {'TAR@FAR1e-4':>17s} {'FRR@thr':>16s} {'FA@thr':>7s} "
        f"{'gated FRR':>10s} {'FNIR':>15s} {'1 / fused2':>13s} {'FPIR':>9s} {'max imp':>7s}  refused"
    ]
    for c in report["conditions"]:
        s, o = c["shipped"], c["open_set"]
        refused = ", ".join(f"{k} {v}" for k, v in c["quality_refused_by_reason"].items())
        rows.append(
            f"{c['condition']:10s} {c['tar_at_far_1e-4']:7.2%} (>={c['tar_at_far_1e-4_ci95'][0]:.1%})"
            f" {s['frr']:6.2%} (<{s['frr_ci95'][1]:.1%}) {s['far_count']:7d}"
            f" {c['frr_with_quality_gate']:10.2%} {_pct(o['fnir'], 6)} (<{o['fnir_ci95'][1]:.1%})"
            f" {o['fused2']['fnir_single_same_probes'] or 0:5.1%} / {o['fused2']['fnir'] or 0:5.1%}"
            f" {o['fpir_count']:3d}/{o['nonresident_probes']:<5d} {c['impostor_max']:7.3f}"
            f"  {c['quality_refused']}/{c['photos']}" + (f" ({refused})" if refused else "")
        )
        v = o.get("visit")
        if v:
            a, g = v["all_frames"], v["gated"]
            rows[-1] += (
                f"  | visit of {v['frames_per_visit']}: FNIR {_pct(a['fnir'], 5)}"
                f" (gated {_pct(g['fnir'], 5)}), FPIR {a['fpir_count']}/{a['nonresident_probes']}"
            )
    return "\n".join(rows)


def run_faces(args: argparse.Namespace) -> int:
    from doorpi.cli import CliError
    from doorpi.vision.runtime import ModelError

    if not args.dir.is_dir():
        raise CliError(f"{args.dir}: not a folder")
    t0 = time.monotonic()
    try:
        report = evaluate(args)
    except (ModelError, EvalDataError, ValueError, RuntimeError) as exc:
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
        if report["skipped_files"]:
            print("skipped (cannot decode): " + ", ".join(report["skipped_files"]))
        if "conditions" in report:
            print(format_conditions(report))
            print(f"intervals: {report['intervals']}")
    return 0
