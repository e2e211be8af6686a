"""A random sample of a populated database's families, read back with one query: each child with
a payer order, the child's region and the grantors of its ACTIVE bindings (in payer-order
sequence). The benchmark's scale phase settles the sampled children's bills."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from services.population.copying import conninfo

_SAMPLE = """
SELECT o.beneficiary_id_number, min(b.beneficiary_admdvs),
       array_agg(b.grantor_id_number ORDER BY b.beneficiary_sequence)
FROM (SELECT beneficiary_id_number FROM payer_orders ORDER BY random() LIMIT %s) AS o
JOIN bindings AS b ON b.beneficiary_id_number = o.beneficiary_id_number AND b.state = 'ACTIVE'
GROUP BY o.beneficiary_id_number
ORDER BY o.beneficiary_id_number
"""


@dataclass(frozen=True)
class SampledFamily:
    child: str
    admdvs: str  # the child's pooling region: its hospitals are H{admdvs}01 … H{admdvs}08
    grantors: tuple[str, ...]


def sample_families(binding_url: str, count: int, seed: float = 0.5) -> list[SampledFamily]:
    """Up to `count` families drawn uniformly (PostgreSQL's random(), seeded with `seed` in -1…1,
    so a database loaded alike gives the same sample) from every family with a payer order,
    active or not."""
    with psycopg.connect(conninfo(binding_url, "the binding database")) as connection:
        connection.execute("SELECT setseed(%s)", (seed,))
        rows = connection.execute(_SAMPLE, (count,)).fetchall()
    return [SampledFamily(child, admdvs, tuple(grantors)) for child, admdvs, grantors in rows]
