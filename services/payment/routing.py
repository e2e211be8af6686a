"""Which payment node owns which province's accounts.

A deployment lists its nodes in one routing file shared by all of them:

    {"nodes": {"east": {"address": "10.0.0.5:50052", "provinces": ["32", "34"]},
               "west": {"address": "10.0.0.6:50052", "provinces": ["62", "51"]}}}

and each node is told its own name. Without a file a single node owns every
province, and nothing is routed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.common.addresses import check_dial_address
from services.common.security.scopes import NodeDirectory
from shared.errors import DomainError, Reason
from shared.regions import PROVINCES, province_of


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    provinces: frozenset[str]


@dataclass(frozen=True)
class RoutingTable:
    nodes: dict[str, Node]
    local: str

    @classmethod
    def single(cls, name: str = "local", address: str = "") -> RoutingTable:
        return cls({name: Node(name, address, PROVINCES)}, name)

    @classmethod
    def from_dict(cls, data: dict, local: str) -> RoutingTable:
        nodes = {
            name: Node(name, spec["address"], frozenset(str(p) for p in spec["provinces"]))
            for name, spec in data["nodes"].items()
        }
        if local not in nodes:
            raise ValueError(f"this node {local!r} is not in the routing table {sorted(nodes)}")
        seen: dict[str, str] = {}
        for node in nodes.values():
            for province in node.provinces:
                if province not in PROVINCES:
                    raise ValueError(f"node {node.name} lists {province!r}, which is not a province code")
                if province in seen:
                    raise ValueError(f"province {province} is owned by both {seen[province]} and {node.name}")
                seen[province] = node.name
        return cls(nodes, local)

    @classmethod
    def load(cls, path: Path, local: str | None = None) -> RoutingTable:
        """The table of a routing file as node `local` sees it (None: its first node, for a service
        that is none of them); a file that cannot serve is a ValueError naming it."""
        data = _routing_file(path)
        try:
            return cls.from_dict(data, local if local is not None else next(iter(data["nodes"])))
        except ValueError as error:
            raise ValueError(f"routing file {path}: {error}") from None

    @property
    def me(self) -> Node:
        return self.nodes[self.local]

    def owner_of_province(self, province: str) -> Node:
        for node in self.nodes.values():
            if province in node.provinces:
                return node
        raise DomainError(
            Reason.PROVINCE_UNREACHABLE,
            f"no payment node owns province {province}",
            metadata={"province": province},
        )

    def owner_of(self, admdvs: str) -> Node:
        return self.owner_of_province(province_of(admdvs))

    def is_local(self, admdvs: str) -> bool:
        return province_of(admdvs) in self.me.provinces

    @property
    def distributed(self) -> bool:
        return len(self.nodes) > 1

    @property
    def peers(self) -> list[Node]:
        """The other payment nodes, in the routing file's order."""
        return [node for node in self.nodes.values() if node.name != self.local]

    def directory(self) -> NodeDirectory:
        """The nodes a server accepts as callers, with the provinces each may act for."""
        return NodeDirectory({name: node.provinces for name, node in self.nodes.items()}, self.me.provinces)

    @classmethod
    def directory_of_file(cls, path: Path) -> NodeDirectory:
        """The nodes of a routing file, for a service that is none of them (the binding service)."""
        table = cls.load(path)
        return NodeDirectory({name: node.provinces for name, node in table.nodes.items()})


_ROUTING_SHAPE = '{"nodes": {"NAME": {"address": "HOST:PORT", "provinces": ["32", ...]}, ...}}'


def _routing_file(path: Path) -> dict:
    """A routing file's JSON, checked for its shape, so that a mistake in it stops the start with
    a line naming the file and what to write, not a traceback."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"routing file {path}: {error.strerror}") from None
    except ValueError as error:  # not JSON, or not UTF-8
        raise ValueError(f"routing file {path}: not JSON: {error}") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict) or not nodes:
        raise ValueError(f"routing file {path}: give {_ROUTING_SHAPE}")
    for name, spec in nodes.items():
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("address"), str)
            and spec["address"]
            and isinstance(spec.get("provinces"), list)
        ):
            raise ValueError(f'routing file {path}: node {name!r} needs an "address" and a list of "provinces"')
        check_dial_address(spec["address"], f"routing file {path}: node {name!r}: address")
    return data
