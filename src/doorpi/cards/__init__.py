"""Credential protocols: how a card proves who it is, over a transmit function."""

from doorpi.cards.uid import (
    GET_UID_APDU,
    CardProtocol,
    CardProtocolError,
    Transmit,
    UidCard,
)

__all__ = ["GET_UID_APDU", "CardProtocol", "CardProtocolError", "Transmit", "UidCard"]
