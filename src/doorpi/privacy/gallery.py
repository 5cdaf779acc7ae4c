"""`VaultGallery`: the face engine's gallery, backed by the encrypted vault.

Why an adapter: the vision engine (`doorpi.vision.engine.PipelineFaceEngine`)
matches against an object with ``ids``, ``scores(query)`` and
``search(query)`` (as `doorpi.vision.match.Gallery`). Handing it this
instead of a plain in-memory gallery keeps the privacy rules on the match
path: templates are decrypted only into memory, the probe goes through the
same installation transform, expired templates never match, and a
withdrawal in any process (admin CLI included) drops the template before
the next frame, because every call checks the vault's change counter.
``ids`` are resident ids as strings, as the engine expects.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sqlite_utils

from doorpi.privacy.vault import TemplateVault, check_embedding, open_set_best


class VaultGallery:
    def __init__(self, vault: TemplateVault, clock: Callable[[], float] | None = None) -> None:
        self.vault = vault
        self.clock = clock or vault.clock
        self._generation = ""
        self._ids: list[str] = []
        self._matrix = np.empty((0, 128), np.float32)
        self._expires = np.empty(0, np.float64)
        self._suspended = np.empty(0, bool)

    @property
    def db(self) -> sqlite_utils.Database:
        return self.vault.db

    def _refresh(self) -> None:
        g = self.vault._gallery()
        if g.generation == self._generation:
            return
        rows = self.db.execute("SELECT pseudonym, id FROM residents WHERE active = 1").fetchall()
        by_pseudonym = {p: str(i) for p, i in rows}
        keep = [k for k, p in enumerate(g.ids) if p in by_pseudonym]
        self._ids = [by_pseudonym[g.ids[k]] for k in keep]
        self._matrix = g.matrix[keep] if keep else np.empty((0, 128), np.float32)
        self._expires = g.expires[keep] if keep else np.empty(0, np.float64)
        self._suspended = g.suspended[keep] if keep else np.empty(0, bool)
        self._generation = g.generation

    def __len__(self) -> int:
        self._refresh()
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Resident ids in the order of the last `scores` call."""
        return list(self._ids)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine of the probe against every live template (expired ones: -2)."""
        self._refresh()
        if not self._ids:
            return np.empty(0, np.float32)
        q = check_embedding(query)
        live = self._expires > self.clock()
        return np.where(live, self._matrix @ q, -2.0).astype(np.float32)

    def search(self, query: np.ndarray):  # -> doorpi.vision.match.Match
        """Best resident and the best score of anyone else (open-set 1:N); a
        template suspended after a reported false match is never the best."""
        from doorpi.vision.match import Match

        s = self.scores(query)
        best, score, second = open_set_best(s, (s > -2.0) & ~self._suspended)
        return Match(None if best is None else self._ids[best], score, second)


__all__ = ["VaultGallery"]
