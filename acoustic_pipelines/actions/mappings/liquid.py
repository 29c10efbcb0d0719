"""The `@liquid` directive: Segment's restricted Liquid, on python-liquid 2.

Segment renders `@liquid` with liquidjs, with some tags and filters disabled and templates
limited to 1,000 characters. The template's variables are the payload's own top-level keys
(`{{ properties.name }}`). Templates are parsed once, when the mapping is compiled.

Known differences from liquidjs: filters follow python-liquid's implementations, and arrays
print as python-liquid prints them. Numbers (also those filters return) and objects print
as JavaScript writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import Any, NoReturn

from liquid import Environment
from liquid.exceptions import LiquidError, LiquidSyntaxError
from liquid.stream import TokenStream
from liquid.tag import Tag

from acoustic_pipelines.actions.js_values import UNDEFINED, js_number_to_string

MAX_TEMPLATE_LENGTH = 1000
DISABLED_TAGS = ("case", "for", "include", "layout", "render", "tablerow")
DISABLED_FILTERS = (
    "array_to_sentence_string",
    "concat",
    "find",
    "find_exp",
    "find_index",
    "find_index_exp",
    "group_by",
    "group_by_exp",
    "has",
    "has_exp",
    "map",
    "newline_to_br",
    "reject",
    "reject_exp",
    "reverse",
    "sort",
    "sort_natural",
    "uniq",
    "where_exp",
    "type",
)


class LiquidTemplateError(ValueError):
    """A `@liquid` template that does not parse, uses a disabled feature or fails to render."""


class _SegmentEnvironment(Environment):
    """python-liquid environment with Segment's 100 MB output limit."""

    output_stream_limit = 100_000_000


class _JsNumber(float):
    """A float that prints as JavaScript prints numbers (10 not 10.0, 1e-7 not 1e-07)."""

    def __str__(self) -> str:
        return js_number_to_string(float(self))


class _JsObject(dict[str, Any]):
    """A dict that prints as "[object Object]", as liquidjs prints objects."""

    def __str__(self) -> str:
        return "[object Object]"


def _disabled_tag(name: str) -> type[Tag]:
    """Build a tag class that refuses to parse, like Segment's disabled liquidjs tags."""

    def parse(self: Tag, stream: TokenStream) -> NoReturn:
        raise LiquidSyntaxError(f'tag "{name}" is disabled', token=stream.current)

    return type(
        f"Disabled{name.title()}Tag", (Tag,), {"name": name, "block": False, "parse": parse}
    )


def _disabled_filter(name: str) -> Callable[..., NoReturn]:
    """Build a filter that fails when applied, like Segment's disabled liquidjs filters."""

    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise LiquidError(f'filter "{name}" is disabled', token=None)

    return refuse


def _with_js_numbers(filter_function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so the floats it returns print as JavaScript numbers (11, not 11.0)."""

    @wraps(filter_function)  # keeps python-liquid's with_context/with_environment flags
    def filter_with_js_numbers(*args: Any, **kwargs: Any) -> Any:
        result = filter_function(*args, **kwargs)
        return _JsNumber(result) if type(result) is float else result

    return filter_with_js_numbers


@cache
def _environment() -> Environment:
    """Create the shared environment on first use."""
    environment = _SegmentEnvironment(strict_filters=False)
    for name, filter_function in list(environment.filters.items()):
        environment.add_filter(name, _with_js_numbers(filter_function))
    for tag in DISABLED_TAGS:
        environment.add_tag(_disabled_tag(tag))
    for name in DISABLED_FILTERS:
        environment.add_filter(name, _disabled_filter(name))
    return environment


def _first_line(error: BaseException) -> str:
    """Return an error's message without python-liquid's source excerpt."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _to_liquid(value: Any) -> Any:
    """Prepare a JSON value so python-liquid prints numbers and objects as liquidjs does."""
    kind = type(value)
    if kind is dict:
        return _JsObject(
            (key, _to_liquid(item)) for key, item in value.items() if item is not UNDEFINED
        )
    if kind is list:
        return [None if item is UNDEFINED else _to_liquid(item) for item in value]
    if kind is float:
        return _JsNumber(value)
    return value


def compile_liquid(source: str) -> Callable[[Any], str]:
    """Parse a template once and return a function rendering it for one payload.

    Raises:
        LiquidTemplateError: the template does not parse or uses a disabled tag.
    """
    try:
        template = _environment().from_string(source)
    except Exception as error:  # python-liquid is a black box: any failure means "refused"
        raise LiquidTemplateError(_first_line(error)) from error

    def render(payload: Any) -> str:
        scope = _to_liquid(payload) if type(payload) is dict else {}
        try:
            return template.render(scope)
        except Exception as error:  # filters may raise anything; Segment reports a failure
            raise LiquidTemplateError(_first_line(error)) from error

    return render
