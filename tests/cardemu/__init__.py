"""Virtual vpcd card for tests: a re-export of `doorpi.sim.vpcd_card`.

The code lives in the package so the demo can use it as well::

    from cardemu import VirtualCard
    VirtualCard(bytes.fromhex("04A1B2C3")).tap(1.2)
"""

from doorpi.sim.vpcd_card import (
    ACR122U_MIFARE_ATR,
    BROKEN_MODES,
    DEFAULT_PORT,
    VPCD_PORTS,
    CardLog,
    VirtualCard,
    broken_handler,
    uid_handler,
)

__all__ = [
    "ACR122U_MIFARE_ATR",
    "BROKEN_MODES",
    "DEFAULT_PORT",
    "VPCD_PORTS",
    "CardLog",
    "VirtualCard",
    "broken_handler",
    "uid_handler",
]
