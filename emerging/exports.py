"""Public names of a package, imported from their modules on first use.

The packages whose modules import TensorFlow (`emerging`, `emerging.models`,
`emerging.runs`, `emerging.training`, `emerging.data`) list their public
names here instead of importing them, so that importing the package, or one
of its TensorFlow-free modules (the configurations, the choice tables, the
flag parsers), does not start TensorFlow.
"""
import importlib


def lazy_exports(package: str, names: dict):
    """Module-level `__getattr__` and `__dir__` for `package`.

    Args:
      package: the package's `__name__`.
      names: {public name: the module that defines it}.

    Returns:
      (`__getattr__`, `__dir__`): the first imports the defining module when a
      name is first asked for (and caches the value in the package), the second
      lists the public names with the package's own.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(names[name]), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
