"""Every public class and function exported from `emerging`, `emerging.flows` and `emerging.vector` says
what it takes (an Args section, or Attributes for a configuration) and what it gives (Returns / Yields)."""
import ast
import inspect
import textwrap

import pytest

import emerging
import emerging.flows
import emerging.vector

PACKAGES = (emerging, emerging.flows, emerging.vector)
EXPORTED = sorted({(package.__name__, name) for package in PACKAGES for name in package.__all__
                   if inspect.isclass(getattr(package, name)) or inspect.isfunction(getattr(package, name))})


def arguments(function):
    return [name for name in inspect.signature(function).parameters if name not in ('self', 'cls')]


def returns_a_value(function):
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    body = tree.body[0]
    nested = {id(node) for inner in ast.walk(body) if inner is not body
              and isinstance(inner, (ast.FunctionDef, ast.Lambda)) for node in ast.walk(inner)}
    for node in ast.walk(body):
        if id(node) in nested:
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
    return False


def own_init(cls):
    return cls.__dict__.get('__init__')


@pytest.mark.parametrize('package, name', EXPORTED)
def test_args_and_returns_are_written(package, name):
    value = getattr(__import__(package, fromlist=[name]), name)
    doc = inspect.cleandoc(value.__doc__ or '')  # a class's own, not one inherited from TFP's Bijector
    assert doc, f'{package}.{name} has no docstring'
    if inspect.isfunction(value):
        if arguments(value):
            assert 'Args:' in doc, f'{package}.{name}: no Args section'
        if returns_a_value(value):
            assert 'Returns:' in doc or 'Yields:' in doc, f'{package}.{name}: no Returns section'
        return
    init = own_init(value)
    fields = getattr(value, '__dataclass_fields__', None)
    takes = fields or (init is not None and arguments(init))
    if takes:
        written = doc + (inspect.cleandoc(init.__doc__ or '') if init is not None else '')
        assert 'Args:' in written or 'Attributes:' in written, f'{package}.{name}: no Args section'
