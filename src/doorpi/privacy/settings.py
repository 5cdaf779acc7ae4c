"""The privacy keys of the ``[face]`` config table, validated.

`FaceConfig.settings` is a free dict; `privacy_settings` checks the keys this
package owns and returns typed values, raising `ValueError` with one line
naming the key (the config loader turns it into a `ConfigError`). Keys that
belong to the face pipeline (thresholds, camera) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from doorpi.privacy.notices import LANGS, NoticeDetails, NoticeError, check_fact

DEFAULT_CAPTURE_ZONE = {
    "en": "the marked square on the ground, 0.5 to 1 m in front of the gate camera",
    "zh": "门禁摄像头前方 0.5 至 1 米地面上标出的方框内",
}

#: MFR Art. 15: operators holding face data of 100,000 people must file.
FILING_THRESHOLD = 100_000

#: Keys of ``[face]`` owned by doorpi.privacy.
PRIVACY_KEYS = frozenset(
    {
        "retention_days",
        "max_retention_days",
        "template_storage",
        "capture_zone",
        "count_warning",
        "notice_lang",
        "allow_site_sharing",
        "spoken_prompts",
    }
)


@dataclass(frozen=True)
class PrivacySettings:
    """What the privacy side needs from the config."""

    retention_days: int = 365
    max_retention_days: int = 1095
    template_storage: str = "device"  # "device" or "card" (the device keeps none)
    capture_zone: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPTURE_ZONE))
    count_warning: int = 90_000
    notice_lang: str = "zh"
    allow_site_sharing: bool = False
    trigger: str = "on_request"  # face.trigger (config), so the notices say when the camera looks
    spoken_prompts: bool = False  # read each face-menu step aloud (espeak-ng, aplay)

    def notice_details(
        self, site: str, controller: str, contact: str, lang: str, retention_days: int | None = None
    ) -> NoticeDetails:
        return NoticeDetails(
            site=site,
            controller=controller,
            contact=contact,
            retention_days=retention_days or self.retention_days,
            capture_zone=self.capture_zone.get(lang, DEFAULT_CAPTURE_ZONE[lang]),
            trigger=self.trigger,
        )


def _int(settings: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = settings.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"face.{key}: must be a whole number from {lo} to {hi}, got {v!r}")
    return v


def privacy_settings(settings: dict[str, Any]) -> PrivacySettings:
    """Validate the privacy keys of ``[face]`` (others are ignored)."""
    d = PrivacySettings()
    max_days = _int(settings, "max_retention_days", d.max_retention_days, 1, 1825)
    days = _int(settings, "retention_days", d.retention_days, 1, 1825)
    if days > max_days:
        raise ValueError(f"face.retention_days: must not exceed max_retention_days ({max_days})")
    storage = settings.get("template_storage", d.template_storage)
    if storage not in ("device", "card"):
        raise ValueError(f'face.template_storage: must be "device" or "card", got {storage!r}')
    zone_raw = settings.get("capture_zone")
    zone = dict(DEFAULT_CAPTURE_ZONE)
    if isinstance(zone_raw, str):
        if not zone_raw.strip():
            raise ValueError("face.capture_zone: must describe where the camera looks")
        zone = {lang: zone_raw for lang in LANGS}
    elif isinstance(zone_raw, dict):
        for lang, text in zone_raw.items():
            if lang not in LANGS or not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"face.capture_zone.{lang}: must be a non-empty text, language zh or en"
                )
            zone[lang] = text
    elif zone_raw is not None:
        raise ValueError("face.capture_zone: must be a text or a table {zh = ..., en = ...}")
    for zlang, text in zone.items():  # a place, never terms (law notes B7)
        try:
            zone[zlang] = check_fact("capture_zone", text)
        except NoticeError as exc:
            where = "face.capture_zone" + ("" if isinstance(zone_raw, str) else f".{zlang}")
            raise ValueError(where + str(exc).removeprefix("capture_zone")) from None
    warn = _int(settings, "count_warning", d.count_warning, 100, FILING_THRESHOLD)
    lang = settings.get("notice_lang", d.notice_lang)
    if lang not in LANGS:
        raise ValueError(f'face.notice_lang: must be "zh" or "en", got {lang!r}')
    share = settings.get("allow_site_sharing", d.allow_site_sharing)
    if not isinstance(share, bool):
        raise ValueError(f"face.allow_site_sharing: must be true or false, got {share!r}")
    spoken = settings.get("spoken_prompts", d.spoken_prompts)
    if not isinstance(spoken, bool):
        raise ValueError(f"face.spoken_prompts: must be true or false, got {spoken!r}")
    return PrivacySettings(days, max_days, storage, zone, warn, lang, share,
                           spoken_prompts=spoken)  # fmt: skip


__all__ = ["FILING_THRESHOLD", "PRIVACY_KEYS", "PrivacySettings", "privacy_settings"]
