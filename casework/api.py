"""The platform push endpoint: ``POST /api/messages/`` with a JSON body (DESIGN.md §5).

Authentication is HTTP Basic with a staff or service account that holds
``casework.register_case`` (use HTTPS in production). The body is one message object or a list of
them, with the export's column names (``message_id``, ``subject``, ``body``, ``submitted_at``,
``user_id``, ``category``, ``likes``, ``dislikes``) and a ``platform`` code (query parameter or
top-level field of an envelope ``{"platform": "...", "messages": [...]}``). Re-sending a message is
harmless: (platform, message_id) already registered is reported as ``skipped``.

The body must be ``application/json`` (415 otherwise), at most ``CASEWORK_API_MAX_BODY_BYTES``
(413) with at most ``CASEWORK_API_MAX_MESSAGES`` messages (400); each message is parsed and
type-checked on its own (:mod:`casework.api_parsing`), so a bad one is reported with its index
and never fails the others.
"""

import base64
import binascii

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.signin import lockout_response
from casework.api_parsing import PushBodyError, push_body_parse
from casework.importing import messages_import_records
from casework.models import Case, Platform
from casework.selectors import cases_visible_to

MAX_MESSAGES = settings.CASEWORK_API_MAX_MESSAGES  # the setting is read per request; kept for callers


def _credentials(request: HttpRequest) -> tuple[str, str] | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return username, password


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status, json_dumps_params={"ensure_ascii": False})
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="casework"'
    return response


@csrf_exempt
@require_POST
def messages_push(request: HttpRequest) -> JsonResponse:
    """Register pushed messages; answer per message with its case reference or its error.

    Responses: 200 with ``{"created": n, "skipped": n, "errors": [{"index", "message_id",
    "reason"}], "cases": [{"message_id", "reference", "created"}]}`` (errors of single messages do
    not fail the others); 400 for a body that is not JSON or has too many messages; 413 for a
    body over ``CASEWORK_API_MAX_BODY_BYTES``; 415 when it is not ``application/json``; 401 without valid
    credentials; 429 while sign-in is paused for the account from the client's address (django-axes:
    ``AXES_FAILURE_LIMIT`` failures, the same counters as the admin login, see
    :mod:`accounts.signin`); 403 without ``casework.register_case``; 404 for an unknown platform code.
    """
    credentials = _credentials(request)
    if credentials is None:
        return _error(401, "需要有效的用户名和密码(HTTP Basic)。")
    user = authenticate(request=request, username=credentials[0], password=credentials[1])
    if getattr(request, "axes_locked_out", False):
        return lockout_response(request)
    if user is None or not user.is_active:
        return _error(401, "需要有效的用户名和密码(HTTP Basic)。")
    if request.content_type != "application/json":
        return _error(415, "请求体必须是 JSON(Content-Type: application/json)。")
    limit = settings.CASEWORK_API_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > limit else request.read(limit + 1)
    if declared > limit or len(body) > limit:
        return _error(413, f"请求体超过 {limit:,} 字节,请分批推送。")
    try:
        envelope_platform, records = push_body_parse(
            body, max_messages=settings.CASEWORK_API_MAX_MESSAGES, max_depth=settings.CASEWORK_API_MAX_DEPTH
        )
    except PushBodyError as exc:
        return _error(exc.status, str(exc))
    platform_code = envelope_platform or request.GET.get("platform", "")
    platform = Platform.objects.filter(code=platform_code).first()
    if platform is None:
        return _error(404, f"未知的平台代码:{platform_code or '(未提供)'}。")
    try:
        report = messages_import_records(records=records, platform=platform, acting_user=user)
    except PermissionDenied:
        return _error(403, "该账号没有登记留言的权限。")
    # A re-sent message names its case only to an account that may see that case.
    references = dict(
        cases_visible_to(user=user, queryset=Case.objects.filter(pk__in=[r.case_id for r in report.rows]))
        .values_list("pk", "reference")
    )
    return JsonResponse(
        {
            "created": report.created,
            "skipped": report.skipped,
            "errors": [
                {"index": e.row_number - 1, "message_id": e.external_id, "reason": e.reason} for e in report.errors
            ],
            "cases": [
                {"message_id": r.external_id, "reference": references.get(r.case_id), "created": r.created}
                for r in report.rows
            ],
        },
        json_dumps_params={"ensure_ascii": False},
    )
