"""What the access policy's scopes may ask a payment node: where a person's accounts
here are kept (or, for a person with none here yet, where the registry says the person is
insured), which institution a settlement belongs to, which node coordinates a
transaction this node takes part in (remembered once known: it never changes). Read before the
call runs, without a transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.common.runner import UseCaseRunner
from services.common.security.scopes import SettlementOwner
from services.payment.service_layer.coordinator_memory import CoordinatorMemory
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError
from shared.identity import validate_id_number
from shared.ledger import personal_account, wallet


class PaymentScopeFacts:
    provided = frozenset({"person_regions", "settlement_owner", "participant_coordinator"})

    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        coordinators: CoordinatorMemory | None = None,
        registry_region: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._run = runner
        self._coordinators = coordinators or CoordinatorMemory()
        self._registry_region = registry_region

    async def person_regions(self, id_number: str) -> frozenset[str]:
        try:
            number = validate_id_number(id_number)
        except DomainError:
            return frozenset()  # the handler refuses the number itself

        def read(uow: PaymentUnitOfWork) -> frozenset[str]:
            accounts = (uow.accounts.get(personal_account(number)), uow.accounts.get(wallet(number)))
            return frozenset(account.admdvs for account in accounts if account is not None)

        kept = await self._run.query(read, snapshot=False)
        if kept or self._registry_region is None:
            return kept
        # No account here yet: an operator of another region must not open one, or suspend the
        # person, by naming a region of its own.
        region = await self._registry_region(number)
        return frozenset({region}) if region else frozenset()

    async def binding_regions(self, binding_id: str) -> frozenset[str]:
        raise NotImplementedError("payment nodes keep no bindings")

    async def settlement_owner(self, settlement_id: str) -> SettlementOwner | None:
        if not settlement_id.isprintable():
            return None  # no settlement's id: the handler refuses it itself, naming the field
        row = await self._run.query(lambda uow: uow.settlements.owner(settlement_id), snapshot=False)
        return None if row is None else SettlementOwner(*row)

    async def participant_coordinator(self, transaction_id: str) -> str | None:
        if not transaction_id.isprintable():
            return None  # no coordinator's id: the handler refuses it itself, naming the field
        known = self._coordinators.province_of(transaction_id)
        if known is not None:
            return known
        found = await self._run.query(lambda uow: uow.participants.coordinator_of(transaction_id), snapshot=False)
        if found is not None:
            self._coordinators.remember([(transaction_id, found)])
        return found
