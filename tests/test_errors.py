import inspect
import re

import pytest

from digitrec import errors

CLASSES = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if obj.__module__ == errors.__name__]


def _tree() -> dict[str, str]:
    """The class names the module docstring draws, each with the builtin it names in brackets."""
    drawn = re.findall(r"^\s*(?:[├└]── )?(\w+Error)(?: \((\w+)\))?", errors.__doc__ or "", re.MULTILINE)
    return dict(drawn)


def test_the_module_defines_the_six_classes_of_the_house_style():
    assert {cls.__name__ for cls in CLASSES} == {
        "DigitrecError",
        "ConfigError",
        "DataError",
        "ModelError",
        "ImageError",
        "InputError",
    }


def test_the_docstring_tree_draws_exactly_the_classes_the_module_defines():
    assert set(_tree()) == {cls.__name__ for cls in CLASSES}


def test_the_builtins_the_tree_names_are_the_ones_each_class_subclasses():
    for cls in CLASSES:
        builtins = {base.__name__ for base in cls.__mro__ if base.__module__ == "builtins"} - {
            "Exception",
            "BaseException",
            "object",
        }
        drawn = _tree()[cls.__name__]
        assert builtins == ({drawn} if drawn else set()), cls.__name__


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_is_a_digitrec_error_with_a_docstring(cls):
    assert issubclass(cls, errors.DigitrecError) and cls.__doc__


@pytest.mark.parametrize("name", ["ConfigError", "ImageError", "InputError"])
def test_errors_about_a_value_the_caller_passed_are_value_errors(name):
    with pytest.raises(ValueError, match=r"^bad value$"):
        raise getattr(errors, name)("bad value")
