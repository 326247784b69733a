"""A handle on one study: what `Client.submit` returns and a notebook works with. It is its
study id (a `str`), and asks its client for everything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunefleet_contract.messages import ModelStored
from tunefleet_contract.spec import StudySpec
from tunefleet_runtime.records import StudyStatus

from tunefleet import frames, models
from tunefleet.display import progress_display

if TYPE_CHECKING:
    import pandas as pd

    from tunefleet.client import Client, Resumption, SpecLike
    from tunefleet.cost import Ledger

__all__ = ["Study"]


class Study(str):
    """A handle on one study. It *is* its id (a `str`), so it goes wherever an id goes."""

    client: Client
    _spec: StudySpec | None
    _revision: int  # the newest this handle made (a resume): `wait` counts nothing older

    def __new__(
        cls, study_id: str, client: Client, spec: StudySpec | None = None, revision: int = 0
    ) -> Study:
        self = super().__new__(cls, study_id)
        self.client = client
        self._spec = spec
        self._revision = revision
        return self

    @property
    def id(self) -> str:
        return str(self)

    @property
    def spec(self) -> StudySpec:
        if self._spec is None:
            self._spec = self.client.stored_spec(self)
        return self._spec

    def status(self) -> StudyStatus | None:
        return self.client.status(self)

    def wait(self, progress: bool = True, *, timeout_s: float | None = None) -> StudyStatus:
        """Block until every trial has a result (or the study is cancelled); `progress` shows
        a live bar (rich in a terminal, an updating HTML bar in Jupyter)."""
        if not progress:
            return self.client.wait(self, timeout_s=timeout_s, revision=self._revision)
        with progress_display(self) as show:
            return self.client.wait(
                self, timeout_s=timeout_s, on_progress=show, revision=self._revision
            )

    def results(self) -> pd.DataFrame:
        return self.client.results(self)

    def cost(self) -> Ledger:
        """What the study cost (`tunefleet.cost.Ledger`): `.total`, `.by_library`, `.trials`,
        `.waste`, `.improvement`; `.as_dict()` for a table."""
        return self.client.cost(self)

    def best(self, n: int = 10, by_library: bool = False) -> pd.DataFrame:
        """The `n` best trials, or the `n` best of each library."""
        return frames.best(self.results(), n, by_library)

    def refit(self, trial_id: str | None = None) -> str:
        """Ask a worker to train a trial (the best by default) on the whole dataset and store
        the model; returns the trial id. Idempotent: the model's id is the trial's."""
        return self.client.refit(self, trial_id)

    def model(self, trial_id: str | None = None) -> ModelStored | None:
        """The stored model's description (of the best trial's, by default), if refitted."""
        return self.client.model(self, trial_id)

    def best_model(self, *, timeout_s: float = 600) -> Any:
        """The best trial's model, fitted on the whole dataset, as the library's scikit-learn
        estimator: refitted first (and waited for) unless stored already. Predict on
        `study.prepare(frame)`."""
        return self.client.best_model(self, timeout_s=timeout_s)

    def prepare(self, frame: pd.DataFrame, trial_id: str | None = None) -> Any:
        """`frame`'s features as the stored model takes them (columns, category levels)."""
        model = self.client.model(self, trial_id)
        if model is None:
            raise LookupError(f"study {self}: no stored model; refit first")
        return models.prepare(frame, model)

    def cancel(self, reason: str | None = None) -> None:
        self.client.cancel(self, reason=reason)

    def resume(self, spec: SpecLike | None = None, *, rerun_failed: bool = False) -> Resumption:
        """See `Client.resume`; with `spec`, a fixed spec replaces the study's own."""
        resumption = self.client.resume(self, spec, rerun_failed=rerun_failed)
        self._revision = resumption.revision
        if spec is not None:
            self._spec = None  # read the fixed one back from the store when asked
        return resumption

    def __repr__(self) -> str:
        return f"Study({str(self)!r})"
