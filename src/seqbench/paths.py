"""Where every stage reads and writes: the data contract of DESIGN.md as one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What the aggregate and report stages write, relative to the project (the stage table declares them)
AGGREGATE_OUTPUTS = ("reports/results.csv", "reports/costs.csv", "reports/summary.csv", "reports/did_not_finish.csv",
                     "reports/leaderboard.md")
REPORT_OUTPUTS = ("reports/comparison.executed.ipynb", "reports/comparison.html", "reports/RESULTS.md")


@dataclass(frozen=True)
class Layout:
    """Project-relative locations; `root` is the folder holding params.yaml (the orchestrators' cwd)."""

    root: Path

    @classmethod
    def from_cwd(cls) -> "Layout":
        return cls(Path.cwd())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    def raw(self, dataset: str) -> Path:
        return self.root / "data" / "raw" / dataset

    def standard(self, dataset: str) -> Path:
        return self.root / "data" / "standard" / f"{dataset}.parquet"

    def split(self, dataset: str) -> Path:
        return self.root / "data" / "split" / dataset

    def features(self, dataset: str) -> Path:
        return self.root / "data" / "features" / dataset

    def run(self, dataset: str, model: str, seed: int, regime: str = "protocol") -> Path:
        return self.root / "runs" / dataset / model / regime / f"seed{seed}"

    def config(self, dataset: str, model: str, regime: str) -> Path:
        """A training job's resolved settings (the configure stage)."""
        return self.root / "config" / dataset / model / f"{regime}.json"

    def tuned(self, dataset: str, model: str) -> Path:
        """The settings a search chose for the tuned regime (committed, like the reports)."""
        return self.root / "tuned" / dataset / f"{model}.yaml"

    def search(self, dataset: str, model: str) -> Path:
        """A search's working files (its Optuna journal)."""
        return self.root / "runs" / dataset / model / "search"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def tracking_marker(self) -> Path:
        return self.root / "runs" / "tracking.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"
