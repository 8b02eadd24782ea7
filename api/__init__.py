"""The geo-usm web API: a build served as OGC API - Features.

Make an app with :func:`api.main.create_app`; settings come from :class:`api.settings.Settings`
(``USM_*`` environment variables).
"""
