"""`gongji populate`: a large population of insured persons, families, accounts and a year of
journal history, loaded with PostgreSQL's COPY instead of RPCs (issue 12's scale figures)."""

from services.population.copying import PopulationError
from services.population.run import Report, populate, run_populate

__all__ = ["PopulationError", "Report", "populate", "run_populate"]
