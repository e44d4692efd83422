"""Template filter that shows citizen text with personal numbers masked unless the reader may see them."""

from django import template

from casework.text import mask_personal_numbers

register = template.Library()


@register.filter
def personal_numbers_masked(text, may_see: bool = False) -> str:
    """``{{ case.body|personal_numbers_masked:may_see_numbers }}``: the text, numbers masked unless ``may_see``.

    The output stays an ordinary string, so the template still escapes it.
    """
    text = "" if text is None else str(text)
    return text if may_see else mask_personal_numbers(text)
