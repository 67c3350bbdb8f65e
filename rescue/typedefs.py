"""Every typed application key, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

if TYPE_CHECKING:
    from dispatch.guidance.hub import GuidanceHub
    from dispatch.guidance.models import GuidanceConfig
    from dispatch.models import DispatchConfig
    from geo import AedIndex, ServiceArea
    from rescue.aeds.sync import AedSync
    from rescue.auth import Authenticator
    from rescue.bus import Bus
    from rescue.foreground import Foreground
    from rescue.metrics import Metrics
    from rescue.settings import Settings
    from volunteers.channels import PhoneHub

settings_key: web.AppKey[Settings] = web.AppKey("settings")
db_key: web.AppKey[asyncpg.Pool] = web.AppKey("db")
redis_key: web.AppKey[Redis] = web.AppKey("redis")
area_key: web.AppKey[ServiceArea] = web.AppKey("area")
aed_index_key: web.AppKey[AedIndex] = web.AppKey("aed_index")
aed_sync_key: web.AppKey[AedSync] = web.AppKey("aed_sync")
auth_key: web.AppKey[Authenticator] = web.AppKey("auth")
metrics_key: web.AppKey[Metrics] = web.AppKey("metrics")
background_key: web.AppKey[bool] = web.AppKey("background", bool)
bus_key: web.AppKey[Bus] = web.AppKey("bus")
foreground_key: web.AppKey[Foreground] = web.AppKey("foreground")
phone_hub_key: web.AppKey[PhoneHub] = web.AppKey("phone_hub")
dispatch_key: web.AppKey[DispatchConfig] = web.AppKey("dispatch")
guidance_key: web.AppKey[GuidanceConfig] = web.AppKey("guidance")
guidance_hub_key: web.AppKey[GuidanceHub] = web.AppKey("guidance_hub")
