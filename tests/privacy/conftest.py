"""Privacy fixtures. Helpers live in privacy_support (a unique module name:
several test folders have a conftest, so `from conftest import` is ambiguous)."""

from privacy_support import alice, cfg_path, clock, privacy, storage, vault  # noqa: F401
