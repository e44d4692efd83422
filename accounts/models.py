"""People and the work matrix: users, the unit tree and unit membership.

Where a person may see and act is an object permission ``accounts.access_unit`` on a unit, held
through django-guardian; access to a unit covers its descendants (see :mod:`accounts.selectors`).
"""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A member of staff. Display name is the Chinese full name."""

    full_name = models.CharField(_("姓名"), max_length=50, blank=True)
    phone = models.CharField(_("电话"), max_length=30, blank=True)

    class Meta:
        verbose_name = _("用户")
        verbose_name_plural = _("用户")

    def __str__(self) -> str:
        return self.full_name or self.get_full_name() or self.username


class Unit(models.Model):
    """A node of the work matrix: the city bureau, an office, a district bureau, a police type."""

    class Kind(models.TextChoices):
        BUREAU = "bureau", _("市局")
        OFFICE = "office", _("市局内设机构")
        DISTRICT = "district", _("县市区分局")
        POLICE_TYPE = "police_type", _("警种部门")
        STATION = "station", _("派出所/基层所队")

    class Function(models.TextChoices):
        NONE = "", _("一般单位")
        COMMENT_OFFICE = "comment_office", _("网评办")
        DISCIPLINE = "discipline", _("纪检督察")
        LEADERSHIP = "leadership", _("局领导")

    name = models.CharField(_("名称"), max_length=100)
    code = models.SlugField(_("代码"), max_length=50, unique=True)
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices)
    function = models.CharField(
        _("职能"), max_length=20, choices=Function.choices, blank=True, default=""
    )
    parent = models.ForeignKey(
        "self",
        verbose_name=_("上级单位"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    path = models.CharField(_("树路径"), max_length=500, editable=False, db_index=True, default="")
    email = models.EmailField(_("单位邮箱"), blank=True)
    keywords = models.TextField(
        _("派单关键词"), blank=True, help_text=_("每行一个关键词,用于建议承办单位。")
    )
    is_active = models.BooleanField(_("启用"), default=True)
    members = models.ManyToManyField(
        "User", through="UnitMembership", related_name="units", verbose_name=_("成员")
    )
    leaders = models.ManyToManyField(
        "User", blank=True, related_name="units_in_charge", verbose_name=_("分管局领导"),
        help_text=_("分管本单位的局领导:本单位(及未另设分管领导的下级单位)的答复由其审签(三审),"
                    "催督办也报其本人。未设置时沿用上级单位的分管领导,都没有时报全体局领导。"),
    )

    class Meta:
        verbose_name = _("单位")
        verbose_name_plural = _("单位")
        ordering = ["path"]
        permissions = [("access_unit", _("可查看和办理本单位(含下级)的案件"))]
        constraints = [
            models.UniqueConstraint(
                fields=["function"],
                condition=~models.Q(function=""),
                name="unit_function_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class UnitMembership(models.Model):
    """A person's place in a unit; ``is_head`` marks the unit's head (receives 催办 notices)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="memberships")
    is_head = models.BooleanField(_("单位负责人"), default=False)
    title = models.CharField(_("职务"), max_length=50, blank=True)

    class Meta:
        verbose_name = _("单位成员")
        verbose_name_plural = _("单位成员")
        constraints = [
            models.UniqueConstraint(fields=["user", "unit"], name="membership_user_unit_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.unit} · {self.user}"
