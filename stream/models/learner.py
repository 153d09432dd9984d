"""One partition's models: score a user's inputs, learn from resolved labels, validate as it goes.

Three learners share one running scaler (standardization is learned from the inputs of every
pending label, when the label is made: it needs no outcome, and the three models then see the
same standardized vector):

* ``conversion`` and ``abandonment``: logistic regression, served through a learned blend with a
  smoothed rate per segment of the inputs (session length x cart held), which is all they say
  until the model's ranking earns weight (:class:`~stream.models.prior.ColdStartPrior`);
* ``next_category``: a ranker over the user's leaning categories (:mod:`stream.models.ranker`),
  top-K reported.

**Progressive validation.** Before a model learns an example, it predicts it; the metrics
(:mod:`stream.models.validation`) therefore only ever score a model on data it has not seen. The
prediction is made when the label resolves, with the model as it is then (the served score is
not stored with the pending label: storing it would make the profile depend on the model, and a
profile must equal its offline replay even when a crash has made a model differ).

**Versions.** A model's version names its family, its partition and how many examples it has
learned (``models-v1/p3/conversion@1234``): deterministic, and enough to find the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from stream.config import ModelConfig
from stream.exceptions import SnapshotError
from stream.labels import ABANDONMENT, CONVERSION, NEXT_CATEGORY, Example, unpack_inputs
from stream.models.logistic import LogisticModel
from stream.models.prior import ColdStartPrior, segment_of
from stream.models.ranker import CategoryRanker
from stream.models.scaler import RunningScaler
from stream.models.validation import BinaryValidation, MulticlassValidation

__all__ = ["BinaryScore", "PartitionModels", "Scores"]

SNAPSHOT_KIND = "partition-models"

#: Model version strings are built per event; keep the formatting in one place.
_BINARY = (CONVERSION, ABANDONMENT)
#: The inputs the cold-start prior's segment reads (see stream.models.prior.segment_of).
SEGMENT_INPUTS = ("log_session_events", "log_cart_lines")


class BinaryScore(NamedTuple):
    """A binary target's probability and the inputs that pushed it most (name, contribution)."""

    probability: float
    model: str
    #: (input name, weight x standardized value, whether the value is above the mean).
    top_inputs: tuple[tuple[str, float, bool], ...]


class Scores(NamedTuple):
    conversion: BinaryScore
    #: Cart abandonment: only scored while the cart holds something (stream.labels).
    abandonment: BinaryScore | None
    next_category: tuple[tuple[str, float], ...]
    next_category_model: str


