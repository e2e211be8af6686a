"""Verification of wallet transfers by face or QR-code password (医保码 / 刷脸).

The real check belongs to the national platform; gongji asks a Verifier. A deployment
plugs its own in with ``gongji serve payment --verifier package.module:factory``: the
factory is called once with no arguments and returns an object with

    verify(method: str, token: str, id_number: str) -> bool

where method is "FACE" or "QR_PASSWORD", token the opaque proof the front end obtained
from the verification service, and id_number the grantor who must have been verified.
It is called off the event loop, so it may block on a network call; it must answer
False (not raise) for a proof it does not accept.

The stand-in shipped here accepts a token of the form "verified:<id number>:<method>",
which anyone can forge: `gongji serve` runs it only when told ``--verifier stand-in``.
"""

from __future__ import annotations

import importlib
import logging
from typing import Protocol

log = logging.getLogger(__name__)
STAND_IN = "stand-in"


class Verifier(Protocol):
    def verify(self, method: str, token: str, id_number: str) -> bool: ...


class StandInVerifier:
    def verify(self, method: str, token: str, id_number: str) -> bool:
        return token == stand_in_token(id_number, method)


def stand_in_token(id_number: str, method: str) -> str:
    return f"verified:{id_number}:{method}"


def load_verifier(spec: str) -> Verifier:
    """The verifier a `--verifier` value names: "stand-in", or "package.module:factory"."""
    if spec == STAND_IN:
        log.warning("wallet transfers are confirmed by the STAND-IN verifier, which accepts forged tokens: "
                    "tests and demos only")  # fmt: skip
        return StandInVerifier()
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--verifier {spec!r}: give 'stand-in' or 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--verifier {spec!r}: {error}") from None
    except Exception as error:  # the module itself fails as it loads (a SyntaxError, its own settings)
        raise ValueError(
            f"--verifier {spec!r}: importing {module_name} failed: {type(error).__name__}: {error}"
        ) from None
    if not callable(factory):
        raise ValueError(f"--verifier {spec!r}: {attribute} is not a factory to call")
    try:
        verifier = factory()
    except Exception as error:  # the verifier's own settings or services; one line, not a traceback
        raise ValueError(f"--verifier {spec!r}: {attribute}() failed: {type(error).__name__}: {error}") from None
    if not callable(getattr(verifier, "verify", None)):
        raise ValueError(f"--verifier {spec!r}: {attribute}() returned an object without verify(method, token, id)")
    return verifier  # type: ignore[no-any-return]
