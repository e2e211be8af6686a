"""PayerGrant (shared.payers) to gongji.binding.v1.PayerGrant and back: the binding
service answers with grants, the payment nodes pass them on to each other."""

from __future__ import annotations

from collections.abc import Iterable

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from services.common.converters import enum_to_domain, enum_to_proto
from shared.payers import PayerGrant
from shared.relationships import Relationship


def grant_to_proto(grant: PayerGrant) -> bapi.PayerGrant:
    return bapi.PayerGrant(
        binding_id=grant.binding_id,
        grantor_id_number=grant.grantor_id_number,
        grantor_admdvs=grant.grantor_admdvs,
        relationship=enum_to_proto(common.Relationship, grant.relationship),
        priority=grant.priority,
        share_all=grant.share_all,
        yearly_cap_fen=grant.yearly_cap_fen,
        annual_share_ratio_percent=grant.annual_share_ratio_percent,
        per_use_limit_fen=grant.per_use_limit_fen,
        earmark_shared_amount=grant.earmark_shared_amount,
        min_grantor_balance_fen=grant.min_grantor_balance_fen,
        policy_version=grant.policy_version,
    )


def grants_from_proto(grants: Iterable[bapi.PayerGrant]) -> tuple[PayerGrant, ...]:
    return tuple(
        PayerGrant(
            binding_id=g.binding_id,
            grantor_id_number=g.grantor_id_number,
            grantor_admdvs=g.grantor_admdvs,
            relationship=enum_to_domain(Relationship, common.Relationship, g.relationship, "grants.relationship"),
            priority=g.priority,
            share_all=g.share_all,
            yearly_cap_fen=g.yearly_cap_fen,
            annual_share_ratio_percent=g.annual_share_ratio_percent,
            per_use_limit_fen=g.per_use_limit_fen,
            earmark_shared_amount=g.earmark_shared_amount,
            min_grantor_balance_fen=g.min_grantor_balance_fen,
            policy_version=g.policy_version,
        )
        for g in grants
    )
