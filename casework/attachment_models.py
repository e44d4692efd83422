"""Attachments of a case's feedback: photos and scanned documents a unit's handler adds to a draft.

One :class:`Attachment` per uploaded file. The file lives under ``MEDIA_ROOT/attachments/`` with a
random name (never the uploader's), its type was decided from its content (:mod:`casework.attachments`)
and it is served only as a download through the case's access rule. Loaded by ``casework.models``.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Attachment(models.Model):
    """One file attached to a case's feedback (DESIGN.md §8: uploads allow-listed by content)."""

    case = models.ForeignKey("casework.Case", on_delete=models.PROTECT, related_name="attachments",
                             verbose_name=_("案件"))
    draft = models.ForeignKey("casework.ReplyDraft", on_delete=models.PROTECT, null=True, blank=True,
                              related_name="attachments", verbose_name=_("答复草稿"))
    round = models.PositiveSmallIntegerField(_("办理轮次"), default=1)
    original_name = models.CharField(_("文件名"), max_length=255)
    stored_name = models.CharField(_("存储名"), max_length=80, unique=True, editable=False)
    content_type = models.CharField(_("文件类型"), max_length=100)
    size = models.PositiveIntegerField(_("大小(字节)"))
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("上传人"),
                                    on_delete=models.PROTECT)
    uploaded_at = models.DateTimeField(_("上传时间"))

    class Meta:
        verbose_name = _("附件")
        verbose_name_plural = _("附件")
        ordering = ["case", "uploaded_at", "pk"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def size_display(self) -> str:
        """The size for people: KB below one megabyte, MB above."""
        if self.size < 1024 * 1024:
            return f"{max(1, round(self.size / 1024))} KB"
        return f"{self.size / (1024 * 1024):.1f} MB"
