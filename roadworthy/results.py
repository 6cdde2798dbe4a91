"""Typed results of the public API (:mod:`roadworthy.api`).

Each holds what its function produced, prints as one readable line (``repr``), and
gives the machine-readable form with ``to_json()``: exactly the JSON the matching
command writes with ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadworthy.data.jsonio import clean_json


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


@dataclass(frozen=True, repr=False)
class Result:
    """Base of every API result."""

    def to_json(self) -> dict:
        """The machine-readable result (strict JSON: NaN becomes null)."""
        return clean_json(self._json())

    def _json(self) -> dict:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _line(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self._line()}>"


@dataclass(frozen=True, repr=False)
class Validation(Result):
    """What :func:`roadworthy.validate` found: a valid log's summary (``summary``, a LogSummary)."""

    summary: Any

    @property
    def rows(self) -> int:
        return self.summary.rows

    @property
    def episodes(self) -> int:
        return self.summary.episodes

    def _json(self) -> dict:
        return self.summary.to_dict()

    def _line(self) -> str:
        by = ", ".join(f"{k} {_pct(v / max(self.rows, 1))}" for k, v in self.summary.rows_by_source.items())
        return f"valid log {self.summary.source}: {self.rows:,} rows, {self.episodes:,} episodes ({by})"


@dataclass(frozen=True, repr=False)
class BehaviorFit(Result):
    """A fitted behaviour model (``model``, a BehaviorModel), where it was saved (``path``), and
    the learned driving model saved beside it (``driving``: its folder and fit key), if any."""

    model: Any
    path: Path | None
    driving: dict | None = None

    def _json(self) -> dict:
        from dataclasses import asdict

        return {
            "model": None if self.path is None else str(self.path),
            "config": asdict(self.model.config),
            "summary": self.model.summary_,
            "driving_model": self.driving,
        }

    def _line(self) -> str:
        s, c = self.model.summary_, self.model.config
        where = f", saved to {self.path}" if self.path else " (not saved)"
        drv = " with the driving model" if self.driving else ""
        return f"{c.model} p(action | state) and {c.state_model} p(state) on {s['rows']['train']:,} rows{where}{drv}"


@dataclass(frozen=True, repr=False)
class Scores(Result):
    """Counts of :func:`roadworthy.score`; the per-row flags are in the file ``counts['flags']``."""

    counts: dict

    @property
    def flags(self) -> Path:
        return Path(self.counts["flags"])

    @property
    def ood_rate(self) -> float:
        return self.counts["ood_rate"]

    def _json(self) -> dict:
        return dict(self.counts)

    def _line(self) -> str:
        what = f"policy '{self.counts['policy']}'" if self.counts["policy"] else "logged actions"
        return f"{what}: {_pct(self.ood_rate)} of {self.counts['rows']:,} rows flagged, flags in {self.flags}"


@dataclass(frozen=True, repr=False)
class Evaluation(Result):
    """The evaluation report of :func:`roadworthy.evaluate` (``report``, docs/evaluator.md)."""

    report: dict

    def policy(self, name: str) -> dict:
        """One policy's entry (value, costs, coverage, heads, diagnostics)."""
        for p in self.report["policies"]:
            if p["name"] == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p["name"] for p in self.report["policies"]]

    def _json(self) -> dict:
        return self.report

    def _line(self) -> str:
        parts = []
        for p in self.report["policies"]:
            v = p["value"]
            parts.append(f"{p['name']} {v['estimate']:.1f} [{v['lower']:.1f}, {v['upper']:.1f}]")
        return f"{self.report['estimator']['chosen']} estimator; " + "; ".join(parts)


@dataclass(frozen=True, repr=False)
class GateResult(Result):
    """The gate's JSON ``verdict`` and the evaluation ``report`` it was judged on."""

    verdict: dict
    report: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.verdict["passed"])

    @property
    def exit_code(self) -> int:
        return int(self.verdict["exit_code"])

    @property
    def failed_checks(self) -> list[str]:
        return list(self.verdict["failed_checks"])

    def _json(self) -> dict:
        return self.verdict

    def _line(self) -> str:
        who = f"{self.verdict['candidate']['name']} vs {self.verdict['baseline']['name']}"
        return f"{who}: PASSED" if self.passed else f"{who}: FAILED ({', '.join(self.failed_checks)})"


@dataclass(frozen=True, repr=False)
class Collection(Result):
    """What :func:`roadworthy.collect` wrote (``result``) and the written log's ``summary``."""

    result: Any
    summary: Any

    def _json(self) -> dict:
        return {"collect": self.result.to_dict(), "summary": self.summary.to_dict()}

    def _line(self) -> str:
        return f"{self.result.rows:,} steps in {self.result.episodes:,} episodes written to {self.summary.source}"


@dataclass(frozen=True, repr=False)
class Rollout(Result):
    """Closed-loop ground truth of :func:`roadworthy.rollout` (``report``, docs/formats.md)."""

    report: dict

    def _json(self) -> dict:
        return self.report

    def _line(self) -> str:
        parts = [
            f"{p['name']} {p['value']['estimate']:.1f} ± {p['value']['stderr']:.1f}" for p in self.report["policies"]
        ]
        return f"{self.report['episodes']} episodes per policy: " + "; ".join(parts)


