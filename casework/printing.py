"""Print views and PDF downloads of the file records: a 督办单 and a 纪检督察 referral (issue 10 §7).

Each prints as one A4 page (``templates/admin/casework/print_base.html``: print CSS with
``@page { size: A4 }``, no admin chrome) and downloads as a PDF rendered from the same HTML by
WeasyPrint (system Pango; Chinese in WenQuanYi Micro Hei, ``fonts-wqy-microhei``). The admin that
mixes :class:`PrintableMixin` in supplies ``_print_object(request, pk)`` (the access rule: 404 out of
scope, personal numbers masked for readers without the permission) and ``page_context(request, obj)``.
"""

import logging

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _

logger = logging.getLogger("casework")


class PdfUnavailable(RuntimeError):
    """WeasyPrint or its system libraries (Pango) are missing; ``str(exc)`` says what to install."""


def html_to_pdf(*, html: str, base_url: str) -> bytes:
    """Render ``html`` to PDF bytes with WeasyPrint (A4 from the page's own ``@page`` CSS).

    Args:
        html: a complete HTML document (the print view's).
        base_url: URL that relative links and static files resolve against.

    Raises:
        PdfUnavailable: WeasyPrint cannot be loaded (not installed, or Pango missing: run
            ``make browser-deps``, which installs libpango-1.0-0 and libpangoft2-1.0-0).
    """
    try:
        # Loaded on first use: the site must start (and say why on the page) where Pango is absent.
        import weasyprint
    except (ImportError, OSError) as exc:
        logger.warning("weasyprint unavailable: %s", exc)
        raise PdfUnavailable(_("PDF 生成组件不可用(需要 WeasyPrint 和 Pango,见 make browser-deps)。")) from exc
    return weasyprint.HTML(string=html, base_url=base_url).write_pdf()


class PrintableMixin:
    """Adds ``<pk>/print/`` (the A4 print view) and ``<pk>/pdf/`` (its PDF) to a ModelAdmin.

    Set ``print_template`` and ``print_name`` (the file name's first word); implement
    ``_print_object(request, pk)`` and ``page_context(request, obj)``.
    """

    print_template = ""
    print_name = "record"

    def print_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("<int:pk>/print/", self.admin_site.admin_view(self.print_view), name="%s_%s_print" % info),
            path("<int:pk>/pdf/", self.admin_site.admin_view(self.pdf_view), name="%s_%s_pdf" % info),
        ]

    def _print_context(self, request, obj, *, pdf: bool) -> dict:
        return {**self.page_context(request, obj), "pdf": pdf, "LANGUAGE_CODE": getattr(request, "LANGUAGE_CODE", "")}

    def print_view(self, request, pk):
        """The record as one A4 page, with a print button (the browser's print dialog)."""
        obj = self._print_object(request, pk)
        return TemplateResponse(request, self.print_template, self._print_context(request, obj, pdf=False))

    def pdf_view(self, request, pk):
        """The print view rendered to PDF, downloaded as ``<name>-<case reference>.pdf``."""
        obj = self._print_object(request, pk)
        html = render_to_string(self.print_template, self._print_context(request, obj, pdf=True), request=request)
        try:
            content = html_to_pdf(html=html, base_url=request.build_absolute_uri("/"))
        except PdfUnavailable as exc:
            return TemplateResponse(request, "admin/casework/refused.html", {
                **self.admin_site.each_context(request), "title": _("下载 PDF"), "reason": str(exc),
                "opts": self.model._meta, "back_url": request.build_absolute_uri("../print/"),
            }, status=503)
        response = HttpResponse(content, content_type="application/pdf")
        reference = obj.case.reference if hasattr(obj, "case") else str(obj.pk)
        response["Content-Disposition"] = f'attachment; filename="{self.print_name}-{reference}.pdf"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
