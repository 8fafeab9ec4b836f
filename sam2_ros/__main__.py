"""``python -m sam2_ros`` is the ``sam2-ros`` command."""

import sys

from sam2_ros.cli import main

sys.exit(main())
