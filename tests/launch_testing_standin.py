"""A stand-in for launch_testing's pytest plugin, as far as collection goes (``-p tests.launch_testing_standin``).

Where ROS 2 is sourced, pytest loads launch_testing's plugin (``launch_testing/pytest/hooks.py``)
automatically. Its ``pytest_pycollect_makemodule`` imports every Python module pytest is about to
collect, to look for a ``generate_test_description`` entry point: Humble's with
``path.pyimport()`` (py.path), Jazzy's with ``_pytest.pathlib.import_path(path, root=None,
consider_namespace_packages=False)``. Whatever the module raises there, such as the ``Skipped``
of a module-level ``pytest.importorskip``, is raised in the collection of the directory, which
then skips the whole tests package. This plugin does the same imports (``SAM2_LAUNCH_TESTING_STANDIN``
= ``humble`` or ``jazzy``, the default) and then leaves collection to pytest, as the real plugin does
for modules without a launch test. tests/test_collection.py uses it.
"""

from __future__ import annotations

import os


def pytest_pycollect_makemodule(module_path, parent):  # noqa: ARG001 - the hook's signature
    if os.environ.get("SAM2_LAUNCH_TESTING_STANDIN", "jazzy") == "humble":
        from _pytest._py.path import LocalPath

        LocalPath(str(module_path)).pyimport()
    else:
        from _pytest.pathlib import import_path

        import_path(module_path, root=None, consider_namespace_packages=False)
    return None
