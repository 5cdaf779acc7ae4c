"""Mutation runs for the privacy checklist (law notes, 23 requirements; issue #14).

Each `Mutation` is the most plausible way to break one requirement, written as
search/replace pairs against the source. ``run`` copies the working tree to a
temporary folder (never the live tree), applies one mutation there, runs that
requirement's tests from ``tests/privacy/checklist.toml`` against the copy
(``PYTHONPATH`` puts the copy's ``src`` first, so subprocesses of the
``doorpi`` CLI see the mutated code too) and records which tests failed in
``tests/privacy/mutation-results.json``; then it writes
``docs/privacy-checklist.md`` from the checklist and the results.

    .venv/bin/python tools/mutations/privacy.py run            # every mutation
    .venv/bin/python tools/mutations/privacy.py run --only ID  # one (repeatable)
    .venv/bin/python tools/mutations/privacy.py render         # the markdown only
    .venv/bin/python tools/mutations/privacy.py list

A baseline run (no mutation) of every checklist test comes first: a test
that fails unmutated proves nothing, and the run says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKLIST = Path("tests/privacy/checklist.toml")
RESULTS = Path("tests/privacy/mutation-results.json")
MARKDOWN = Path("docs/privacy-checklist.md")
BASELINE = "baseline"
#: Where the copies go: not /tmp, /var/tmp or /dev/shm, which the no-disk tests
#: replace with fresh tmpfs mounts (the copy's source would vanish under them).
TMP_ROOT = os.environ.get("DOORPI_MUTATION_TMP", str(Path.home() / ".cache/doorpi/mutations"))


class MutationError(Exception):
    """A mutation that no longer applies (its search text is gone or ambiguous)."""


@dataclass(frozen=True)
class Mutation:
    """One plausible break: ``pairs`` of (search, replace) applied to ``path``."""

    id: str
    requirement: int
    what: str
    path: str
    pairs: tuple[tuple[str, ...], ...]  # (search, replace) or (path, search, replace)


M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    M("face-only-rule-accepted", 1, "the face-only rule checks (core policy and device parity) are skipped",
      "src/doorpi/core/policy.py",
      (('if not any("face" not in c for c in rule):', "if False:"),
       ("src/doorpi/core/parity.py", "    if not face_free:\n        return \"face is the only way in",
        "    if False:\n        return \"face is the only way in"))),
    M("parity-ignores-devices", 1, "parity counts card/PIN combinations the fitted devices cannot read",
      "src/doorpi/core/parity.py",
      (("if any(c <= devices.factors for c in face_free):", "if face_free:"),)),
    M("no-pin-resident-asked-face", 1, "a resident with no face-free factor is asked for face anyway",
      "src/doorpi/core/parity.py",
      (("if may_ask_face(rule, holds, devices) and not has_face_free_way(rule, free, devices):",
        "if False:"),)),
    M("refusal-clears-schedule", 2, "refusing face also clears the resident's schedule",
      "src/doorpi/privacy/enrolment.py",
      (("self.storage.residents.update(resident_id, self.clock(), face_refused=True)",
        "self.storage.residents.update(resident_id, self.clock(), face_refused=True, schedule=None)"),)),
    M("offer-after-refusal", 3, "the gate offers face again after a refusal",
      "src/doorpi/privacy/enrolment.py",
      (("if r is None or r.face_refused or not r.active or r.minor:",
        "if r is None or not r.active or r.minor:"),)),
    M("face-failure-counts-to-pin-lockout", 4, "a face failure counts towards the resident's card/PIN lockout",
      "src/doorpi/gate.py",
      (('        started = self.face_lockout.failure("face", mono)\n',
        '        started = self.face_lockout.failure("face", mono)\n'
        "        if self.attempt is not None and self.attempt.resident is not None:\n"
        '            self.lockout.failure(f"resident:{self.attempt.resident.id}", mono)\n'),)),
    M("face-failure-no-fallback", 4, "after a face failure the gate does not fall back (it keeps waiting for face)",
      "src/doorpi/gate.py",
      (("            *self._fallback_from_face(),\n", ""),)),
    M("face-uses-card-pin-lockout", 4, "face failures go to the card/PIN lockout store instead of face's own pause",
      "src/doorpi/gate.py",
      (('        started = self.face_lockout.failure("face", mono)\n',
        '        started = self.lockout.failure("face", mono)\n'),)),
    M("face-pause-10s", 5, "face pauses 10 s instead of 30 s after 5 failures",
      "src/doorpi/gate.py", (("FACE_PAUSE_SECONDS = 30.0", "FACE_PAUSE_SECONDS = 10.0"),)),
    M("consent-section-list-short", 6, "the consent form no longer needs its withdrawal section",
      "src/doorpi/privacy/notices.py",
      (('    "controller",\n    "withdraw",\n    "why_face",\n', '    "controller",\n    "why_face",\n'),)),
    M("consent-text-without-withdraw", 6, "the shipped English consent form loses its withdrawal section",
      "src/doorpi/privacy/notices/en/consent.md",
      (("## How to withdraw {#withdraw}\n", "## How to withdraw\n"),)),
    M("consent-trigger-dropped", 6, "the database stores a template without a live consent",
      "src/doorpi/store/db.py",
      (("WHEN NOT EXISTS (SELECT 1 FROM face_consents c WHERE c.id = NEW.consent_id",
        "WHEN 0 AND NOT EXISTS (SELECT 1 FROM face_consents c WHERE c.id = NEW.consent_id"),)),
    M("operator-terms-accepted", 7, "operator fields are not checked for terms (promises)",
      "src/doorpi/privacy/notices.py",
      (("    for pattern, what in PROMISE_TERMS:\n        m = re.search(pattern, text, re.I)\n",
        "    for pattern, what in ():\n        m = re.search(pattern, text, re.I)\n"),)),
    M("consent-terms-unchecked", 7, "consent texts are not checked for forbidden grants",
      "src/doorpi/privacy/notices.py",
      (("    for pattern, what in FORBIDDEN_TERMS:\n        m = re.search(pattern, text, re.I)\n"
        "        if m:\n            raise NoticeError(f\"the consent text grants",
        "    for pattern, what in ():\n        m = re.search(pattern, text, re.I)\n"
        "        if m:\n            raise NoticeError(f\"the consent text grants"),)),
    M("operator-facts-unchecked", 7, "operator fields go into the forms verbatim (no fact check at all)",
      "src/doorpi/privacy/notices.py",
      (("    kind, longest = FACT_FIELDS[field]\n    text = str(value).strip()\n",
        "    kind, longest = FACT_FIELDS[field]\n    text = str(value).strip()\n    return text\n"),)),
    M("minor-consents-at-gate", 8, "a minor may consent and enrol alone at the gate",
      "src/doorpi/privacy/consent.py",
      (('        if minor and channel != "admin_present":\n', "        if False:\n"),)),
    M("minor-enrols-at-gate", 8, "enrolment does not check the minor flag",
      "src/doorpi/privacy/enrolment.py",
      (('        if resident.minor and channel != "admin_present":', "        if False:"),)),
    M("minor-without-guardian", 8, "a minor's consent is recorded without a guardian",
      "src/doorpi/privacy/consent.py",
      (("        if minor and not (guardian and guardian.strip()):\n", "        if False:\n"),)),
    M("sign-without-alternatives", 9, "the English sign loses its 'no face needed' section",
      "src/doorpi/privacy/notices/en/sign.md",
      (("## You never need your face to get in {#alternatives}\n", "## You never need your face to get in\n"),)),
    M("withdrawal-keeps-template", 10, "withdrawing consent no longer deletes the template (facade and database trigger)",
      "src/doorpi/store/db.py",
      (("BEGIN DELETE FROM face_templates WHERE consent_id = NEW.id; END;",
        "BEGIN SELECT 1; END;"),
       ("src/doorpi/privacy/enrolment.py",
        'had_template = self.vault.delete(resident.pseudonym, "withdrawn", by=by, purge=False)',
        "had_template = False")),),
    M("delete-without-rotation", 11, "deletion no longer rotates the vault key",
      "src/doorpi/privacy/vault.py",
      (("        self._rotate(revoke=False)\n        self._vacuum()\n", "        self._vacuum()\n"),)),
    M("delete-without-vacuum", 11, "deleted pages and the WAL are not overwritten",
      "src/doorpi/privacy/vault.py",
      (('        conn.execute("PRAGMA secure_delete=ON")\n        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")\n'
        '        conn.execute("VACUUM")\n',
        '        conn.execute("PRAGMA secure_delete=OFF")\n'),
       ("src/doorpi/store/db.py", 'conn.execute("PRAGMA secure_delete=ON")',
        'conn.execute("PRAGMA secure_delete=OFF")')),),
    M("retention-sweep-skipped", 12, "the retention sweep deletes nothing",
      "src/doorpi/privacy/retention.py", (("        due = self.due()\n", "        due = []\n"),)),
    M("retention-end-ignored", 12, "a template outlives the consented retention period",
      "src/doorpi/privacy/retention.py",
      (("            elif expires <= now or retention_end is None or retention_end <= now:",
        "            elif False:"),)),
    M("sweep-keeps-disabled", 12, "the sweep keeps the template of a disabled (moved-out) resident",
      "src/doorpi/privacy/retention.py",
      (("            elif not active:  # disabled", "            elif False:  # disabled"),)),
    M("cli-disable-keeps-template", 12, "`doorpi resident disable` keeps the template until a sweep",
      "src/doorpi/cli/resident.py",
      (("if r is not None and vault.delete(", "if False and vault.delete("),)),
    M("enrol-writes-embedding-to-tmp", 13, "enrolment leaves the embedding in a temp file",
      "src/doorpi/privacy/enrolment.py",
      (("        tid = self.vault.store(resident.pseudonym, embedding, rec.id, expires)\n",
        "        np.save(f\"/tmp/doorpi-enrol-{resident_id}.npy\", embedding)\n"
        "        tid = self.vault.store(resident.pseudonym, embedding, rec.id, expires)\n"),)),
    M("pseudonym-from-name", 14, "a resident's pseudonym is derived from the name",
      "src/doorpi/store/residents.py",
      (("[_random.token_hex(16), name, unit,",
        "[__import__('hashlib').sha256(name.encode()).hexdigest()[:32], name, unit,"),)),
    M("imported-pseudonym-from-details", 14, "a roster import derives the pseudonym from the resident's details",
      "src/doorpi/sync/importer.py",
      (("[_random.token_hex(16), *fields, plan.pin_hashes.get(r.key), now, now],",
        "[__import__('hashlib').sha256(repr(fields).encode()).hexdigest()[:32], *fields, "
        "plan.pin_hashes.get(r.key), now, now],"),)),
    M("tamper-not-logged", 15, "a template failing integrity is dropped without a record",
      "src/doorpi/privacy/vault.py",
      (("            if not log:\n                return None\n", "            return None\n"),)),
    M("template-stored-in-clear", 15, "the template is stored without encryption",
      "src/doorpi/privacy/vault.py",
      (("        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(\n"
        "            protected, _aad(pseudonym, b\"template\"), nonce, tkey\n        )\n",
        "        ct = protected + bytes(16)\n"),)),
    M("aad-without-pseudonym", 15, "a template's integrity no longer binds it to its pseudonym",
      "src/doorpi/privacy/vault.py",
      (('    return _FORMAT + b"|" + kind + b"|" + pseudonym.encode()\n',
        '    return _FORMAT + b"|" + kind + b"|"\n'),)),
    M("template-with-attributes", 16, "the stored template carries an extra attribute dimension",
      "src/doorpi/privacy/vault.py",
      (("def check_embedding(embedding: np.ndarray) -> np.ndarray:\n",
        "def check_embedding(embedding: np.ndarray) -> np.ndarray:\n"
        "    embedding = np.asarray(embedding, np.float32).ravel()[:EMBEDDING_DIM]\n"),)),
    M("transform-not-bound", 17, "the installation transform no longer depends on the vault key",
      "src/doorpi/privacy/vault.py",
      (('seed = (derive_v1 if v1 else derive)(vault_key, "face-transform")',
        'seed = (derive_v1 if v1 else derive)(b"\\0" * 32, "face-transform")'),)),
    M("deterministic-templates", 17, "templates are encrypted deterministically (key from the pseudonym, fixed nonce, transform not renewed)",
      "src/doorpi/privacy/vault.py",
      (("        tkey = os.urandom(32)\n        nonce = os.urandom(NONCE_BYTES)\n",
        "        tkey = __import__('hashlib').sha256(pseudonym.encode()).digest()\n"
        "        nonce = bytes(NONCE_BYTES)\n"),
       ('seed = (derive_v1 if v1 else derive)(vault_key, "face-transform")',
        'seed = (derive_v1 if v1 else derive)(b"\\0" * 32, "face-transform")'))),
    M("card-mode-keeps-device-templates", 18, "a gate switched to templates on cards keeps its device templates",
      "src/doorpi/privacy/parity.py",
      (('    if privacy.settings.template_storage != "card":\n        return 0\n    gone = 0\n',
        "    return 0\n    gone = 0\n"),)),
    M("card-mode-stores-on-device", 18, "enrolment stores on the device in card mode",
      "src/doorpi/privacy/enrolment.py",
      (('        if self.settings.template_storage == "card":\n'
        '            raise EnrolmentError("templates live on the residents\' cards here (see oncard)")\n',
        ""),)),
    M("share-without-person-flag", 19, "templates travel to other gates without the person's sharing consent",
      "src/doorpi/privacy/share.py",
      (("if rec is None or rec.origin_gate is not None or not rec.share_site_gates:",
        "if rec is None or rec.origin_gate is not None:"),)),
    M("face-on-without-assessment", 20, "face may be used without an impact assessment",
      "src/doorpi/privacy/pia.py",
      (("    pia = AssessmentRegistry(db, audit=None).latest()  # type: ignore[arg-type]\n    if pia is None:\n",
        "    pia = AssessmentRegistry(db, audit=None).latest()  # type: ignore[arg-type]\n    if False:\n"),)),
    M("processing-records-pruned", 20, "processing records are pruned with the entry log",
      "src/doorpi/store/audit.py",
      (('f"audit WHERE seq <= ?) WHERE kind IN ({marks})",',
        'f"audit WHERE seq <= ?) WHERE 0 AND kind IN ({marks})",'),)),
    M("admin-from-logname", 21, "the admin's name is taken from $LOGNAME",
      "src/doorpi/cli/common.py",
      (('    return _operator[0] or f"unauthenticated:uid={os.getuid()}"',
        '    return os.environ.get("LOGNAME") or _operator[0] or f"unauthenticated:uid={os.getuid()}"'),)),
    M("holders-count-templates-only", 22, "the gate counts stored templates, not everyone with face data (live consents)",
      "src/doorpi/privacy/report.py",
      (('            "SELECT count(*) FROM (SELECT pseudonym FROM face_templates UNION "\n'
        '            "SELECT pseudonym FROM face_consents WHERE withdrawn_at IS NULL AND retention_end > ?)",\n',
        '            "SELECT count(*) FROM face_templates WHERE ? IS NOT NULL",\n'),)),
    M("site-count-one-gate", 22, "the site's face count is the largest gate's, not the sum",
      "src/doorpi/privacy/report.py",
      (("    total = sum(n for _, n in newest.values())\n",
        "    total = max((n for _, n in newest.values()), default=0)\n"),)),
    M("no-warning-near-threshold", 22, "no warning as the site nears 100,000",
      "src/doorpi/privacy/report.py", (("    elif total >= warn_at:\n", "    elif False:\n"),)),
    M("frr-interval-zeroed", 23, "the eval reports a zero-width FRR confidence interval",
      "src/doorpi/vision/metrics.py",
      (('        "frr_ci95": clopper_pearson(fr, len(g)),\n', '        "frr_ci95": (fr / len(g), fr / len(g)),\n'),)),
    M("numbers-accepts-zeroed-ci", 23, "the release report tool accepts a zeroed FRR interval",
      "tools/release_numbers.py",
      (("    problems = interval_problems(data)\n", "    problems: list[str] = []\n"),)),
)  # fmt: skip


def digest(mutation: Mutation) -> str:
    """Short hash of what the mutation changes: a result is for this definition only."""
    text = json.dumps([mutation.path, [list(p) for p in mutation.pairs]])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def by_id() -> dict[str, Mutation]:
    return {m.id: m for m in MUTATIONS}


def _edits(mutation: Mutation) -> list[tuple[str, str, str]]:
    """(path, search, replace) of each pair; a pair of three names its own file."""
    return [(p[0], p[1], p[2]) if len(p) == 3 else (mutation.path, p[0], p[1])
            for p in mutation.pairs]  # fmt: skip


def apply(tree: Path, mutation: Mutation) -> None:
    """Apply ``mutation`` inside ``tree``; MutationError if a search text is
    missing or occurs more than once (the source moved on: fix the mutation)."""
    check_applies(mutation, tree)
    for rel, old, new in _edits(mutation):
        path = tree / rel
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def check_applies(mutation: Mutation, tree: Path = REPO) -> None:
    """MutationError unless every search text occurs exactly once in ``tree``."""
    for rel, old, _ in _edits(mutation):
        n = (tree / rel).read_text(encoding="utf-8").count(old)
        if n != 1:
            raise MutationError(f"{mutation.id}: {rel}: search text found {n} times: {old[:60]!r}")


def copy_tree(dst: Path, src: Path = REPO) -> Path:
    """The working tree's tracked and new files (uncommitted edits included)
    copied to ``dst``; the built models are linked, not copied."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=src, check=True, capture_output=True,
    ).stdout.decode()  # fmt: skip
    for rel in filter(None, out.split("\0")):
        s = src / rel
        if not s.is_file():
            continue  # deleted in the working tree
        d = dst / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d)
    if (src / "models/build").is_dir():
        (dst / "models").mkdir(exist_ok=True)
        (dst / "models/build").symlink_to(src / "models/build")
    return dst


