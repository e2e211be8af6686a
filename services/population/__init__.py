"""`gongji populate`: a large population of insured persons, families, accounts and a year of
journal history, loaded with PostgreSQL's COPY instead of RPCs: the populations, from ten thousand to ten
million persons, that the benchmark's scale phase (`gongji benchmark --population`) measures."""

from services.population.copying import PopulationError
from services.population.run import Report, populate, run_populate

__all__ = ["PopulationError", "Report", "populate", "run_populate"]
