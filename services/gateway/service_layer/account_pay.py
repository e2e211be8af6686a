"""What `acct_pay` reports, a rule of the region where the patient is treated.

Public HIS code computes ``psn_cash_pay = psn_part_amt − acct_pay``, so by default acct_pay
is everything the personal accounts paid: the patient's own account (and wallet) plus the
relatives' accounts through mutual aid, which is also reported apart as acct_mulaid_pay. A
region whose HIS reads acct_pay as the patient's own account only sets OWN_ACCOUNT_ONLY."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class AccountPayRule(StrEnum):
    INCLUDES_MUTUAL_AID = "includes-mutual-aid"
    OWN_ACCOUNT_ONLY = "own-account-only"


@dataclass(frozen=True)
class AccountPayRules:
    """The default rule and exceptions by region: a 6-digit pooling region, or a province as
    ``PP0000``; the pooling region's own entry wins over its province's."""

    default: AccountPayRule = AccountPayRule.INCLUDES_MUTUAL_AID
    regions: Mapping[str, AccountPayRule] = field(default_factory=dict)

    def rule_for(self, admdvs: str) -> AccountPayRule:
        if admdvs in self.regions:
            return self.regions[admdvs]
        return self.regions.get(admdvs[:2] + "0000", self.default)

    def acct_pay(self, admdvs: str, own_account_fen: int, mutual_aid_fen: int) -> int:
        if self.rule_for(admdvs) is AccountPayRule.OWN_ACCOUNT_ONLY:
            return own_account_fen
        return own_account_fen + mutual_aid_fen

    @classmethod
    def parse(cls, default: str, regions: list[str]) -> AccountPayRules:
        """From command-line text: a rule name, and ``ADMDVS=RULE`` items; ValueError naming the bad one."""
        names = ", ".join(rule.value for rule in AccountPayRule)

        def rule(text: str) -> AccountPayRule:
            try:
                return AccountPayRule(text)
            except ValueError:
                raise ValueError(f"unknown acct_pay rule {text!r}; use one of {names}") from None

        found: dict[str, AccountPayRule] = {}
        for item in regions:
            admdvs, equals, name = item.partition("=")
            if not equals or len(admdvs) != 6 or not (admdvs.isascii() and admdvs.isdigit()):
                raise ValueError(f"--acct-pay-region {item!r}: give ADMDVS=RULE with a 6-digit region code")
            found[admdvs] = rule(name)
        return cls(rule(default), found)
