"""The ROS side of the parameter schema: descriptors and declarations from
:data:`seg_perception.core.params.PARAMETERS` (rclpy then enforces ranges and read-only flags).
"""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.parameter import Parameter

from seg_perception.core.params import PARAMETERS, ConfigError, ParamSpec

_TYPES = {'bool': Parameter.Type.BOOL, 'integer': Parameter.Type.INTEGER,
          'double': Parameter.Type.DOUBLE, 'string': Parameter.Type.STRING,
          'integer_array': Parameter.Type.INTEGER_ARRAY,
          'double_array': Parameter.Type.DOUBLE_ARRAY,
          'string_array': Parameter.Type.STRING_ARRAY}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The descriptor of ``spec``: description, read-only, range, choices (in
    ``additional_constraints``).
    """
    d = ParameterDescriptor(description=spec.description, read_only=not spec.runtime)
    if spec.range and spec.type == 'double':
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)]
    elif spec.range:
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]),
                                        to_value=int(spec.range[1]), step=1)]
    if spec.choices is not None:
        d.additional_constraints = 'one of: ' + ', '.join(repr(c) for c in spec.choices)
    return d


def declaration(spec: ParamSpec) -> tuple[str, Any, ParameterDescriptor]:
    """``declare_parameter`` arguments (an unset default is declared by its type)."""
    default = _TYPES[spec.type] if spec.default is None else spec.default
    return spec.name, default, descriptor(spec)


def declare_all(node: Any) -> None:
    """Declare every parameter on ``node`` (overrides from files and ``-p`` apply).

    Raises:
        ConfigError: an override has the wrong type or is out of range.
    """
    for spec in PARAMETERS:
        try:
            node.declare_parameter(*declaration(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            raise ConfigError(f'parameter {spec.name!r}: {exc}') from None


def value(node: Any, name: str) -> Any:
    """A declared parameter's current value (``None`` while unset)."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None