class PartitionModels:
    """The learners of one source partition (mutable; owned by the partition's learner)."""

    def __init__(self, input_names: Sequence[str], config: ModelConfig, partition: int) -> None:
        n = len(input_names)
        self.input_names = tuple(input_names)
        self.config = config
        self.partition = partition
        self.scaler = RunningScaler(n)
        lr = config.learning_rate
        self.binary = {target: LogisticModel(n, lr=lr, intercept_lr=lr) for target in _BINARY}
        self.priors = {target: ColdStartPrior(lr=config.blend_learning_rate) for target in _BINARY}
        #: Positions of SEGMENT_INPUTS (None: an input layout without them, one segment).
        self._segment_at = (
            tuple(self.input_names.index(name) for name in SEGMENT_INPUTS)
            if all(name in self.input_names for name in SEGMENT_INPUTS)
            else None
        )
        self.next_category = CategoryRanker(config.next_category_classes)
        self.validation = {target: BinaryValidation() for target in _BINARY}
        self.next_category_validation = MulticlassValidation()
        #: Examples refused by a learner (a non-finite input): should stay 0.
        self.refused = 0
        #: ``versions()`` for the learned counts it was built at: every decision names the
        #: versions, and they change only when a model learns (a label, not every event).
        self._versions: tuple[tuple[int, int, int], dict[str, str]] | None = None

    # -- scoring -------------------------------------------------------------------------------

    def score(
        self,
        inputs: Sequence[float],
        candidates: Sequence[tuple[str, float]],
        current: str | None,
        cart: bool,
    ) -> Scores:
        """Every target's prediction for one (cleaned) input vector, the user's candidate
        categories and whether their cart holds something."""
        z = self.scaler.transform(inputs)
        segment = self._segment(inputs)
        conversion = self._binary_score(CONVERSION, z, segment)
        abandonment = self._binary_score(ABANDONMENT, z, segment) if cart else None
        ranked = self.next_category.predict(dict(candidates), current)[: self.config.top_k]
        return Scores(
            conversion,
            abandonment,
            tuple((label, round(p, 6)) for label, p in ranked),
            self.versions()[NEXT_CATEGORY],
        )

    def _segment(self, inputs: Sequence[float]) -> int:
        at = self._segment_at
        return 0 if at is None else segment_of(inputs[at[0]], inputs[at[1]])

    def _binary_score(self, target: str, z: list[float], segment: int) -> BinaryScore:
        model = self.binary[target]
        probability = self.priors[target].blend(model.predict_proba(z), segment)
        return BinaryScore(
            round(probability, 6),
            self.versions()[target],
            self._top_inputs(model, z, self.priors[target].weights[2]),
        )

    def _top_inputs(
        self, model: LogisticModel, z: list[float], trust: float
    ) -> tuple[tuple[str, float, bool], ...]:
        """The inputs that moved the served logit most: the model's ``w_i * z_i`` times the
        weight the blend gives the model's logit (``trust``)."""
        if model.n_learned < self.config.min_labels or trust <= 0.0:
            return ()  # the segment prior speaks, not the weights: nothing to explain yet
        contributions = [trust * c for c in model.contributions(z)]
        magnitudes = list(map(abs, contributions))
        k = self.config.explain_top
        cutoff = sorted(magnitudes)[-k] if len(magnitudes) >= k else 0.0
        # The k largest |contribution|, ties to the later input (a fixed rule: replays agree).
        top = [i for i, m in enumerate(magnitudes) if m >= cutoff]
        top.sort(key=lambda i: (-magnitudes[i], -i))
        names = self.input_names
        return tuple((names[i], round(contributions[i], 4), z[i] > 0) for i in top[:k])

    def _version(self, target: str, n_learned: int) -> str:
        return f"{self.config.version}/p{self.partition}/{target}@{n_learned}"

    def versions(self) -> dict[str, str]:
        """Each model's version (shared: callers only read it)."""
        learned = (
            self.binary[CONVERSION].n_learned,
            self.binary[ABANDONMENT].n_learned,
            self.next_category.n_learned,
        )
        if self._versions is None or self._versions[0] != learned:
            versions = {
                CONVERSION: self._version(CONVERSION, learned[0]),
                ABANDONMENT: self._version(ABANDONMENT, learned[1]),
                NEXT_CATEGORY: self._version(NEXT_CATEGORY, learned[2]),
            }
            self._versions = (learned, versions)
        return self._versions[1]

    # -- learning ------------------------------------------------------------------------------

    def observe_inputs(self, packed: bytes) -> None:
        """A pending label was made: the scaler learns its inputs."""
        self.scaler.learn(unpack_inputs(packed))

    def learn(self, example: Example) -> float | list[tuple[str, float]]:
        """Validate on the example (predict first), then learn from it; return the prediction
        it was validated with (a probability, or the ranked categories)."""
        prediction: float | list[tuple[str, float]]
        if example.target == NEXT_CATEGORY:
            label, candidates = str(example.label), dict(example.candidates)
            prediction = self.next_category.predict(candidates, example.current)
            self.next_category_validation.update(prediction, label)
            learned = self.next_category.learn(candidates, example.current, label)
        else:
            inputs = unpack_inputs(example.inputs)
            z, segment = self.scaler.transform(inputs), self._segment(inputs)
            target, outcome = example.target, bool(example.label)
            model, prior = self.binary[target], self.priors[target]
            model_p = model.predict_proba(z)
            prediction = prior.blend(model_p, segment)
            self.validation[target].update(prediction, outcome)
            prior.learn(outcome, model_p, segment)
            learned = model.learn(z, outcome)
        if not learned:
            self.refused += 1
        return prediction

    def summary(self) -> dict[str, Any]:
        """Progressive-validation figures per target (for metrics and the decision summary)."""
        return {
            **{t: self.validation[t].summary() for t in _BINARY},
            NEXT_CATEGORY: self.next_category_validation.summary(),
            "refused": self.refused,
        }

    # -- snapshots -----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": SNAPSHOT_KIND,
            "version": self.config.version,
            "partition": self.partition,
            "inputs": list(self.input_names),
            "scaler": self.scaler.to_state(),
            "binary": {t: self.binary[t].to_state() for t in _BINARY},
            "priors": {t: self.priors[t].to_state() for t in _BINARY},
            "next_category": self.next_category.to_state(),
            "validation": {t: self.validation[t].to_state() for t in _BINARY},
            "next_category_validation": self.next_category_validation.to_state(),
            "refused": self.refused,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: ModelConfig) -> PartitionModels:
        """Restore a snapshot; raises :class:`SnapshotError` if it belongs to other models."""
        if state.get("kind") != SNAPSHOT_KIND or state.get("version") != config.version:
            raise SnapshotError(
                f"snapshot is {state.get('kind')!r} {state.get('version')!r},"
                f" not {SNAPSHOT_KIND!r} {config.version!r}"
            )
        try:
            models = cls(state["inputs"], config, int(state["partition"]))
            models.scaler = RunningScaler.from_state(state["scaler"])
            models.binary = {t: LogisticModel.from_state(state["binary"][t]) for t in _BINARY}
            models.priors = {t: ColdStartPrior.from_state(state["priors"][t]) for t in _BINARY}
            models.next_category = CategoryRanker.from_state(state["next_category"])
            models.validation = {
                t: BinaryValidation.from_state(state["validation"][t]) for t in _BINARY
            }
            models.next_category_validation = MulticlassValidation.from_state(
                state["next_category_validation"]
            )
            models.refused = int(state["refused"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"cannot restore partition models: {exc}") from exc
        return models
