"""Admin sync over USB: signed, sealed, rollback-proof bundles and signed reports.

keys (gate identity, site key, fingerprints), roster (the admin's TOML file),
bundle (format, sealing, strict parser), importer (gate side, all or nothing),
report (the gate's signed answer), admin (laptop side: gates, sequence, bundles).
"""
