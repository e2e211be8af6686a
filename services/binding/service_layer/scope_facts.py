"""What the access policy's scopes may ask the binding service: where a person, or the
two parties of a binding, are insured. Read before the call runs, without a transaction."""

from __future__ import annotations

from services.binding.service_layer.unit_of_work import BindingUnitOfWork
from services.common.runner import UseCaseRunner
from services.common.security.scopes import SettlementOwner
from shared.errors import DomainError
from shared.identity import validate_id_number


class BindingScopeFacts:
    provided = frozenset({"person_regions", "binding_regions"})

    def __init__(self, runner: UseCaseRunner[BindingUnitOfWork]) -> None:
        self._run = runner

    async def person_regions(self, id_number: str) -> frozenset[str]:
        try:
            number = validate_id_number(id_number)
        except DomainError:
            return frozenset()  # the handler refuses the number itself
        person = await self._run.query(lambda uow: uow.persons.get(number), snapshot=False)
        return frozenset({person.admdvs}) if person else frozenset()

    async def binding_regions(self, binding_id: str) -> frozenset[str]:
        if not binding_id.isprintable():
            return frozenset()  # no binding's id: the handler refuses it itself, naming the field
        binding = await self._run.query(lambda uow: uow.bindings.get(binding_id), snapshot=False)
        return frozenset({binding.grantor_admdvs, binding.beneficiary_admdvs}) if binding else frozenset()

    async def settlement_owner(self, settlement_id: str) -> SettlementOwner | None:
        raise NotImplementedError("the binding service keeps no settlements")

    async def participant_coordinator(self, transaction_id: str) -> str | None:
        raise NotImplementedError("the binding service takes part in no cross-node transactions")
