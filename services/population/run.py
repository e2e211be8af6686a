"""`gongji populate`: generate a population, COPY it into the binding and payment
databases, ANALYZE, and report load time per table and the databases' sizes."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from services.population.copying import PopulationError, Target
from services.population.progress import Progress
from services.population.rows import TABLES, Generator, check_sample

FAMILIES_PER_BATCH = 10_000


@dataclass
class Report:
    persons: int
    families: int
    active_families: int
    settlements: int
    seconds: float
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    finishing: dict[str, dict[str, float]] = field(default_factory=dict)
    sizes: dict[str, tuple[int, str]] = field(default_factory=dict)

    def text(self) -> str:
        out = [
            f"populated {self.persons:,} persons ({self.families:,} families, {self.active_families:,} active with "
            f"a year of history, {self.settlements:,} settlements) in {self.seconds:.1f} s",
            f"{'table':<20} {'rows':>14} {'COPY s':>9} {'rows/s':>11}",
        ]
        for name, figures in self.tables.items():
            rate = figures["rows"] / figures["seconds"] if figures["seconds"] else 0.0
            out.append(f"{name:<20} {figures['rows']:>14,} {figures['seconds']:>9.1f} {rate:>11,.0f}")
        for service, steps in self.finishing.items():
            out.append(f"{service}: commit {steps['commit']:.1f} s, ANALYZE {steps['analyze']:.1f} s")
        for service, (_, pretty) in self.sizes.items():
            out.append(f"{service} database size: {pretty}")
        return "\n".join(out)


def populate(
    binding_url: str,
    payment_url: str,
    persons: int,
    seed: int = 1,
    active_share: float = 0.01,
    history_days: int = 365,
    now: datetime | None = None,
    progress_stream: TextIO | None = None,
    families_per_batch: int = FAMILIES_PER_BATCH,
) -> Report:
    """Loads `persons` insured persons into empty, migrated databases; raises PopulationError
    (and loads nothing) when a database is not PostgreSQL, not migrated or not empty."""
    if persons < 1:
        raise PopulationError("--persons must be at least 1")
    if not 0.0 <= active_share <= 1.0:
        raise PopulationError("--active-share must lie between 0 and 1")
    if history_days < 1:
        raise PopulationError("--history-days must be at least 1")
    started = time.perf_counter()
    binding = Target("binding", binding_url)
    try:
        payment = Target("payment", payment_url)
    except BaseException:
        binding.close()
        raise
    try:
        binding.claim()
        payment.claim()
        index = binding.policies()
        generator = Generator(
            persons, seed, active_share, history_days, now or datetime.now(UTC),
            lambda admdvs, at: index.for_region(admdvs, at).version,
        )  # fmt: skip
        check_sample(generator)
        progress = Progress(persons, stream=progress_stream)
        ranges = generator.batches(families_per_batch)
        for position, (first, end) in enumerate(ranges):
            batch = generator.batch(first, end, last=position == len(ranges) - 1)
            binding.copy(batch.lines)
            payment.copy(batch.lines)
            progress.advance(batch.persons, batch.rows)
        progress.finish()
        binding.commit_and_analyze()
        payment.commit_and_analyze()
        report = Report(
            persons, generator.counts["families"], generator.counts["active_families"],
            generator.counts["settlements"], time.perf_counter() - started,
        )  # fmt: skip
        for target in (binding, payment):
            for table in TABLES[target.service]:
                report.tables[table] = {"rows": target.rows[table], "seconds": target.seconds[table]}
            report.finishing[target.service] = target.finish_seconds
            report.sizes[target.service] = target.size()
        return report
    finally:
        binding.close()
        payment.close()


def run_populate(
    binding_url: str, payment_url: str, persons: int, seed: int, active_share: float, history_days: int
) -> int:
    try:
        report = populate(binding_url, payment_url, persons, seed, active_share, history_days)
    except PopulationError as problem:
        print(f"gongji populate: {problem}", file=sys.stderr)
        return 2
    print(report.text())
    return 0
