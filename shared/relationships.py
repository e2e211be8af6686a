"""Close relatives (近亲属), their scopes and the proof each needs."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Relationship(StrEnum):
    """What the beneficiary is to the grantor."""

    SPOUSE = "SPOUSE"
    PARENT = "PARENT"
    CHILD = "CHILD"
    SIBLING = "SIBLING"
    PATERNAL_GRANDPARENT = "PATERNAL_GRANDPARENT"
    MATERNAL_GRANDPARENT = "MATERNAL_GRANDPARENT"
    PATERNAL_GRANDCHILD = "PATERNAL_GRANDCHILD"
    MATERNAL_GRANDCHILD = "MATERNAL_GRANDCHILD"


class RelationshipScope(StrEnum):
    CORE = "CORE"  # spouse, parents, children (seed 002)
    EXTENDED = "EXTENDED"  # national direction since 2023 (seeds 000, 001, 003, 004)


class ProofType(StrEnum):
    MARRIAGE_CERTIFICATE = "MARRIAGE_CERTIFICATE"  # 结婚证
    HOUSEHOLD_REGISTER = "HOUSEHOLD_REGISTER"  # 户口簿
    BIRTH_CERTIFICATE = "BIRTH_CERTIFICATE"  # 出生医学证明
    KINSHIP_CERTIFICATE = "KINSHIP_CERTIFICATE"  # 亲属关系证明, checked by a person


CORE_RELATIONSHIPS: frozenset[Relationship] = frozenset({Relationship.SPOUSE, Relationship.PARENT, Relationship.CHILD})
RELATIONSHIPS_IN_SCOPE: Mapping[RelationshipScope, frozenset[Relationship]] = {
    RelationshipScope.CORE: CORE_RELATIONSHIPS,
    RelationshipScope.EXTENDED: frozenset(Relationship),
}

_FAMILY_DOCUMENTS = frozenset(
    {ProofType.HOUSEHOLD_REGISTER, ProofType.BIRTH_CERTIFICATE, ProofType.KINSHIP_CERTIFICATE}
)
ACCEPTED_PROOFS: Mapping[Relationship, frozenset[ProofType]] = {
    Relationship.SPOUSE: frozenset({ProofType.MARRIAGE_CERTIFICATE, ProofType.HOUSEHOLD_REGISTER}),
    **{relationship: _FAMILY_DOCUMENTS for relationship in Relationship if relationship is not Relationship.SPOUSE},
}
# Documents the registry can check against civil-affairs and household data.
AUTOMATICALLY_CHECKABLE: frozenset[ProofType] = frozenset(
    {ProofType.MARRIAGE_CERTIFICATE, ProofType.HOUSEHOLD_REGISTER, ProofType.BIRTH_CERTIFICATE}
)


def in_scope(relationship: Relationship, scope: RelationshipScope) -> bool:
    return relationship in RELATIONSHIPS_IN_SCOPE[scope]


def accepted_proofs(relationship: Relationship, presented: set[ProofType]) -> set[ProofType]:
    return presented & ACCEPTED_PROOFS[relationship]
