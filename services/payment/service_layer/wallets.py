"""Use cases on wallets and transfers into them: activating a wallet,
moving money from a grantor's personal account towards a beneficiary's wallet, reading and
completing a transfer, and giving back one the receiving node did not accept by 06:00 the
next day. Each runs inside the unit of work it is given, with every account it touches
locked in sorted order; the caller commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.payment.service_layer import coordination
from services.payment.service_layer.accounts import ensure_clearing
from services.payment.service_layer.ids import new_id
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.ledger import (
    CHINA_STANDARD_TIME,
    Account,
    AccountKind,
    JournalEntry,
    Posting,
    Purpose,
    clearing,
    personal_account,
    wallet,
)
from shared.regions import province_of

TRANSFER_WINDOW_HOURS = range(6, 22)  # none between 22:00 and 06:00 China Standard Time


def unaccepted_refund_time(create_time: datetime) -> datetime:
    """06:00 China Standard Time the day after a transfer: if it is not accepted by then,
    it goes back to its sender."""
    local = create_time.astimezone(CHINA_STANDARD_TIME) + timedelta(days=1)
    return local.replace(hour=TRANSFER_WINDOW_HOURS.start, minute=0, second=0, microsecond=0)


def is_due_back(create_time: datetime, now: datetime) -> bool:
    """Whether a transfer made at `create_time` and still not accepted goes back to its sender at `now`."""
    return now >= unaccepted_refund_time(create_time)


def refund_unaccepted_transfer(uow: PaymentUnitOfWork, transfer_id: str, now: datetime) -> bool:
    """Gives a transfer the receiving node declined back to the grantor's account and closes its saga.

    Call it only after the receiving node promised never to credit it.
    """
    row = uow.transfers.get(transfer_id, for_update=True)
    if row is None or row.state != "PENDING":
        return False
    source = personal_account(row.grantor_id_number)
    locked = uow.accounts.lock([source])
    owed_by_grantor_side = clearing(row.source_province, row.target_province)
    entry = JournalEntry(
        new_id(), now, Purpose.REFUND,
        (Posting(owed_by_grantor_side, -row.amount_fen, row.beneficiary_id_number, row.binding_id),
         Posting(source, row.amount_fen, row.beneficiary_id_number, row.binding_id)),
        transfer_id=transfer_id, memo="wallet transfer not accepted by 06:00 the next day; back to its sender",
    )  # fmt: skip
    uow.journal.record(entry, locked)
    uow.accounts.save_amounts(list(locked.values()))
    uow.transfers.set_state(transfer_id, "REFUNDED", now)
    saga = uow.node_transactions.get(transfer_id, for_update=True)
    if saga is not None:
        saga.state = coordination.ABORTED
        uow.node_transactions.save(saga, now)
    return True


@dataclass(frozen=True)
class TransferOrder:
    transfer_id: str
    request_id: str
    grantor_id_number: str
    beneficiary_id_number: str
    beneficiary_province: str
    binding_id: str
    amount_fen: int
    verification_method: str
    # None: no limit.
    transfers_per_day: int | None
    max_fen: int | None
    # What the grantor's region makes a grantor keep in the personal account.
    min_grantor_balance_fen: int = 0


def activate_wallet(uow: PaymentUnitOfWork, id_number: str, admdvs: str, now: datetime) -> Account:
    uow.accounts.ensure(Account(wallet(id_number), AccountKind.WALLET, id_number, admdvs), now)
    account = uow.accounts.get(wallet(id_number))
    assert account is not None
    return account


def transfer_to_wallet(uow: PaymentUnitOfWork, order: TransferOrder, wallet_is_local: bool, now: datetime) -> Any:
    """Moves money from the grantor's personal account towards the beneficiary's wallet.

    Local wallets are credited in the same transaction; a wallet on another node
    is credited by that node, driven by a TRANSFER saga written here.
    """
    local_time = now.astimezone(CHINA_STANDARD_TIME)
    if local_time.hour not in TRANSFER_WINDOW_HOURS:
        raise DomainError(Reason.TRANSFER_NOT_ALLOWED_NOW, "wallet transfers are closed between 22:00 and 06:00")
    if order.max_fen is not None and order.amount_fen > order.max_fen:
        raise DomainError(
            Reason.TRANSFER_LIMIT_REACHED,
            f"one transfer may carry at most {order.max_fen} fen",
            field="amount_fen",
            metadata={"max_fen": str(order.max_fen)},
        )
    source = personal_account(order.grantor_id_number)
    locked = uow.accounts.lock([source, wallet(order.beneficiary_id_number)] if wallet_is_local else [source])
    if uow.transfers.pending_of_grantor(order.grantor_id_number):
        raise DomainError(Reason.TRANSFER_PENDING, "an earlier transfer is not accepted yet; wait for it")
    day_start = local_time.replace(hour=0, minute=0, second=0, microsecond=0)
    if order.transfers_per_day is not None and len(
        uow.transfers.of_grantor_since(order.grantor_id_number, day_start)
    ) >= (order.transfers_per_day):
        raise DomainError(
            Reason.TRANSFER_LIMIT_REACHED,
            f"at most {order.transfers_per_day} transfers a day",
            metadata={"transfers_per_day": str(order.transfers_per_day)},
        )
    account = locked.get(source)
    available = account.available_fen if account else 0
    if available - order.min_grantor_balance_fen < order.amount_fen:
        keep = f", of which the region makes the grantor keep {order.min_grantor_balance_fen}"
        raise DomainError(
            Reason.INSUFFICIENT_FUNDS,
            f"the personal account has {available} fen available{keep if order.min_grantor_balance_fen else ''}",
            metadata={"available_fen": str(available), "min_grantor_balance_fen": str(order.min_grantor_balance_fen)},
        )
    target = locked.get(wallet(order.beneficiary_id_number)) if wallet_is_local else None
    if wallet_is_local and target is None:
        raise DomainError(
            Reason.WALLET_NOT_ACTIVATED, "the beneficiary's wallet is not activated", field="beneficiary_id_number"
        )
    grantor_province = province_of(account.admdvs)
    postings = [Posting(source, -order.amount_fen, order.beneficiary_id_number, order.binding_id)]
    if grantor_province != order.beneficiary_province:
        grantor_owes = ensure_clearing(uow, grantor_province, order.beneficiary_province, now)
        postings.append(Posting(grantor_owes, order.amount_fen))
    if target is not None:
        if grantor_province != order.beneficiary_province:
            beneficiary_is_owed = ensure_clearing(uow, order.beneficiary_province, grantor_province, now)
            postings.append(Posting(beneficiary_is_owed, -order.amount_fen))
        postings.append(Posting(target.account_id, order.amount_fen, order.grantor_id_number, order.binding_id))
    entry = JournalEntry(new_id(), now, Purpose.WALLET_TRANSFER_OUT, tuple(postings), transfer_id=order.transfer_id)
    uow.journal.record(entry, locked)
    uow.accounts.save_amounts(list(locked.values()))
    uow.transfers.add(
        {
            "transfer_id": order.transfer_id, "request_id": order.request_id,
            "grantor_id_number": order.grantor_id_number, "beneficiary_id_number": order.beneficiary_id_number,
            "binding_id": order.binding_id, "amount_fen": order.amount_fen,
            "state": "COMPLETED" if target is not None else "PENDING",
            "source_province": grantor_province, "target_province": order.beneficiary_province,
            "verification_method": order.verification_method, "create_time": now,
            "complete_time": now if target is not None else None,
        }
    )  # fmt: skip
    if target is None:
        coordination.begin(
            uow, order.transfer_id, "TRANSFER",
            {order.beneficiary_province: [{"leg_no": 1, "payer_id_number": order.grantor_id_number,
                                           "beneficiary_id_number": order.beneficiary_id_number,
                                           "binding_id": order.binding_id, "amount_fen": order.amount_fen}]},
            grantor_province, order.beneficiary_id_number, "", now, now,
        )  # fmt: skip
        txn = uow.node_transactions.get(order.transfer_id, for_update=True)
        assert txn is not None
        txn.state = coordination.COMMITTING
        uow.node_transactions.save(txn, now)
    return uow.transfers.get(order.transfer_id)


def complete_transfer(uow: PaymentUnitOfWork, transfer_id: str, now: datetime) -> None:
    uow.transfers.set_state(transfer_id, "COMPLETED", now)


def get_transfer(uow: PaymentUnitOfWork, transfer_id: str) -> Any:
    row = uow.transfers.get(transfer_id)
    if row is None:
        raise DomainError(Reason.TRANSFER_NOT_FOUND, f"no transfer {transfer_id} on this node", field="transfer_id")
    return row