@dataclass(frozen=True, repr=False)
class CarlaImport(Result):
    """What :func:`roadworthy.import_carla` wrote (``result``) and the written log's ``summary``."""

    result: Any
    summary: Any

    def _json(self) -> dict:
        return {"import": self.result.to_dict(), "summary": self.summary.to_dict()}

    def _line(self) -> str:
        return f"{self.result.rows:,} rows of hero {self.result.hero} written to {self.summary.source}"


@dataclass(frozen=True, repr=False)
class RecordingInfo(Result):
    """Summary of a CARLA recorder file by :func:`roadworthy.carla_info` (``info``; ``text`` with events)."""

    info: dict

    def _json(self) -> dict:
        return {k: v for k, v in self.info.items() if k != "text"}

    def _line(self) -> str:
        return f"{self.info['map']}: {self.info['frames']:,} frames, {self.info['duration_s']:.1f} s"


@dataclass(frozen=True, repr=False)
class CarlaCollection(Result):
    """What :func:`roadworthy.collect_carla` wrote from a live server (``result``)."""

    result: dict

    def _json(self) -> dict:
        return self.result

    def _line(self) -> str:
        return f"{self.result['rows']:,} rows written"


@dataclass(frozen=True, repr=False)
class DmvImport(Result):
    """What :func:`roadworthy.import_dmv` wrote and normalised (``report``, docs/dmv.md)."""

    report: dict

    def _json(self) -> dict:
        return self.report

    def _line(self) -> str:
        return f"{self.report['events']:,} disengagements and {self.report['vehicles']:,} vehicle-years"


@dataclass(frozen=True, repr=False)
class DmvSummary(Result):
    """Disengagements per group by :func:`roadworthy.dmv_summary` (``summary``: ``by`` and ``groups``)."""

    summary: dict

    @property
    def by(self) -> tuple[str, ...]:
        return tuple(self.summary["by"])

    def _json(self) -> dict:
        return self.summary

    def _line(self) -> str:
        return f"{len(self.summary['groups']):,} groups by {', '.join(self.by)}"


@dataclass(frozen=True, repr=False)
class SgoImport(Result):
    """What :func:`roadworthy.import_sgo` wrote, superseded, merged and dropped (``report``, docs/sgo.md)."""

    report: dict

    @property
    def incidents(self) -> int:
        return int(self.report["incidents"])

    def _json(self) -> dict:
        return self.report

    def _line(self) -> str:
        r = self.report
        return f"{r['incidents']:,} crashes from {r['reports']:,} reports ({r['rows']:,} rows)"


@dataclass(frozen=True, repr=False)
class SgoSummary(Result):
    """Crashes per group by :func:`roadworthy.sgo_summary` (``summary``: ``by``, ``incidents``, ``groups``)."""

    summary: dict

    @property
    def by(self) -> tuple[str, ...]:
        return tuple(self.summary["by"])

    @property
    def groups(self) -> list[dict]:
        return list(self.summary["groups"])

    def _json(self) -> dict:
        return self.summary

    def _line(self) -> str:
        return f"{self.summary['incidents']:,} crashes in {len(self.groups):,} groups by {', '.join(self.by)}"


@dataclass(frozen=True, repr=False)
class SgoRates(Result):
    """Crash rates by :func:`roadworthy.sgo_rates` (``rates``: rows, one-source companies, caveats)."""

    rates: dict

    @property
    def caveats(self) -> list[str]:
        return list(self.rates["caveats"])

    def rate(self, company: str, year: int) -> dict:
        """The row of a company (DMV or crash-report spelling, any case) and report year."""
        from roadworthy.data.dmv.normalize import manufacturer_key, same_company

        key = manufacturer_key(company)
        for row in self.rates["rates"]:
            names = [row["company"], *row["sgo_operators"]]
            if row["year"] == year and any(same_company(key, manufacturer_key(n)) for n in names):
                return row
        raise KeyError(f"no rate for {company!r} in {year}")

    def _json(self) -> dict:
        return self.rates

    def _line(self) -> str:
        return f"{len(self.rates['rates']):,} company-years of California crash rates"


@dataclass(frozen=True, repr=False)
class ExamplePolicies(Result):
    """The example policy files :func:`roadworthy.example_policies` copied (``policies``: name, kind, ...)."""

    policies: list[dict]

    def _json(self) -> dict:
        return {"policies": self.policies}

    def _line(self) -> str:
        return ", ".join(p["name"] for p in self.policies)


@dataclass(frozen=True, repr=False)
class DashboardLaunch(Result):
    """Checked inputs of the dashboard and the environment that hands them to the app (``env``)."""

    env: dict[str, str]

    def _json(self) -> dict:
        return {"env": self.env}

    def _line(self) -> str:
        return ", ".join(sorted(self.env))


@dataclass(frozen=True, repr=False)
class Demo(Result):
    """Everything :func:`roadworthy.demo` produced (``parts``: collected, fit, flags, report, truth, verdicts)."""

    parts: dict

    @property
    def verdicts(self) -> dict[str, dict]:
        return self.parts["verdicts"]

    def _json(self) -> dict:
        p = self.parts
        return {
            "out": str(p["out"]),
            "summary": p["collected"].summary.to_dict(),
            "flags": p["flags"],
            "evaluation": p["report"],
            "rollout": p["truth"],
            "verdicts": p["verdicts"],
        }

    def _line(self) -> str:
        passed = sum(v["passed"] for v in self.verdicts.values())
        return f"demo in {self.parts['out']}: {passed} of {len(self.verdicts)} example policies pass the gate"
