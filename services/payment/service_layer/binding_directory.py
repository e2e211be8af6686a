"""What the payment service needs to know from the binding service, as a port: who may pay
a bill, whether a binding links a grantor to a beneficiary, and the region's policy figures
a payment applies (the impersonation threshold, the wallet limits), and what the registry says of
a person a personal account is opened for. The gRPC adapter is
services.payment.adapters.binding_client; a node asks it before it applies what a peer
node asks of it, rather than taking the peer's word."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from services.payment.service_layer.accounts import RegisteredPerson
from services.payment.service_layer.settlements import Payers
from shared.errors import DomainError, Reason
from shared.policy import UseCategory


@dataclass(frozen=True)
class PayerQuery:
    """One bill as payer resolution sees it."""

    patient_id_number: str
    use_category: UseCategory
    institution_admdvs: str
    chronic_disease: bool
    at: datetime


@dataclass(frozen=True)
class WalletLimits:
    """How many transfers a grantor may make a day, and the most one may carry (None: no limit);
    and the balance the region makes a grantor keep (e.g. Lhasa's 3,000 yuan)."""

    transfers_per_day: int | None
    max_fen: int | None
    min_grantor_balance_fen: int = 0


@dataclass(frozen=True)
class BoundPair:
    binding_id: str
    grantor_id_number: str
    beneficiary_id_number: str
    active: bool
    grantor_admdvs: str
    beneficiary_admdvs: str


class PayerReads(Protocol):
    """Payer reads of one settlement attempt. Open while the attempt runs, so a payer change
    announced meanwhile waits for the attempt to finish before it is acknowledged."""

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        """As BindingDirectory.payers, perhaps answered from what the node keeps."""
        ...

    def still_current(self) -> bool:
        """False when a payer change was announced since the attempt began, or the payers it
        read came from kept answers whose lease has run out: then it must not commit. Safe to
        call from a worker thread."""
        ...


# Tries of one settlement or prepare while payer changes keep being announced.
ATTEMPTS = 3
T = TypeVar("T")


class PayersChanged(Exception):
    """A payer change was announced while an attempt ran; it must not commit."""


def require_current(reads: PayerReads) -> None:
    """The last step before a commit that rests on payers read: old payers never commit."""
    if not reads.still_current():
        raise PayersChanged


async def on_current_payers(directory: BindingDirectory, attempt: Callable[[PayerReads], Awaitable[T]]) -> T:
    """Runs `attempt` with fresh payer reads until one commits on payers still current (it calls
    require_current before its commit); SERVER_BUSY when changes keep coming."""
    for _ in range(ATTEMPTS):
        async with directory.settlement_reads() as reads:
            try:
                return await attempt(reads)
            except PayersChanged:
                continue  # nothing was committed; ask afresh
    raise DomainError(
        Reason.SERVER_BUSY, "who may pay kept changing while the bill was settled; retry with the same request_id"
    )


class AskEveryTime:
    """Payer reads that ask the directory every time: nothing kept can go stale."""

    def __init__(self, directory: BindingDirectory) -> None:
        self._directory = directory

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        return await self._directory.payers(query)

    def still_current(self) -> bool:
        return True


class BindingDirectory(Protocol):
    def settlement_reads(self) -> AbstractAsyncContextManager[PayerReads]:
        """Payer reads for one settlement attempt (see PayerReads)."""
        ...

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        """The grants for the bill, or the binding service's refusal (USE_NOT_ALLOWED) as a
        value; an unknown patient has no payers. Unreachable: BINDING_SERVICE_UNAVAILABLE raised."""
        ...

    async def binding(self, binding_id: str) -> BoundPair | None:
        """The binding, or None when there is none. Unreachable: BINDING_SERVICE_UNAVAILABLE raised."""
        ...

    async def active_binding_between(self, grantor_id_number: str, beneficiary_id_number: str) -> BoundPair:
        """The active binding from grantor to beneficiary; BINDING_NOT_ACTIVE raised when there is
        none. Unreachable: BINDING_SERVICE_UNAVAILABLE raised."""
        ...

    async def registered_person(self, id_number: str) -> RegisteredPerson | None:
        """What the registry says of the person; None when it does not know the person.
        Unreachable: BINDING_SERVICE_UNAVAILABLE raised."""
        ...

    async def impersonation_threshold(self, admdvs: str) -> int:
        """How many uses of someone else's credential suspend the holder in the region; the
        national default (3) when the binding service cannot say."""
        ...

    async def wallet_limits(self, admdvs: str) -> WalletLimits:
        """The wallet-transfer limits of the region's policy in force. Unreachable:
        BINDING_SERVICE_UNAVAILABLE raised."""
        ...
