"""The model registry every decider reads: the latest verified snapshot of each model.

A background thread follows the compacted `rtim.models` topic from its beginning; each new
snapshot is verified (HMAC), folded into a `LinearScorer` and swapped in as a new immutable
`ModelSet`. Deciders call `predict` on the registry, which delegates to the current set — so a
decision sees one consistent set of models, and the hot path never touches River or a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from rtim.core.features import FeatureValue
from rtim.core.learning import LinearScorer, ModelIntegrityError, ModelSet
from rtim.errors import RtimError
from rtim.learning.snapshots import load_snapshot, model_key, read_snapshots
from rtim.logs import get_logger
from rtim.serde.codec import Codec
from rtim.settings import Settings

__all__ = ["ModelRegistry"]

log = get_logger("models")


class ModelRegistry:
    """Latest models by id, updated in the background; implements the decider's protocol."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._current = ModelSet()
        self._versions: dict[str, int] = {}
        self._updates = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rejected = 0

    # --- the decider's protocol ---------------------------------------------------------------
    @property
    def version(self) -> str:
        """Identifies the set of models in use: number of snapshots applied so far."""
        return self._current.version

    def model_id(self, offer_id: str, channel: str) -> str:
        """The model that scores this offer on this channel."""
        return self._current.model_id(offer_id, channel)

    def predict(
        self, offer_id: str, channel: str, x: Mapping[str, FeatureValue]
    ) -> tuple[float, int] | None:
        """(P(response), examples learned), or None while the offer has no model."""
        return self._current.predict(offer_id, channel, x)

    # --- lifecycle ------------------------------------------------------------------------------
    def load(self) -> int:
        """Read every snapshot published so far (blocking). Returns the models loaded."""
        for record in read_snapshots(self.settings, Codec.from_settings(self.settings)):
            self._apply(record)
        return len(self._current)

    def start(self) -> None:
        """Load what exists, then follow new snapshots in a daemon thread."""
        self.load()
        self._thread = threading.Thread(target=self._follow, name="rtim-models", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following (returns at once; the thread ends within a poll)."""
        self._stop.set()

    def models(self) -> ModelSet:
        """The current immutable set."""
        return self._current

    def versions(self) -> dict[str, int]:
        """The snapshot version in use per model id."""
        return dict(self._versions)

    def _follow(self) -> None:
        codec = Codec.from_settings(self.settings)
        try:
            for record in read_snapshots(self.settings, codec, follow=True, stop=self._stop):
                self._apply(record)
        except RtimError as exc:  # the worker keeps deciding with the models it has
            log.error("model registry stopped following snapshots", error=str(exc))

    def _apply(self, record: dict[str, object]) -> None:
        model_id = str(record["model_id"])
        version = int(record["version"])  # type: ignore[call-overload]
        if version <= self._versions.get(model_id, 0):
            return
        try:
            model = load_snapshot(dict(record), model_key(self.settings))
        except ModelIntegrityError as exc:
            self.rejected += 1
            log.error("model snapshot rejected", model_id=model_id, error=str(exc))
            return
        self._versions[model_id] = version
        self._updates += 1
        self._current = self._current.with_scorer(
            model_id, LinearScorer.from_model(model), f"m{self._updates}"
        )
