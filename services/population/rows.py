"""The rows of a populated database, as the services themselves would write them, in
PostgreSQL's COPY text format (tab-separated, \\N for NULL).

People come in families of three, as the benchmark registers them (services/benchmark/
families.py): two employee grantors with personal accounts, one resident child, both
bindings ACTIVE and a PROPORTIONAL payer order. Persons left over (N not a multiple of 3)
are single employees. Every personal account opens with an ADJUSTMENT credit ("opening
balance", as CreditAccount writes one); an active family also has a monthly contribution
credit per month of the history and a few of the child's outpatient bills, settled and
captured in one step as Settle does (two MUTUAL_AID legs, a balanced SETTLEMENT entry, the
bindings' usage counted). No value here contains a tab, newline or backslash, so nothing
needs escaping.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.china_time import CHINA_STANDARD_TIME
from shared.deduction import Capacity, PaymentSource, split_bill
from shared.identity import compose_id_number, validate_id_number
from shared.ledger import CONTRIBUTIONS_ACCOUNT, personal_account, receivable, year_of
from shared.payers import PayerMode

# One pooling region per province: its capital's code, and a district of it as the area of
# the ID numbers (GB 11643: the place of first registration). Checked by validate_id_number.
# Each code has been in use from 1950 to today (shared.identity refuses a number whose area code did not
# exist in its holder's birth year or later): 140102, 310102, 460102, 510102 and 640102 were retired before
# 2000, 440102 in 2005, and would refuse the children (born from 2000 on), so Taiyuan, Shanghai, Guangzhou,
# Haikou, Chengdu and Yinchuan take another district.
AREAS = (
    "110102", "120102", "130102", "140105", "150102", "210102", "220102", "230102", "310101", "320102", "330102",
    "340102", "350102", "360102", "370102", "410102", "420102", "430102", "440104", "450102", "460105", "500102",
    "510104", "520102", "530102", "540102", "610102", "620102", "630102", "640104", "650102",
)  # fmt: skip
INSTITUTIONS_PER_REGION = 8  # H{admdvs}01 … H{admdvs}08, as the benchmark names its hospitals
CONSENT_VERSION = "notice-2025-01"
CHANNEL = "NATIONAL_APP"
# 1,000–20,000 yuan before the history starts; 150–600 yuan a month for the active.
OPENING_FEN = (100_000, 2_000_000)
MONTHLY_FEN = (15_000, 60_000)
BILL_FEN = (200, 3_000)  # the child's outpatient self-pay share, as the benchmark bills
BILLS_PER_ACTIVE_FAMILY = (1, 6)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英")

TABLES = {
    "binding": {
        "insured_persons": ("id_number", "name", "insurance_type", "status", "admdvs", "phone", "address",
                            "has_personal_account", "contact_change_time", "update_time"),
        "bindings": ("binding_id", "grantor_id_number", "beneficiary_id_number", "relationship", "state", "share_all",
                     "yearly_cap_fen", "channel", "consent_version", "consent_time", "create_time", "update_time",
                     "end_time", "end_reason", "ended_by", "end_comment", "grantor_admdvs", "beneficiary_admdvs",
                     "policy_version", "proofs", "beneficiary_sequence"),
        "binding_events": ("binding_id", "event_type", "actor", "actor_id", "channel", "time", "state_after",
                           "comment", "request_id"),
        "payer_orders": ("beneficiary_id_number", "mode", "binding_ids", "update_time"),
    },
    "payment": {
        "accounts": ("account_id", "kind", "owner", "admdvs", "balance_fen", "held_fen", "create_time"),
        "journal_entries": ("entry_id", "time", "purpose", "settlement_id", "transfer_id", "institution_code",
                            "request_id", "memo"),
        "postings": ("entry_id", "account_id", "amount_fen", "balance_after_fen", "counterpart_id_number",
                     "binding_id", "time"),
        "settlements": ("settlement_id", "request_id", "state", "patient_id_number", "institution_code",
                        "institution_admdvs", "institution_settlement_id", "use_category", "self_pay_fen",
                        "chronic_disease", "use_own_account", "refuse_cash_part", "credential_type",
                        "credential_holder", "cash_pay_fen", "captured_fen", "refunded_fen", "policy_version",
                        "create_time", "expire_time", "capture_time", "close_time", "passed_over", "one_step"),
        "settlement_legs": ("settlement_id", "leg_no", "payer_id_number", "account_id", "source", "binding_id",
                            "amount_fen", "captured_fen", "refunded_fen", "policy_version", "payer_admdvs",
                            "payer_balance_after_fen", "province"),
        "binding_usage": ("binding_id", "year", "grantor_id_number", "beneficiary_id_number", "shared_fen",
                          "held_fen"),
    },
}  # fmt: skip
# The payment service's default hold (PaymentSettings.default_hold): a Settle writes expire_time = now + it.
DEFAULT_HOLD = timedelta(minutes=15)


def id_number(area: str, birth: datetime, sequence: int) -> str:
    """A valid 18-digit resident ID number, as families.py makes them."""
    return compose_id_number(area, birth.date(), sequence)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(sep=" ")


def _line(*values: object) -> str:
    return "\t".join("\\N" if v is None else ("t" if v is True else "f" if v is False else str(v)) for v in values)


@dataclass
class Batch:
    """Lines per table (each ending in a newline) and how many persons they hold."""

    lines: dict[str, list[str]] = field(default_factory=lambda: {t: [] for s in TABLES.values() for t in s})
    persons: int = 0

    def add(self, table: str, *values: object) -> None:
        self.lines[table].append(_line(*values) + "\n")

    @property
    def rows(self) -> int:
        return sum(len(found) for found in self.lines.values())


PolicyVersion = Callable[[str, datetime], str]


class Generator:
    """Persons, families and their money, deterministic for a seed. `policy_version(admdvs, at)`
    names the policy the binding service would cite for a region at a moment."""

    def __init__(
        self, persons: int, seed: int, active_share: float, history_days: int, now: datetime,
        policy_version: PolicyVersion,
    ) -> None:  # fmt: skip
        self.persons = persons
        self.families = persons // 3
        self.singles = persons - 3 * self.families
        self.active_share = active_share
        self.now = now.astimezone(UTC)
        self.start = self.now - timedelta(days=history_days)
        self.months = max(1, round(history_days / 30.44))
        self.policy_version = policy_version
        self.rng = random.Random(seed)
        self.institutions: dict[str, str] = {}  # receivable account → institution admdvs
        self.counts = {"families": 0, "active_families": 0, "settlements": 0}

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _name(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    def _phone(self) -> str:
        return f"138{self.rng.randrange(100_000_000):08d}"

    def people_of_family(self, number: int, area: str) -> tuple[str, str, str]:
        """Mother, father and child of family `number`: unique as (birth date, sequence) is."""
        parents = datetime(1960, 1, 1) + timedelta(days=(2 * number) // 1000)
        mother = id_number(area, parents, (2 * number) % 1000)
        father_birth = datetime(1960, 1, 1) + timedelta(days=(2 * number + 1) // 1000)
        father = id_number(area, father_birth, (2 * number + 1) % 1000)
        child = id_number(area, datetime(2000, 1, 1) + timedelta(days=number // 1000), number % 1000)
        return mother, father, child

    def batches(self, families_per_batch: int) -> list[tuple[int, int]]:
        """(first family, end family) ranges; the singles ride with the last batch."""
        edges = [*range(0, self.families, families_per_batch), self.families]
        ranges = list(itertools.pairwise(edges))
        return ranges or [(0, 0)]

    def batch(self, first: int, end: int, last: bool) -> Batch:
        out = Batch()
        for number in range(first, end):
            self._family(out, number)
        if last:
            for single in range(self.singles):
                self._single(out, single)
            self._fixed_accounts(out)
        return out

    # ------------------------------------------------------------------ people and bindings

    def _person(self, out: Batch, who: str, admdvs: str, resident: bool, at: datetime) -> None:
        out.add(
            "insured_persons", who, self._name(), "RESIDENT" if resident else "EMPLOYEE", "NORMAL", admdvs,
            self._phone(), "", not resident, None, _ts(at),
        )  # fmt: skip
        out.persons += 1

    def _registered_at(self) -> datetime:
        return self.start - timedelta(days=60) + timedelta(seconds=self.rng.randrange(30 * 86_400))

    def _family(self, out: Batch, number: int) -> None:
        area = self.rng.choice(AREAS)
        admdvs = area[:4] + "00"
        mother, father, child = self.people_of_family(number, area)
        registered = self._registered_at()
        for who, resident in ((mother, False), (father, False), (child, True)):
            self._person(out, who, admdvs, resident, registered)
        bound = registered + timedelta(minutes=1)
        binding_ids = []
        for sequence, grantor in enumerate((mother, father), start=1):
            binding_id = self._uuid()
            binding_ids.append(binding_id)
            at = _ts(bound)
            proofs = json.dumps([{"type": "BIRTH_CERTIFICATE", "document_ref": f"birth-{number}"}])
            out.add(
                "bindings", binding_id, grantor, child, "CHILD", "ACTIVE", True, 0, CHANNEL, CONSENT_VERSION,
                at, at, at, None, None, None, "", admdvs, admdvs, self.policy_version(admdvs, bound), proofs, sequence,
            )  # fmt: skip
            out.add(
                "binding_events", binding_id, "CREATED", "GRANTOR", grantor, CHANNEL, at, "ACTIVE",
                f"consent {CONSENT_VERSION}", self._uuid(),
            )  # fmt: skip
        out.add("payer_orders", child, "PROPORTIONAL", json.dumps(binding_ids), _ts(bound + timedelta(minutes=1)))
        self.counts["families"] += 1
        active = self.rng.random() < self.active_share
        self.counts["active_families"] += active
        opened = registered + timedelta(days=1)
        ledger = _Ledger(self, out, admdvs)
        for grantor in (mother, father):
            ledger.open(grantor, opened, self.rng.randint(*OPENING_FEN))
        if not active:
            ledger.close()
            return
        events: list[tuple[datetime, int, str]] = []
        for grantor in (mother, father):
            monthly = self.rng.randint(*MONTHLY_FEN) // 100 * 100
            for month in range(self.months):
                events.append((self._month_start(month), 0, grantor))
                ledger.monthly[grantor] = monthly
        for _ in range(self.rng.randint(*BILLS_PER_ACTIVE_FAMILY)):
            at = self.start + timedelta(seconds=self.rng.randrange(int((self.now - self.start).total_seconds())))
            events.append((at, 1, ""))
        for at, kind, grantor in sorted(events):
            if kind == 0:
                ledger.contribution(grantor, at)
            else:
                ledger.settle(child, (mother, father), binding_ids, at)
        ledger.close()

    def _month_start(self, month: int) -> datetime:
        """The moment of the month's contribution credit: spread over the history, 02:00 China time."""
        day = self.start + (self.now - self.start) * (month + 0.5) / self.months
        local = day.astimezone(CHINA_STANDARD_TIME).replace(hour=2, minute=0, second=0, microsecond=0)
        return local.astimezone(UTC) + timedelta(seconds=self.rng.randrange(3_600))

    def _single(self, out: Batch, number: int) -> None:
        area = self.rng.choice(AREAS)
        admdvs = area[:4] + "00"
        who = id_number(area, datetime(1950, 1, 1) + timedelta(days=number // 1000), number % 1000)
        registered = self._registered_at()
        self._person(out, who, admdvs, False, registered)
        ledger = _Ledger(self, out, admdvs)
        ledger.open(who, registered + timedelta(days=1), self.rng.randint(*OPENING_FEN))
        ledger.close()

    def _fixed_accounts(self, out: Batch) -> None:
        """The contributions source and the receivables of the institutions that were paid: untracked
        accounts whose row keeps balance 0 (their balance is the sum of their postings)."""
        out.add("accounts", CONTRIBUTIONS_ACCOUNT, "EXTERNAL_CONTRIBUTIONS", "*", "000000", 0, 0, _ts(self.start))
        for account, admdvs in sorted(self.institutions.items()):
            code = account.split(":", 1)[1]
            out.add("accounts", account, "INSTITUTION_RECEIVABLE", code, admdvs, 0, 0, _ts(self.start))


class _Ledger:
    """One family's personal accounts and journal, written in time order so that each account's
    postings rise with posting_id as the services' would."""

    def __init__(self, generator: Generator, out: Batch, admdvs: str) -> None:
        self.g = generator
        self.out = out
        self.admdvs = admdvs
        self.balance: dict[str, int] = {}
        self.created: dict[str, datetime] = {}
        self.monthly: dict[str, int] = {}
        self.usage: dict[tuple[str, int], list[object]] = {}

    def _entry(self, at: datetime, purpose: str, request_id: str, memo: str, settlement: str = "",
               institution: str = "") -> str:  # fmt: skip
        entry_id = self.g._uuid()
        self.out.add("journal_entries", entry_id, _ts(at), purpose, settlement, "", institution, request_id, memo)
        return entry_id

    def _credit(self, who: str, at: datetime, amount: int, purpose: str, memo: str) -> None:
        account = personal_account(who)
        entry = self._entry(at, purpose, self.g._uuid(), memo)
        self.balance[account] = self.balance.get(account, 0) + amount
        self.out.add("postings", entry, CONTRIBUTIONS_ACCOUNT, -amount, 0, "", "", _ts(at))
        self.out.add("postings", entry, account, amount, self.balance[account], "", "", _ts(at))

    def open(self, who: str, at: datetime, amount: int) -> None:
        self.created[personal_account(who)] = at
        self._credit(who, at, amount, "ADJUSTMENT", "opening balance")

    def contribution(self, who: str, at: datetime) -> None:
        period = at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m")
        self._credit(who, at, self.monthly[who], "MONTHLY_CONTRIBUTION", f"contribution {period}")

    def settle(self, child: str, grantors: tuple[str, str], binding_ids: list[str], at: datetime) -> None:
        """A captured Settle of the child's outpatient bill: settlement, legs, entry, usage."""
        g, rng = self.g, self.g.rng
        code = f"H{self.admdvs}{rng.randint(1, INSTITUTIONS_PER_REGION):02d}"
        institution = receivable(code)
        g.institutions[institution] = self.admdvs
        self_pay = rng.randint(*BILL_FEN)
        versions = [g.policy_version(self.admdvs, at) for _ in grantors]
        grants = [
            Capacity(grantor, PaymentSource.MUTUAL_AID, self.balance[personal_account(grantor)], binding_id, version)
            for grantor, binding_id, version in zip(grantors, binding_ids, versions, strict=True)
        ]
        split = split_bill(self_pay, (), grants, PayerMode.PROPORTIONAL)
        settlement_id, request_id = g._uuid(), g._uuid()
        entry = self._entry(at, "SETTLEMENT", request_id, "", settlement_id, code)
        stamp = _ts(at)
        for number, leg in enumerate(split.legs, start=1):
            account = personal_account(leg.payer_id_number)
            self.balance[account] -= leg.amount_fen
            self.out.add(
                "postings", entry, account, -leg.amount_fen, self.balance[account], child, leg.binding_id, stamp
            )
            self.out.add("postings", entry, institution, leg.amount_fen, 0, leg.payer_id_number, leg.binding_id, stamp)
            self.out.add(
                "settlement_legs", settlement_id, number, leg.payer_id_number, account, "MUTUAL_AID", leg.binding_id,
                leg.amount_fen, leg.amount_fen, 0, leg.policy_version, self.admdvs, self.balance[account], "",
            )  # fmt: skip
            usage = self.usage.setdefault((leg.binding_id, year_of(at)), [leg.payer_id_number, child, 0])
            usage[2] += leg.amount_fen  # type: ignore[operator]
        captured = self_pay - split.cash_fen
        self.out.add(
            "settlements", settlement_id, request_id, "CAPTURED", child, code, self.admdvs, "", "OUTPATIENT", self_pay,
            False, False, False, "CARD", child, split.cash_fen, captured, 0, g.policy_version(self.admdvs, at), stamp,
            _ts(at + DEFAULT_HOLD), stamp, None, "[]", True,
        )  # fmt: skip
        g.counts["settlements"] += 1

    def close(self) -> None:
        for account, balance in self.balance.items():
            owner = account.split(":", 1)[1]
            self.out.add(
                "accounts", account, "PERSONAL_ACCOUNT", owner, self.admdvs, balance, 0, _ts(self.created[account])
            )
        for (binding_id, year), (grantor, beneficiary, shared) in sorted(self.usage.items()):
            self.out.add("binding_usage", binding_id, year, grantor, beneficiary, shared, 0)


def check_sample(generator: Generator) -> None:
    """ID numbers the generator makes pass the services' own validation: the first and the last
    family's people (the earliest and latest birth dates) in every area."""
    for number in (0, max(0, generator.families - 1)):
        for area in AREAS:
            for who in generator.people_of_family(number, area):
                validate_id_number(who, today=generator.now.date())
