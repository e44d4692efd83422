"""Sign-in throttling glue for django-axes: the client address behind a trusted proxy and the lockout answer.

django-axes counts failed sign-ins per (account, client address) pair — in the database, or in the
Redis cache when ``REDIS_URL`` is set — for every call of ``django.contrib.auth.authenticate``
with a request: the admin login form and the push API's HTTP Basic alike. After
``AXES_FAILURE_LIMIT`` failures the pair is locked out for ``AXES_COOLOFF_TIME``; every further
failure during the lockout starts the cool-off again (so a guessing script stays locked out). The
same account from another address, or another account from the same address, is not affected.

Settings read here:
    CASEWORK_TRUSTED_PROXIES  addresses or networks (``10.0.0.0/8``) of the reverse proxies in front
        of the site. Only when the direct peer (``REMOTE_ADDR``) is one of them is ``X-Forwarded-For``
        read, from the right, skipping trusted hops. Empty (the default): the header is ignored,
        since any client can send it.
"""

from __future__ import annotations

from functools import lru_cache
import ipaddress

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in spec if s.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address, networks) -> bool:
    return address is not None and any(address in net for net in networks)


def client_ip(request: HttpRequest) -> str:
    """Return the address of the client that sent ``request`` (``AXES_CLIENT_IP_CALLABLE``).

    ``REMOTE_ADDR`` unless it is a trusted proxy (``settings.CASEWORK_TRUSTED_PROXIES``); then the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy. A malformed entry ends
    the walk and the proxy's own address is used (a forged header never picks the address).

    Returns:
        the address as text (IPv4-mapped IPv6 shown as IPv4), or ``""`` when none is known.
    """
    remote_text = request.META.get("REMOTE_ADDR", "") or ""
    remote = _address(remote_text)
    networks = _networks(tuple(getattr(settings, "CASEWORK_TRUSTED_PROXIES", ()) or ()))
    if not networks or not _trusted(remote, networks):
        return str(remote) if remote is not None else remote_text
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    client = remote
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def lockout_minutes(request: HttpRequest | None = None) -> int:
    """Return the cool-off of a lockout in whole minutes (at least 1)."""
    cool_off = get_cool_off(request)
    return max(1, int(cool_off.total_seconds() // 60)) if cool_off else 0


def lockout_message(request: HttpRequest | None = None) -> str:
    """The sentence shown to a locked-out person, naming the wait."""
    return _("登录失败次数过多,该账号从当前地址的登录已暂停。请 %(minutes)d 分钟后再试,"
             "期间每次失败的尝试都会重新计时;如需提前解锁,请联系系统管理员。") % {
        "minutes": lockout_minutes(request)}


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The answer to a locked-out sign-in (``AXES_LOCKOUT_CALLABLE``): 429 JSON for the API, a page otherwise.

    Args:
        request: the refused request.
        original_response: the response the view produced (ignored).
        credentials: the credentials tried (ignored; the password is never echoed).
    """
    message = lockout_message(request)
    minutes = lockout_minutes(request)
    if request.path.startswith("/api/") or "application/json" in request.META.get("HTTP_ACCEPT", ""):
        response = JsonResponse({"error": message, "retry_after_minutes": minutes}, status=429,
                                json_dumps_params={"ensure_ascii": False})
    else:
        response = render(request, "admin/login_locked.html",
                          {**admin.site.each_context(request), "title": _("登录已暂停"), "message": message},
                          status=429)
    if minutes:
        response["Retry-After"] = str(minutes * 60)
    return response