def load_checklist(path: Path = REPO / CHECKLIST) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8"))["requirement"]


def tests_for(req: dict) -> list[str]:
    """The tests a requirement's mutations run: its own and its outside attempts."""
    return list(dict.fromkeys([*req.get("tests", []), *req.get("outside", [])]))


_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (.+?)(?: - .*)?$")


def run_tests(tree: Path, tests: list[str], timeout: float = 1800) -> tuple[dict[str, str], str]:
    """Run ``tests`` (node ids) with pytest inside ``tree``; outcome per node id
    (``passed``/``failed``/``error``/``skipped``/``missing``) and the output tail."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("DOORPI_SHARED_DIR", str(REPO.parent / "shared"))
    where = subprocess.run(
        [sys.executable, "-c", "import doorpi; print(doorpi.__file__)"],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not where.startswith(str(tree)):
        raise MutationError(f"the copy's code is not the one imported: {where}")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *tests],
        cwd=tree, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    outcome: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = _OUTCOME.match(line.strip())
        if m:
            node = m.group(2)
            base = node.split("[", 1)[0]
            kind = m.group(1).lower()
            prev = outcome.get(base)
            # parametrised cases: the node fails if any case fails
            if prev in ("failed", "error"):
                continue
            outcome[base] = kind
    for t in tests:
        outcome.setdefault(t, "missing")
    return {t: outcome[t] for t in tests}, proc.stdout[-3000:]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _commit() -> str:
    p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                       text=True)  # fmt: skip
    return p.stdout.strip()


def run(only: list[str], baseline: bool, keep: bool = False) -> dict:
    """Run the baseline and the mutations; merge into the results file."""
    reqs = {r["n"]: r for r in load_checklist()}
    results_path = REPO / RESULTS
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    chosen = [m for m in MUTATIONS if not only or m.id in only]
    unknown = set(only) - {m.id for m in MUTATIONS}
    if unknown:
        raise MutationError(f"no such mutation: {', '.join(sorted(unknown))}")
    jobs: list[tuple[str, Mutation | None, list[str]]] = []
    if baseline:  # the tests of the chosen mutations, unmutated
        every = list(dict.fromkeys(t for m in chosen for t in tests_for(reqs[m.requirement])))
        jobs.append((BASELINE, None, every))
    for m in chosen:
        jobs.append((m.id, m, tests_for(reqs[m.requirement])))
    for name, m, tests in jobs:
        Path(TMP_ROOT).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"doorpi-mut-{name}-", dir=TMP_ROOT))
        try:
            tree = copy_tree(tmp / "tree")
            if m is not None:
                apply(tree, m)
            t0 = time.monotonic()
            outcome, tail = run_tests(tree, tests)
            secs = round(time.monotonic() - t0, 1)
        finally:
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
        entry = {"ran": _now(), "commit": _commit(), "seconds": secs, "tests": outcome}
        if m is None and only and BASELINE in results:  # a partial baseline adds to the last
            entry["tests"] = {**results[BASELINE]["tests"], **outcome}
        if m is not None:
            entry["requirement"] = m.requirement
            entry["digest"] = digest(m)
        results[name] = entry
        caught = [t for t, o in outcome.items() if o in ("failed", "error")]
        print(f"{name}: {len(caught)}/{len(tests)} failed in {secs} s", flush=True)
        results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        if m is None:
            bad = {t: o for t, o in outcome.items() if o != "passed"}
            if bad:  # a test that fails (or is not found) unmutated proves nothing
                print(tail, file=sys.stderr)
                raise MutationError(f"baseline: not passing unmutated: {bad}")
    return results


# ------------------------------------------------------------ the markdown


def caught_by(results: dict, req: dict) -> dict[str, list[str]]:
    """For each test of the requirement, the mutations (of that requirement) it failed under."""
    out: dict[str, list[str]] = {t: [] for t in tests_for(req)}
    for mid in req.get("mutations", []):
        res = results.get(mid, {}).get("tests", {})
        for t in out:
            if res.get(t) in ("failed", "error"):
                out[t].append(mid)
    return out


def render(reqs: list[dict], results: dict) -> str:
    """docs/privacy-checklist.md from the checklist and the mutation results."""
    muts = by_id()
    lines = [
        "# Privacy checklist",
        "",
        "<!-- generated by tools/mutations/privacy.py from tests/privacy/checklist.toml and",
        "     tests/privacy/mutation-results.json; do not edit by hand -->",
        "",
        "Each of the 23 requirements in `../shared/notes/law-and-standards.md` with the tests",
        "that prove it and the mutation (a plausible break of the code, applied in a copy",
        "of the tree) each test was seen to fail under. *Outside attempts* are the",
        "issue #14 attempts made as an admin or resident would, through the `doorpi` CLI",
        "or a running gate. `tests/privacy/test_checklist.py` checks this file against",
        "the checklist and the results.",
        "",
    ]
    base = results.get(BASELINE, {})
    if base:
        bad = [t for t, o in base["tests"].items() if o != "passed"]
        lines += [f"Baseline (no mutation), {base['ran']} at {base['commit']}: "
                  f"{len(base['tests']) - len(bad)}/{len(base['tests'])} passed.", ""]  # fmt: skip
    for req in reqs:
        lines += [f"## {req['n']}. {req['title']}", ""]
        caught = caught_by(results, req)
        for kind, key in (("test", "tests"), ("outside attempt", "outside")):
            for t in req.get(key, []):
                by = ", ".join(f"`{x}`" for x in caught[t]) or "**no mutation caught**"
                lines.append(f"- {kind} `{t}`: fails under {by}")
        lines += ["", "| mutation | what | failed | when |", "|---|---|---|---|"]
        for mid in req.get("mutations", []):
            m = muts.get(mid)
            res = results.get(mid)
            what = m.what if m else "(unknown mutation)"
            if res is None:
                lines.append(f"| `{mid}` | {what} | not run | |")
                continue
            n_fail = sum(1 for o in res["tests"].values() if o in ("failed", "error"))
            files = (
                ", ".join(f"`{f}`" for f in dict.fromkeys(e[0] for e in _edits(m))) if m else "?"
            )
            lines.append(f"| `{mid}` ({files}) | {what} | "
                         f"{n_fail}/{len(res['tests'])} | {res['ran']}, {res['commit']} |")  # fmt: skip
        if req.get("note"):
            lines += ["", req["note"].strip()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown() -> Path:
    results_path = REPO / RESULTS
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    out = REPO / MARKDOWN
    out.write_text(render(load_checklist(), results), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run mutations and write the results and the markdown")
    r.add_argument("--only", action="append", default=[], help="mutation id (repeatable)")
    r.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    r.add_argument("--keep", action="store_true", help="keep the temporary copies")
    sub.add_parser("render", help="write docs/privacy-checklist.md from the stored results")
    sub.add_parser("list", help="list the mutations")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for m in MUTATIONS:
                check_applies(m)
                print(f"{m.requirement:2d} {m.id}: {m.what}")
            return 0
        if args.cmd == "run":
            run(args.only, baseline=not args.no_baseline, keep=args.keep)
        print(write_markdown().relative_to(REPO))
    except MutationError as exc:
        print(f"mutations: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
