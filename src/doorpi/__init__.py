"""doorpi: a door controller where card and PIN always work and face is opt-in."""

__version__ = "0.1.0"
